"""A TCP forwarder on 127.0.0.1 that a test can take down and bring back: an endpoint outage.

The fault suites need an RPC endpoint that vanishes for a while and then returns with the chain
behind it unchanged. anvil itself cannot do that (its state does not survive being killed), so
the nodes talk to this proxy instead and the test closes it. Closing works at the TCP level, as a
crashed host or a dropped route looks to a client: new connections are refused and every live
one ends (FIN, then a reset), whatever protocol it carries. An HTTP-level proxy could only answer
errors, which a client treats differently from an endpoint that is gone.

While closed, the port stays bound (not listening), so nothing else on the machine is handed it
as an ephemeral port and `reopen()` listens on the very port the clients were configured with.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

CHUNK = 65536
JOIN_SECONDS = 10.0  # bounds a thread that should end at once; never a synchronization
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset, not a FIN


class TcpProxy:
    """Forwards every connection to `upstream` (host, port) from 127.0.0.1:`port`.

    One thread accepts, two per connection copy bytes (one per direction). `close()` and
    `reopen()` return once the change has happened: after `close()` no connection is live and
    the port refuses; after `reopen()` it accepts again.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._listener: socket.socket | None = None
        self._placeholder: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self.port = 0  # 0 until the first listen() picks one; kept from then on
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def live_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # ------------------------------------------------------------------ control

    def close(self) -> None:
        """Stop accepting and end every live connection; the port then refuses connections."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = set(self._pairs), set()
        if listener is None:
            return
        _shut(listener)  # wakes the accept() blocked in the accepting thread
        listener.close()
        self._hold_port()
        if self._accepter is not None:
            self._accepter.join(JOIN_SECONDS)
        for pair in pairs:
            pair.abort()
        for pair in pairs:
            pair.join()

    def reopen(self) -> None:
        """Listen again on the same port."""
        with self._lock:
            if self._listener is not None:
                return
        self._release_port()
        self._listen()

    def stop(self) -> None:
        """Close for good, releasing the port."""
        self.close()
        self._release_port()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        self._accepter = threading.Thread(
            target=self._accept, args=(listener,), name=f"tcp-proxy-{self.port}", daemon=True
        )
        self._accepter.start()

    def _hold_port(self) -> None:
        """Keep the port bound without listening: connections are refused, none steals it."""
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.bind(("127.0.0.1", self.port))
        self._placeholder = placeholder

    def _release_port(self) -> None:
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # close() shut the listener down
            try:
                server = socket.create_connection(self.upstream, timeout=JOIN_SECONDS)
                server.settimeout(None)
            except OSError:
                _reset(client)  # the upstream is down: the client sees its connection end
                continue
            pair = _Pair(client, server)
            with self._lock:
                if self._listener is not listener:  # closed while this one was connecting
                    pair.abort()
                    continue
                self._pairs.add(pair)
            pair.start(self._forget)

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)


class _Pair:
    """A client connection and its upstream connection, copied both ways."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self._threads: list[threading.Thread] = []
        self._ended = 0
        self._lock = threading.Lock()
        self._aborted = False
        self._on_end: Callable[[_Pair], None] | None = None

    def start(self, on_end: Callable[[_Pair], None]) -> None:
        """Copy both ways; `on_end(self)` once both directions have ended."""
        self._on_end = on_end
        for source, target in ((self.client, self.server), (self.server, self.client)):
            thread = threading.Thread(target=self._copy, args=(source, target), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _copy(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                target.sendall(data)
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError:
            self.abort()  # one side reset: end the other too
        with self._lock:
            self._ended += 1
            last = self._ended == 2
        if last:
            self.client.close()
            self.server.close()
            if self._on_end is not None:
                self._on_end(self)

    def abort(self) -> None:
        """End both connections now: the pumps wake, and each socket is closed with a reset."""
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            _shut(sock)
        if not self._threads:  # never started: nobody else will close them
            self.client.close()
            self.server.close()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(JOIN_SECONDS)


def _shut(sock: socket.socket) -> None:
    """shutdown() both ways: unlike close(), it wakes a thread blocked on the socket."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    sock.close()
