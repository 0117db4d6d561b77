"""The test-support TCP proxy that plays an RPC outage: it must really refuse, then forward again.

The federation fault test trusts it to cut the nodes off their endpoint; if `close()` left a
live connection forwarding, or `reopen()` came back on another port, that test would pass
without any outage having happened. An in-process echo server stands in for anvil.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from tcp_proxy import TcpProxy

TIMEOUT = 5.0


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP server that sends back whatever it receives, one thread per connection."""
    server = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stopped.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[:2]
    stopped.set()
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(TIMEOUT)


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[TcpProxy]:
    with TcpProxy(echo) as proxy:
        yield proxy


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)


def round_trip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def ended(sock: socket.socket) -> bool:
    """The connection is over: writing fails or reading finds EOF or a reset, never an echo."""
    try:
        sock.sendall(b"anyone there?")
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_forwards_both_ways(proxy: TcpProxy) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many chunks, more than the socket buffers hold
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "the proxy ended the connection"
            received += chunk
        sender.join(TIMEOUT)
    assert received == payload


def test_refuses_while_closed_and_forwards_on_the_same_port_after_reopen(
    proxy: TcpProxy,
) -> None:
    port = proxy.port
    live = connect(proxy)
    assert round_trip(live, b"before") == b"before"
    assert proxy.live_connections() == 1

    proxy.close()
    assert not proxy.is_open
    assert proxy.live_connections() == 0
    with live:
        assert ended(live)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy).close()

    proxy.reopen()
    assert proxy.is_open
    assert proxy.port == port
    with connect(proxy) as sock:
        assert round_trip(sock, b"after") == b"after"


def test_close_and_reopen_twice(proxy: TcpProxy) -> None:
    for _ in range(2):
        proxy.close()
        proxy.close()  # a second close is a no-op
        with pytest.raises(ConnectionRefusedError):
            connect(proxy).close()
        proxy.reopen()
        with connect(proxy) as sock:
            assert round_trip(sock, b"ping") == b"ping"


def test_an_upstream_that_is_down_ends_the_client_connection() -> None:
    free = socket.create_server(("127.0.0.1", 0))
    address = free.getsockname()[:2]
    free.close()  # nothing listens there now
    with TcpProxy(address) as proxy, connect(proxy) as sock:
        assert ended(sock)
