"""The Transactor's answers to an unattended node's hazards, against a scripted node.

A small JSON-RPC server plays a node that keeps, forgets or fails transactions on request, so
each hazard is exact and needs no anvil: a stuck transaction is outbid at its nonce (from the
durable journal or from the sender's own memory), a forgotten one fails at once, and a failure
after signing names the transaction. The in-process chain keeps its fast path: no waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from local_http import QuietHandler, serving
from web3 import HTTPProvider, Web3
from web3.types import Wei

from flare.chain.connect import RpcUnavailableError, connect
from flare.chain.reverts import RevertDecoder
from flare.chain.transact import (
    ReceiptTimeoutError,
    TransactionDroppedError,
    TransactionInDoubtError,
    Transactor,
    TxJournal,
    outbid,
)
from flare.node.state import NodeState
from flare.protocol.errors import UnavailableError

KEY = b"\x42" * 32
SENDER = Account.from_key(KEY).address
TARGET = "0x" + "11" * 20
GWEI = 10**9


class Call:
    """A prepared call with its fees set, so no estimate or fee query reaches the node."""

    def __init__(self, **fees: int) -> None:
        self.fees = fees or {"maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI}

    def build_transaction(self, overrides: dict[str, Any]) -> dict[str, Any]:
        tx = {"to": TARGET, "data": b"\x01", "value": 0, "gas": 50_000, "chainId": 31337}
        return {**tx, **self.fees, "nonce": overrides["nonce"]}


@dataclass
class Script:
    """What the scripted node does with what it is sent."""

    mined_nonce: int = 0
    keep: str = "mine"  # "mine" (receipt at once), "pending" (never mined) or "forget"
    fail_sends: bool = False
    txs: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> JSON transaction
    mined: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)  # decoded, in order

    def pending(self, tx: dict[str, Any], tx_hash: str) -> None:
        self.txs[tx_hash] = {
            "hash": tx_hash,
            "from": SENDER,
            "to": TARGET,
            "nonce": hex(tx["nonce"]),
            "gas": hex(tx["gas"]),
            "value": "0x0",
            "input": "0x01",
            "maxFeePerGas": hex(tx["maxFeePerGas"]),
            "maxPriorityFeePerGas": hex(tx["maxPriorityFeePerGas"]),
            "blockHash": None,
            "blockNumber": None,
            "transactionIndex": None,
        }

    def answer(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(31337)
        if method == "eth_getTransactionCount":
            assert params[1] == "latest"  # the mined count: what is pending is stuck
            return hex(self.mined_nonce)
        if method == "eth_blockNumber":
            return "0x10"
        if method == "eth_sendRawTransaction":
            raw = bytes.fromhex(params[0][2:])
            tx_hash = "0x" + keccak(raw).hex()
            tx = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
            self.sent.append(tx)
            if self.keep != "forget":
                self.pending(tx, tx_hash)
            if self.keep == "mine":
                self.mined.add(tx_hash)
            return tx_hash
        if method == "eth_getTransactionByHash":
            return self.txs.get(params[0])
        if method == "eth_getTransactionReceipt":
            if params[0] not in self.mined:
                return None
            return {
                "transactionHash": params[0],
                "blockHash": "0x" + "ab" * 32,
                "blockNumber": "0x10",
                "transactionIndex": "0x0",
                "from": SENDER,
                "to": TARGET,
                "status": "0x1",
                "gasUsed": "0x5208",
                "cumulativeGasUsed": "0x5208",
                "effectiveGasPrice": "0x1",
                "logs": [],
                "logsBloom": "0x" + "00" * 256,
                "contractAddress": None,
                "type": "0x2",
            }
        raise AssertionError(f"the scripted node was not asked for {method}")


class ScriptedNode(QuietHandler):
    script: Script

    def do_POST(self) -> None:
        request = self.read_json()
        if self.script.fail_sends and request["method"] == "eth_sendRawTransaction":
            self.script.answer(request["method"], request["params"])  # it got through
            self.reply(503)
            return
        result = self.script.answer(request["method"], request["params"])
        self.reply_json({"jsonrpc": "2.0", "id": request["id"], "result": result})


@pytest.fixture
def node() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("Handler", (ScriptedNode,), {"script": script})
    with serving(handler, poll_interval=0.01) as url:
        yield url, script


def sender(url: str, **options: Any) -> Transactor:
    return Transactor(
        connect(url, retries=1), RevertDecoder([]), KEY, poll_latency=0.001, **options
    )


# ---------------------------------------------------------------------------- outbidding


def test_a_stuck_transaction_in_the_journal_is_outbid_at_its_nonce(
    node: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = node
    script.mined_nonce = 5
    stuck = {
        "nonce": 5,
        "gas": 50_000,
        "maxFeePerGas": 100 * GWEI,
        "maxPriorityFeePerGas": 2 * GWEI,
    }
    stuck_hash = "0x" + "cd" * 32
    script.pending(stuck, stuck_hash)

    with NodeState(tmp_path) as state:
        state.record(bytes.fromhex(stuck_hash[2:]), 5)  # signed before a crash, still pending
        sender(url, journal=state).send(Call())

        (sent,) = script.sent
        assert sent["nonce"] == 5
        assert sent["maxFeePerGas"] == 100 * GWEI + 100 * GWEI // 8  # 12.5% above the stuck one
        assert sent["maxPriorityFeePerGas"] == 2 * GWEI + 2 * GWEI // 8
        assert len(state.signed_at(5)) == 2


def test_without_a_journal_the_sender_remembers_what_it_signed(node: tuple[str, Script]) -> None:
    url, script = node
    script.keep = "pending"
    transactor = sender(url, receipt_timeout=0.05)
    with pytest.raises(ReceiptTimeoutError) as timed_out:
        transactor.send(Call())
    assert timed_out.value.tx_hash is not None
    assert f"transaction 0x{timed_out.value.tx_hash.hex()} (nonce 0)" in timed_out.value.message

    script.keep = "mine"
    transactor.send(Call())

    first, second = script.sent
    assert first["nonce"] == second["nonce"] == 0
    assert second["maxFeePerGas"] > first["maxFeePerGas"]


def test_a_journaled_transaction_no_longer_pending_is_not_outbid(
    node: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = node
    with NodeState(tmp_path) as state:
        state.record(b"\xee" * 32, 0)  # unknown to the node: dropped, or from another chain
        sender(url, journal=state).send(Call())

    assert script.sent[0]["maxFeePerGas"] == 10 * GWEI


@pytest.mark.parametrize(
    ("tx", "stuck", "expected"),
    [
        # Dynamic fees: both rise 1/8 above the stuck one's.
        (
            {"maxFeePerGas": 10, "maxPriorityFeePerGas": 1},
            [{"maxFeePerGas": 80, "maxPriorityFeePerGas": 8}],
            {"maxFeePerGas": 90, "maxPriorityFeePerGas": 9},
        ),
        # Already above: kept. A zero tip still rises by 1 wei.
        (
            {"maxFeePerGas": 500, "maxPriorityFeePerGas": 50},
            [{"maxFeePerGas": 80, "maxPriorityFeePerGas": 0}],
            {"maxFeePerGas": 500, "maxPriorityFeePerGas": 50},
        ),
        (
            {"maxFeePerGas": 10, "maxPriorityFeePerGas": 0},
            [{"maxFeePerGas": 10, "maxPriorityFeePerGas": 0}],
            {"maxFeePerGas": 12, "maxPriorityFeePerGas": 1},
        ),
        # Legacy over legacy, legacy over dynamic (its cap counts), dynamic over legacy.
        ({"gasPrice": 10}, [{"gasPrice": 16}], {"gasPrice": 18}),
        ({"gasPrice": 10}, [{"maxFeePerGas": 24, "maxPriorityFeePerGas": 1}], {"gasPrice": 27}),
        (
            {"maxFeePerGas": 10, "maxPriorityFeePerGas": 1},
            [{"gasPrice": 16}],
            {"maxFeePerGas": 18, "maxPriorityFeePerGas": 18},
        ),
        # Several (a stuck replacement of a stuck one): above the highest.
        ({"gasPrice": 1}, [{"gasPrice": 8}, {"gasPrice": 16}], {"gasPrice": 18}),
        ({"gasPrice": 1}, [], {}),
    ],
)
def test_outbid_fees(
    tx: dict[str, Any], stuck: list[dict[str, Any]], expected: dict[str, int]
) -> None:
    assert outbid(tx, stuck) == expected


# ---------------------------------------------------------------------------- drops, doubts


def test_a_transaction_the_node_forgets_fails_at_once(node: tuple[str, Script]) -> None:
    url, script = node
    script.keep = "forget"

    with pytest.raises(TransactionDroppedError) as dropped:
        sender(url, receipt_timeout=3600).send(Call())  # waiting it out would hang the suite

    assert isinstance(dropped.value, UnavailableError)
    assert dropped.value.nonce == 0
    assert f"0x{dropped.value.tx_hash.hex()} (nonce 0) is gone from {url}" in str(dropped.value)


def test_a_failed_broadcast_names_the_signed_transaction(node: tuple[str, Script]) -> None:
    url, script = node
    script.fail_sends = True
    journaled: list[tuple[bytes, int]] = []

    with pytest.raises(TransactionInDoubtError) as lost:
        sender(url, journal=lambda h, n: journaled.append((h, n))).send(Call())

    assert isinstance(lost.value, RpcUnavailableError)
    assert journaled == [(lost.value.tx_hash, 0)]  # the older callback journal still records
    assert lost.value.message == (
        f"cannot reach the chain at {url}: HTTP 503; transaction 0x{lost.value.tx_hash.hex()} "
        "was signed (nonce 0) and may have been sent; the node checks the chain before "
        "sending it again"
    )
    assert lost.value.hint is not None


def test_a_failure_before_signing_is_a_plain_unavailable_error() -> None:
    nothing_there = Web3(HTTPProvider("http://127.0.0.1:1"))  # no probe: the send meets it
    transactor = Transactor(nothing_there, RevertDecoder([]), KEY)

    with pytest.raises(RpcUnavailableError) as failed:
        transactor.send(Call())  # fails reading the nonce: nothing was signed

    assert not isinstance(failed.value, TransactionInDoubtError)


# ---------------------------------------------------------------------------- embedded chain


def test_the_in_process_chain_confirms_and_calls_the_hook_without_waiting(
    tmp_path: Path,
) -> None:
    w3 = connect("eth-tester://tx-hazards")
    key = keccak(b"tx-hazards")
    account = Account.from_key(key)
    w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": account.address, "value": Wei(10**18)}
    )
    nonce = w3.eth.get_transaction_count(account.address)
    seen: list[tuple[bytes, int | None]] = []

    def hook(tx_hash: bytes) -> None:
        seen.append((tx_hash, w3.eth.get_transaction_receipt(HexBytes(tx_hash))["blockNumber"]))

    runtime = "5f5ff3"  # returns nothing: the smallest contract to deploy
    initcode = bytes.fromhex(
        f"60{len(runtime) // 2:02x}600a5f3960{len(runtime) // 2:02x}5ff3" + runtime
    )
    with NodeState(tmp_path) as state:
        transactor = Transactor(
            w3, RevertDecoder([]), key, journal=state, confirmations=12, after_broadcast=hook
        )
        receipt = transactor.send(w3.eth.contract(abi=[], bytecode=initcode).constructor())

        assert seen == [(bytes(receipt["transactionHash"]), receipt["blockNumber"])]
        assert w3.eth.block_number == receipt["blockNumber"]  # no confirmations awaited
        assert state.signed_at(nonce) == [bytes(receipt["transactionHash"])]


def test_the_node_state_is_a_transaction_journal(tmp_path: Path) -> None:
    with NodeState(tmp_path) as state:
        journal: TxJournal = state  # checked by mypy too: no import between node and chain
        assert isinstance(journal, TxJournal)
