"""Small local HTTP servers for tests that play, or stand in front of, a JSON-RPC node.

Several chain tests need a node that fails on cue (503s, refusals, lost answers). Each used to
carry its own server start-up, shutdown and reply code; they share this module instead, so a
test file holds only what its node does differently.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import requests


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler with reply helpers and no request log on stderr."""

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers["Content-Length"]))

    def read_json(self) -> Any:
        return json.loads(self.read_body())

    def reply(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        """Send `status`, and with a body its Content-Type, Content-Length and the body."""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def reply_json(self, obj: Any) -> None:
        self.reply(200, json.dumps(obj).encode())

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class ForwardingProxy(QuietHandler):
    """Forwards each request to `upstream` and relays its answer, unless `lose_answer` says
    the client gets a 503 instead: the upstream has then seen the request all the same."""

    upstream = ""

    def lose_answer(self, method: str) -> bool:
        """Called once per request, after the upstream answered it."""
        return False

    def do_POST(self) -> None:
        body = self.read_body()
        answer = requests.post(
            self.upstream, data=body, timeout=10, headers={"Content-Type": "application/json"}
        )
        request = json.loads(body)
        method = request.get("method", "") if isinstance(request, dict) else ""
        if self.lose_answer(method):
            self.reply(503)
        else:
            self.reply(200, answer.content)


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 (an OS-chosen port), served from a daemon thread.

    `close()` may come early (an endpoint that dies mid-test: connections are then refused)
    and again later; only the first one stops the server.
    """

    def __init__(
        self, handler_class: type[BaseHTTPRequestHandler], poll_interval: float = 0.5
    ) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.closed = False
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(poll_interval,), daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def serving(
    handler_class: type[BaseHTTPRequestHandler], poll_interval: float = 0.5
) -> Iterator[str]:
    """Serve `handler_class` for the block; yields the server's http URL."""
    with LocalServer(handler_class, poll_interval) as server:
        yield server.url


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are accepted by the kernel and never answered.

    This is a stopped or deadlocked daemon as a client sees it: the TCP handshake completes
    (the backlog takes it), then nothing is read or written. Yields the port.
    """
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


@contextmanager
def full_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose accept queue is full: new connections never complete.

    Linux drops the SYN of a connection to a listener whose backlog is full, so the client's
    connect hangs until its own timeout, as against a host that has vanished. Yields the port.
    """
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        fillers = []
        try:
            for _ in range(4):  # backlog 0 admits one or two pending connections; fill it
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            yield port
        finally:
            for filler in fillers:
                filler.close()
