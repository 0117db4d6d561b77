"""Connecting by URL: bounded retries for transient failures, clear errors for dead endpoints."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from local_http import QuietHandler, serving

from flare.chain.connect import (
    RpcUnavailableError,
    RpcUrlError,
    connect,
    endpoint_of,
    is_embedded,
)


class FlakyRpc(QuietHandler):
    """Answers 503 to the first `failures` requests, then a JSON-RPC eth_chainId result."""

    failures = 0
    body: bytes | None = None
    seen = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        request = self.read_json()
        with self.lock:
            type(self).seen += 1
            fail = type(self).seen <= self.failures
        if fail:
            self.reply(503)
        elif self.body:
            self.reply(200, self.body)
        else:
            self.reply_json({"jsonrpc": "2.0", "id": request["id"], "result": "0x7a69"})


@pytest.fixture
def flaky_server() -> Iterator[type[FlakyRpc]]:
    handler = type("Handler", (FlakyRpc,), {"seen": 0, "failures": 0, "body": None})
    with serving(handler) as url:
        handler.url = url  # type: ignore[attr-defined]
        yield handler


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_transient_failures_are_retried(flaky_server: type[FlakyRpc]) -> None:
    flaky_server.failures = 2

    w3 = connect(flaky_server.url, retries=3)  # type: ignore[attr-defined]

    # Two 503s were retried, then the probe was answered (web3 may ask the chain id once more
    # while validating it); from then on the chain id is cached: no request asks again.
    answered = flaky_server.seen
    assert answered in (3, 4)
    assert w3.eth.chain_id == 31337
    assert w3.eth.chain_id == 31337
    assert flaky_server.seen == answered


def test_retries_are_bounded_and_the_error_names_the_url(flaky_server: type[FlakyRpc]) -> None:
    flaky_server.failures = 100
    url = flaky_server.url  # type: ignore[attr-defined]

    with pytest.raises(RpcUnavailableError, match="HTTP 503") as caught:
        connect(url, retries=3)

    assert flaky_server.seen == 3
    assert url in caught.value.message
    assert caught.value.url == url
    assert caught.value.exit_code == 3


def test_a_dead_endpoint_fails_fast_with_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(RpcUnavailableError, match="connection refused") as caught:
        connect(url, retries=2)

    assert url in str(caught.value)
    assert caught.value.hint is not None
    assert "anvil" in caught.value.hint


def test_an_endpoint_that_is_not_json_rpc_is_named(flaky_server: type[FlakyRpc]) -> None:
    flaky_server.body = b"<html>hello</html>"

    with pytest.raises(RpcUnavailableError, match="not JSON-RPC"):
        connect(flaky_server.url)  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["ftp://host", "localhost:8545", "http://", "ws://127.0.0.1:1"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(RpcUrlError, match="unsupported RPC URL"):
        connect(url)


def test_embedded_chains_are_shared_per_name_within_a_process() -> None:
    first = connect("eth-tester://connect-test-a")

    assert connect("eth-tester://connect-test-a") is first
    assert connect("eth-tester://connect-test-b") is not first
    assert is_embedded("eth-tester://")
    assert not is_embedded("http://127.0.0.1:8545")
    assert endpoint_of(first) == "eth-tester://connect-test-a"


def test_an_http_connection_is_named_by_the_url_it_was_opened_with(
    flaky_server: type[FlakyRpc],
) -> None:
    url = flaky_server.url  # type: ignore[attr-defined]

    w3 = connect(url)

    assert endpoint_of(w3) == url
    assert not is_embedded(endpoint_of(w3))
    assert "flare_url" not in vars(w3)  # the name is kept beside the connection, not patched in
