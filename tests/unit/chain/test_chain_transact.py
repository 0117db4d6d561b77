"""JSON-RPC errors from a node become `RequestRejectedError`s, and log scans shrink to fit.

A small HTTP server plays a node that limits `eth_getLogs` to a block range, as public
endpoints do, and refuses transactions from unfunded accounts. (The ledger conformance suite
checks the unfunded case on the embedded chain and on anvil.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from local_http import QuietHandler, serving
from web3 import Web3

from flare.chain.artifact import load_artifact
from flare.chain.connect import ANVIL_CHAIN_ID, connect, endpoint_of
from flare.chain.ledger import Web3Ledger
from flare.chain.transact import RequestRejectedError, TransactionRejectedError

CONTRACT = "0x" + "11" * 20


class LimitedNode(QuietHandler):
    """Answers eth_chainId, eth_getLogs only for ranges of at most `max_range` blocks, and
    refuses to estimate gas for an account without funds (every account here)."""

    max_range = 100
    ranges: list[tuple[int, int]]

    def do_POST(self) -> None:
        request = self.read_json()
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if request["method"] == "eth_chainId":
            reply["result"] = hex(ANVIL_CHAIN_ID)
        elif request["method"] == "eth_getLogs":
            query = request["params"][0]
            start, end = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            type(self).ranges.append((start, end))
            if end - start + 1 > self.max_range:
                reply["error"] = {
                    "code": -32005,
                    "message": f"query exceeds max block range {self.max_range}",
                }
            else:
                reply["result"] = []
        elif request["method"] == "eth_getTransactionCount":
            reply["result"] = "0x0"
        elif request["method"] == "eth_estimateGas":
            reply["error"] = {
                "code": -32000,
                "message": "insufficient funds for gas * price + value: balance 0",
            }
        else:
            reply["error"] = {"code": -32601, "message": f"{request['method']} not served"}
        self.reply_json(reply)


@pytest.fixture
def limited_node() -> Iterator[tuple[str, type[LimitedNode]]]:
    handler = type("Handler", (LimitedNode,), {"ranges": [], "max_range": 100})
    with serving(handler) as url:
        yield url, handler


def test_a_log_scan_shrinks_its_ranges_to_what_the_node_serves(
    limited_node: tuple[str, type[LimitedNode]],
) -> None:
    url, node = limited_node
    ledger = Web3Ledger(connect(url, retries=1), CONTRACT, load_artifact())

    assert ledger.events(0, 999) == []

    served = [(start, end) for start, end in node.ranges if end - start + 1 <= node.max_range]
    assert served[0][0] == 0
    assert served[-1][1] == 999
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(served))  # no gaps, no overlap
    assert len(node.ranges) < 40  # halving finds a served size quickly and keeps it


def test_a_refusal_the_scan_cannot_shrink_is_a_request_rejected_error(
    limited_node: tuple[str, type[LimitedNode]],
) -> None:
    url, node = limited_node
    node.max_range = 0  # refuses even a single block
    ledger = Web3Ledger(connect(url, retries=1), CONTRACT, load_artifact())

    with pytest.raises(RequestRejectedError) as caught:
        ledger.events(5, 5)

    assert type(caught.value) is RequestRejectedError  # a read, not a transaction
    assert f"{url} refused the request: query exceeds max block range 0" in caught.value.message
    assert caught.value.hint is not None
    assert "limit" in caught.value.hint


def test_a_node_refusing_a_transaction_names_its_reason(
    limited_node: tuple[str, type[LimitedNode]],
) -> None:
    url, _ = limited_node
    ledger = Web3Ledger(connect(url, retries=1), CONTRACT, load_artifact(), b"\x42" * 32)

    with pytest.raises(TransactionRejectedError) as caught:
        ledger.submit_update(1, b"\x01\x55", 1)

    assert caught.value.message == (
        f"{url} refused the transaction: insufficient funds for gas * price + value: balance 0"
    )
    assert caught.value.hint == "fund the sending account with the chain's native token"


def test_a_connection_made_elsewhere_is_named_by_its_provider() -> None:
    url = "http://127.0.0.1:1"

    assert endpoint_of(Web3(Web3.HTTPProvider(url))) == url
