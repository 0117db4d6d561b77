"""No unbounded waits on the chain: an endpoint that never answers fails within the limits.

A stopped node accepts TCP connections and answers nothing; each request then ends at the
idle limit, retries end at the deadline, and the error names the URL and the limit hit.
A transaction whose answer is lost is re-sent as the same signed bytes: one nonce, one hash, so
it can be mined once at most.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest
from local_http import QuietHandler, full_listener, serving, silent_listener

from flare.chain.connect import RpcTimeLimitError, RpcUnavailableError, connect
from flare.protocol.limits import NetworkLimits


def test_a_node_that_never_answers_fails_at_the_idle_limit_naming_the_url() -> None:
    with silent_listener() as port:
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(RpcTimeLimitError) as caught:
            connect(url, limits=NetworkLimits(connect=0.5, idle=0.2, deadline=10), retries=2)
    error = caught.value
    assert error.limit == "idle"
    assert error.seconds == 0.2
    assert url in error.message
    assert "eth_chainId" in error.message
    assert isinstance(error, RpcUnavailableError)  # a sent transaction is then "in doubt"


def test_retries_end_at_the_deadline() -> None:
    with silent_listener() as port, pytest.raises(RpcTimeLimitError) as caught:
        connect(
            f"http://127.0.0.1:{port}",
            limits=NetworkLimits(connect=0.5, idle=0.3, deadline=0.5),
            retries=50,
        )
    assert caught.value.limit == "deadline"
    assert "[network] deadline" in (caught.value.hint or "")


def test_a_handshake_that_never_completes_hits_the_connect_limit() -> None:
    with full_listener() as port, pytest.raises(RpcTimeLimitError) as caught:
        connect(
            f"http://127.0.0.1:{port}",
            limits=NetworkLimits(connect=0.3, idle=5, deadline=10),
            retries=1,
        )
    assert caught.value.limit == "connect"


class HangsOnSend(QuietHandler):
    """Answers reads; holds every eth_sendRawTransaction without an answer, recording them."""

    sends: ClassVar[list[object]] = []
    release = threading.Event()

    def do_POST(self) -> None:
        request = self.read_json()
        method = request["method"]
        if method == "eth_sendRawTransaction":
            self.sends.append(request["params"])
            self.release.wait(10)  # the client gives up long before; released at teardown
            return
        self.reply_json({"jsonrpc": "2.0", "id": request["id"], "result": "0x7a69"})


def test_a_lost_answer_to_a_transaction_resends_the_same_bytes_within_the_deadline() -> None:
    handler = type("Handler", (HangsOnSend,), {"sends": [], "release": threading.Event()})
    with serving(handler) as url:
        try:
            w3 = connect(url, limits=NetworkLimits(connect=1, idle=0.2, deadline=10), retries=3)
            assert w3.eth.chain_id == 0x7A69
            with pytest.raises(RpcTimeLimitError) as caught:
                w3.eth.send_raw_transaction(b"\x01\x02")
        finally:
            handler.release.set()
    assert handler.sends == [["0x0102"]] * 3
    assert caught.value.limit == "idle"
    assert "eth_sendRawTransaction" in caught.value.message
