"""A chain that cannot be reached is named by what failed: the name, the connection, the answer.

Each case makes the failure happen for real on 127.0.0.1 (or with a name under `.invalid`,
which RFC 2606 guarantees never resolves), so the test sees the exception chain requests and
urllib3 actually build, not a hand-made one.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
import requests
from local_http import QuietHandler, full_listener, serving, silent_listener
from typer.testing import CliRunner

from flare.chain.connect import RpcUnavailableError, connect, rpc_errors
from flare.cli.app import app

UNRESOLVABLE = "http://flare-node-test.invalid:8545"
ADDRESS = "0x" + "11" * 20


def _post(url: str, *, timeout: tuple[float, float] = (5.0, 5.0)) -> None:
    """One JSON-RPC-shaped POST under `rpc_errors`, as the ledger makes them."""
    with rpc_errors(url):
        requests.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=timeout
        )


def _unreachable(url: str, *, timeout: tuple[float, float] = (5.0, 5.0)) -> RpcUnavailableError:
    with pytest.raises(RpcUnavailableError) as caught:
        _post(url, timeout=timeout)
    assert caught.value.url == url
    assert caught.value.message.startswith(f"cannot reach the chain at {url}: ")
    return caught.value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unresolvable_host_is_a_name_lookup_failure_not_a_refusal() -> None:
    with pytest.raises(RpcUnavailableError) as caught:
        connect(UNRESOLVABLE, retries=1)

    message = caught.value.message
    assert "the host name flare-node-test.invalid could not be resolved" in message
    assert "refused" not in message
    assert caught.value.hint is not None
    assert "host name" in caught.value.hint


def test_the_cli_reports_the_lookup_failure_with_exit_3() -> None:
    result = CliRunner().invoke(
        app, ["contract", "info", "--rpc", UNRESOLVABLE, "--address", ADDRESS]
    )

    assert result.exit_code == 3
    assert "flare-node-test.invalid could not be resolved" in result.stderr
    assert "refused" not in result.stderr


def test_a_port_nobody_listens_on_is_a_refusal_naming_host_and_port() -> None:
    port = _free_port()

    error = _unreachable(f"http://127.0.0.1:{port}")

    assert f"connection refused by 127.0.0.1:{port}" in error.message
    assert error.hint is not None
    assert "node is running" in error.hint


def _read_request(connection: socket.socket) -> None:
    """Read one whole HTTP request, so the reset can only land while the client awaits the
    answer (a reset mid-upload may reach the client as a plain close instead)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length and (chunk := connection.recv(65536)):
        body += chunk


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """A port whose server reads the request, then aborts the connection (a TCP reset)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def abort_one() -> None:
            connection, _ = listener.accept()
            with connection:
                _read_request(connection)
                # Linger 0: close() sends RST instead of FIN, as a crashed proxy does.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        thread = threading.Thread(target=abort_one, daemon=True)
        thread.start()
        yield int(listener.getsockname()[1])
        thread.join(timeout=5)


def test_a_reset_connection_is_named_as_such(resetting_port: int) -> None:
    error = _unreachable(f"http://127.0.0.1:{resetting_port}")

    assert f"127.0.0.1:{resetting_port} reset the connection before answering" in error.message


class HangUp(QuietHandler):
    """Reads the whole request, then closes the connection without a word."""

    def do_POST(self) -> None:
        self.read_body()
        self.close_connection = True


def test_a_connection_closed_without_an_answer_is_named_as_such() -> None:
    with serving(HangUp) as url:
        error = _unreachable(url)

    where = url.removeprefix("http://")
    assert f"{where} closed the connection without answering" in error.message


def test_a_connect_timeout_says_the_connection_never_completed() -> None:
    with full_listener() as port:
        error = _unreachable(f"http://127.0.0.1:{port}", timeout=(0.2, 5.0))

    assert f"connecting to 127.0.0.1:{port} timed out" in error.message
    assert "did not answer" not in error.message


def test_a_read_timeout_says_the_host_connected_but_did_not_answer() -> None:
    with silent_listener() as port:
        error = _unreachable(f"http://127.0.0.1:{port}", timeout=(5.0, 0.2))

    assert f"127.0.0.1:{port} accepted the connection but did not answer in time" in error.message
    assert error.hint is not None
    assert "logs" in error.hint
