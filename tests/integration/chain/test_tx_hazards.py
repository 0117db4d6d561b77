"""What an unattended node meets on a real chain: reorgs, stuck transactions, a dying endpoint.

Each situation is made deterministically with anvil's RPC methods, from the Transactor's
`after_broadcast` hook (the transaction is accepted, its wait has not begun) or from a provider
that acts right after one answer: no sleeps, no timing. `anvil_reorg` needs past states, which
the session anvil's bare `--prune-history` keeps none of ("Required data unavailable"), so the
reorg tests run on an anvil of their own that keeps some.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anvil_process import AnvilProcess, tools_home
from chain_harness import GENESIS_CID, SPEC_HASH, federation_config
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from local_http import ForwardingProxy, LocalServer
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound
from web3.types import RPCEndpoint, RPCResponse

from flare.chain.connect import RpcUnavailableError, connect
from flare.chain.deploy import deploy
from flare.chain.devchain import dev_account_key
from flare.chain.ledger import Web3Ledger
from flare.chain.transact import (
    ReceiptTimeoutError,
    TransactionDroppedError,
    TransactionInDoubtError,
)
from flare.node.state import NodeState
from flare.protocol.errors import UnavailableError

pytestmark = pytest.mark.anvil

# Long enough that waiting it out would be plain; a drop must fail well before it.
PATIENT = 60.0
# Kept past states: enough for the reorgs here (depth 2), still bounded like the session's.
KEPT_STATES = 64


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    """Call an anvil method; its error fails the test at once."""
    answer = w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in answer, (method, answer)
    return answer.get("result")


@dataclass
class Deployed:
    """A fresh FlareRounds on `w3`; the owner (dev account 0) sends `start()` as the test call."""

    url: str
    w3: Web3
    address: str
    key: bytes

    @property
    def sender(self) -> ChecksumAddress:
        return ChecksumAddress(self.w3.eth.account.from_key(self.key).address)

    def nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.sender, "latest"))

    def owner(self, w3: Web3 | None = None, **options: Any) -> Web3Ledger:
        return Web3Ledger(w3 or self.w3, self.address, private_key=self.key, **options)


def deploy_on(url: str) -> Deployed:
    w3 = connect(url)
    key = dev_account_key(w3.eth.chain_id, 0)
    record, _ = deploy(
        w3,
        key,
        model_spec_hash=SPEC_HASH,
        genesis_model=GENESIS_CID,
        config=federation_config(),
    )
    return Deployed(url, w3, record.address, key)


@pytest.fixture(scope="module")
def reorg_url() -> Iterator[str]:
    """An anvil of this module's that keeps `KEPT_STATES` past states, so it can reorg."""
    anvil = AnvilProcess(tools_home(), kept_states=KEPT_STATES)
    try:
        yield anvil.url
    finally:
        anvil.stop()


@pytest.fixture
def on_reorg_chain(reorg_url: str) -> Deployed:
    return deploy_on(reorg_url)


@pytest.fixture
def on_session_chain(anvil_url: str) -> Deployed:
    return deploy_on(anvil_url)


@pytest.fixture
def manual_mining(on_session_chain: Deployed) -> Iterator[Deployed]:
    """Automine off for one test. The session anvil is shared: afterwards, whatever a failed
    test left pending is mined, and automine is turned back on."""
    rpc(on_session_chain.w3, "evm_setAutomine", False)
    try:
        yield on_session_chain
    finally:
        rpc(on_session_chain.w3, "evm_mine")
        rpc(on_session_chain.w3, "evm_setAutomine", True)


class Trap(HTTPProvider):
    """A provider that runs `action` once, right after the first answer to `method` that
    carries a result, before the caller sees that answer: the chain changes under a caller
    that holds a now stale answer."""

    def __init__(self, url: str, method: str, action: Callable[[], None]) -> None:
        super().__init__(url)
        self.method = method
        self.action: Callable[[], None] | None = action

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        answer = super().make_request(method, params)
        if method == self.method and answer.get("result") and self.action is not None:
            action, self.action = self.action, None
            action()
        return answer


# ---------------------------------------------------------------------------- reorgs


def test_a_transaction_a_reorg_drops_fails_at_once_naming_it(
    on_reorg_chain: Deployed, tmp_path: Path
) -> None:
    chain = on_reorg_chain
    nonce = chain.nonce()
    broadcast: list[bytes] = []

    def reorg_it_away(tx_hash: bytes) -> None:
        broadcast.append(tx_hash)
        # anvil's automine mines inside eth_sendRawTransaction: the block is there already.
        assert chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["blockNumber"] is not None
        rpc(chain.w3, "anvil_reorg", 1, [])  # the block is replaced by an empty one

    with NodeState(tmp_path) as state:
        owner = chain.owner(journal=state, after_broadcast=reorg_it_away, receipt_timeout=PATIENT)
        began = time.monotonic()
        with pytest.raises(TransactionDroppedError) as dropped:
            owner.start()
        waited = time.monotonic() - began

        assert isinstance(dropped.value, UnavailableError)  # the loop retries the step later
        assert dropped.value.tx_hash == broadcast[0]
        assert f"transaction 0x{broadcast[0].hex()} (nonce {nonce})" in dropped.value.message
        assert "a reorg (or the node) dropped it" in dropped.value.message
        assert dropped.value.hint == "the node re-checks the chain and redoes the step"
        assert waited < PATIENT / 2  # it did not wait out the receipt timeout
        # The effect is absent and the nonce unspent: the step is simply done again.
        assert owner.current_round() == 0
        assert chain.nonce() == nonce
        assert state.signed_at(nonce) == broadcast

        redone = chain.owner(journal=state).start()

        assert owner.current_round() == 1
        assert chain.nonce() == nonce + 1
        assert state.signed_at(nonce) == [broadcast[0], redone.tx_hash]


def test_a_send_returns_only_once_its_confirmations_are_mined(on_reorg_chain: Deployed) -> None:
    chain = on_reorg_chain

    def mine(blocks: int) -> Callable[[bytes], None]:
        return lambda tx_hash: rpc(chain.w3, "anvil_mine", hex(blocks))

    # One block on top of the receipt's is not two: the wait ends in a timeout, naming it.
    with pytest.raises(ReceiptTimeoutError) as short:
        chain.owner(confirmations=2, after_broadcast=mine(1), receipt_timeout=0.3).start()
    assert short.value.tx_hash is not None
    assert f"transaction 0x{short.value.tx_hash.hex()}" in short.value.message
    assert "not confirmed by 2 more blocks" in short.value.message

    chain.owner().set_allowlist(True)  # a fresh call to confirm: the round has started
    sent = chain.owner(confirmations=2, after_broadcast=mine(2)).set_allowlist(False)

    assert chain.w3.eth.block_number == sent.block + 2
    assert not chain.owner().allowlist_enabled()


def test_a_reorg_during_the_confirmations_is_followed_to_the_new_block(
    on_reorg_chain: Deployed,
) -> None:
    chain = on_reorg_chain
    moves: list[tuple[int, int]] = []

    def move_it() -> None:
        """The receipt was just read in block B: re-include the transaction in block B+1 of a
        new branch (depth 2), then mine enough for the old count to look done."""
        head = chain.w3.eth.block_number
        (mined,) = chain.w3.eth.get_block(head)["transactions"]
        tx_hash = HexBytes(mined)  # type: ignore[arg-type]  # hashes: full_transactions is off
        raw = rpc(chain.w3, "eth_getRawTransactionByHash", tx_hash.to_0x_hex())
        rpc(chain.w3, "evm_mine")
        rpc(chain.w3, "anvil_reorg", 2, [[raw, 1]])
        rpc(chain.w3, "anvil_mine", hex(3))
        moved = chain.w3.eth.get_transaction_receipt(tx_hash)["blockNumber"]
        moves.append((head, moved))

    watched = Web3(Trap(chain.url, "eth_getTransactionReceipt", move_it))
    sent = chain.owner(watched, confirmations=2).start()

    ((first, moved),) = moves
    assert moved == first + 1
    assert sent.block == moved  # the receipt of the block that stayed, not the stale one
    assert chain.w3.eth.get_transaction_receipt(HexBytes(sent.tx_hash))["blockNumber"] == moved
    assert chain.owner().current_round() == 1


def test_a_reorg_during_the_confirmations_that_drops_it_is_a_drop(
    on_reorg_chain: Deployed,
) -> None:
    chain = on_reorg_chain
    nonce = chain.nonce()

    def drop_it() -> None:
        rpc(chain.w3, "anvil_reorg", 1, [])
        rpc(chain.w3, "anvil_mine", hex(2))

    watched = Web3(Trap(chain.url, "eth_getTransactionReceipt", drop_it))
    with pytest.raises(TransactionDroppedError, match="after it was mined in block") as dropped:
        chain.owner(watched, confirmations=2, receipt_timeout=PATIENT).start()

    assert dropped.value.nonce == nonce
    assert chain.owner().current_round() == 0
    assert chain.nonce() == nonce


# ---------------------------------------------------------------------------- stuck, dropped


def test_a_stuck_transaction_is_replaced_at_its_nonce_not_left_to_mine_later(
    manual_mining: Deployed, tmp_path: Path
) -> None:
    chain = manual_mining
    nonce = chain.nonce()

    with NodeState(tmp_path) as state:
        with pytest.raises(ReceiptTimeoutError) as timed_out:
            chain.owner(journal=state, receipt_timeout=0.3).start()
        stuck_hash = timed_out.value.tx_hash
        assert stuck_hash is not None
        assert f"transaction 0x{stuck_hash.hex()} (nonce {nonce})" in timed_out.value.message
        stuck = chain.w3.eth.get_transaction(HexBytes(stuck_hash))
        assert stuck["blockNumber"] is None  # pending, and would mine with the next block

        def mine(tx_hash: bytes) -> None:
            rpc(chain.w3, "evm_mine")

        sent = chain.owner(journal=state, after_broadcast=mine).start()

        replacement = chain.w3.eth.get_transaction(HexBytes(sent.tx_hash))
        assert replacement["nonce"] == stuck["nonce"] == nonce
        assert replacement["maxFeePerGas"] * 8 >= stuck["maxFeePerGas"] * 9
        assert replacement["maxPriorityFeePerGas"] * 8 >= stuck["maxPriorityFeePerGas"] * 9
        with pytest.raises(TransactionNotFound):
            chain.w3.eth.get_transaction(HexBytes(stuck_hash))  # replaced: it can never mine
        assert chain.nonce() == nonce + 1
        assert chain.owner().current_round() == 1
        assert state.signed_at(nonce) == [stuck_hash, sent.tx_hash]


def test_a_transaction_the_node_forgets_while_pending_is_a_drop(manual_mining: Deployed) -> None:
    chain = manual_mining

    def forget_it(tx_hash: bytes) -> None:
        rpc(chain.w3, "anvil_dropTransaction", "0x" + tx_hash.hex())

    with pytest.raises(TransactionDroppedError, match="before it was mined"):
        chain.owner(after_broadcast=forget_it, receipt_timeout=PATIENT).start()

    rpc(chain.w3, "evm_mine")
    assert chain.owner().current_round() == 0


# ---------------------------------------------------------------------------- dead endpoint


class Relay(ForwardingProxy):
    """Forwards JSON-RPC to anvil; with `fail_sends`, a forwarded eth_sendRawTransaction is
    answered 503, as when the endpoint breaks down after passing the transaction on."""

    fail_sends = False

    def lose_answer(self, method: str) -> bool:
        return self.fail_sends and method == "eth_sendRawTransaction"


def relay(anvil_url: str, *, fail_sends: bool = False) -> LocalServer:
    """An endpoint in front of anvil; its `close()` stops it: connections are then refused."""
    handler = type("Handler", (Relay,), {"upstream": anvil_url, "fail_sends": fail_sends})
    return LocalServer(handler)


def test_an_endpoint_that_dies_after_the_broadcast_names_the_transaction(
    on_session_chain: Deployed, anvil_url: str
) -> None:
    chain = on_session_chain
    endpoint = relay(anvil_url)
    nonce = chain.nonce()
    try:
        owner = chain.owner(
            connect(endpoint.url, retries=1), after_broadcast=lambda _: endpoint.close()
        )
        with pytest.raises(TransactionInDoubtError) as lost:
            owner.start()
    finally:
        endpoint.close()

    tx_hash = lost.value.tx_hash
    assert isinstance(lost.value, RpcUnavailableError)
    assert lost.value.url == endpoint.url
    assert lost.value.message.startswith(f"cannot reach the chain at {endpoint.url}")
    assert (
        f"transaction 0x{tx_hash.hex()} was signed (nonce {nonce}) and may have been sent; "
        "the node checks the chain before sending it again"
    ) in lost.value.message
    # It had been sent: what the loop finds when it checks the chain.
    assert chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["status"] == 1
    assert chain.owner().current_round() == 1


def test_an_endpoint_that_fails_the_broadcast_names_the_transaction(
    on_session_chain: Deployed, anvil_url: str
) -> None:
    chain = on_session_chain
    endpoint = relay(anvil_url, fail_sends=True)
    nonce = chain.nonce()
    hooked: list[bytes] = []
    try:
        owner = chain.owner(connect(endpoint.url, retries=1), after_broadcast=hooked.append)
        with pytest.raises(TransactionInDoubtError, match=f"signed \\(nonce {nonce}\\)") as lost:
            owner.start()
    finally:
        endpoint.close()

    assert hooked == []  # never accepted, as far as the sender could tell
    assert "HTTP 503" in lost.value.message
    assert chain.w3.eth.get_transaction_receipt(HexBytes(lost.value.tx_hash))["status"] == 1
