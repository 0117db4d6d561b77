"""The `Ledger` port: how node code talks to the round contract without knowing about web3.

`flare.chain` implements it over web3 (an in-process EVM or any JSON-RPC node); tests and the
embedded demo use the same port. Transactions return a `TxReceipt` with the decoded events of
that transaction; a refused call raises the `ContractError` subclass named after the
contract's custom error, so node code can catch `NotEligibleError` without importing the
chain layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from flare.protocol.events import ChainEvent
from flare.protocol.ledger_errors import *  # noqa: F403  (the port's errors are part of it)
from flare.protocol.rounds import NodeInfo, Phase, Proposal, RoundConfig, RoundInfo, Seat


@dataclass(frozen=True)
class TxReceipt:
    """A mined, successful transaction and the contract events it emitted, in log order."""

    tx_hash: bytes
    block: int
    gas_used: int
    events: tuple[ChainEvent, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ProposalReceipt(TxReceipt):
    """`proposeAggregate`'s receipt with the id the contract gave the proposal."""

    proposal_id: int


@runtime_checkable
class Ledger(Protocol):
    """One method per `IFlareRounds` function and view, snake_cased, plus the event log.

    Rounds, ids and amounts are ints; addresses are checksummed strings; CIDs are binary CIDv1
    bytes; `bytes32` values are 32 bytes. Transactions are sent from `account` and return once
    mined; a revert raises a `ContractError`, an unreachable endpoint an `UnavailableError`.
    """

    @property
    def address(self) -> str:
        """The contract's address."""
        ...

    @property
    def chain_id(self) -> int:
        """The chain the contract lives on."""
        ...

    @property
    def account(self) -> str | None:
        """The address transactions are sent from; None for a read-only ledger."""
        ...

    # ---------------------------------------------------------------- chain

    def block_number(self) -> int:
        """The latest block: where an event scan stops."""
        ...

    def head(self) -> tuple[int, bytes]:
        """The latest block's number and hash: a tip that did not change has no new events."""
        ...

    def block_hash(self, number: int) -> bytes | None:
        """The hash of the canonical block at `number`; None past the tip. A block whose hash
        is unchanged has its whole history unchanged: no reorg reached it."""
        ...

    def timestamp(self) -> int:
        """The latest block's timestamp: the clock phases are derived from."""
        ...

    def balance(self) -> int:
        """The sending account's balance in wei; 0 for a read-only ledger."""
        ...

    def events(self, from_block: int, to_block: int | None = None) -> list[ChainEvent]:
        """The contract's events in [from_block, to_block] (None = latest), in emission order."""
        ...

    # ---------------------------------------------------------------- nodes

    def register(
        self, bls_key: bytes, proof_of_possession: bytes, peer_key: bytes
    ) -> TxReceipt: ...

    def deregister(self) -> TxReceipt: ...

    # ---------------------------------------------------------------- rounds

    def submit_update(self, round: int, cid: bytes, num_samples: int) -> TxReceipt: ...

    def claim_seat(self, round: int, proof: bytes, bls_key: bytes) -> TxReceipt: ...

    def propose_aggregate(self, round: int, cid: bytes, updates_root: bytes) -> ProposalReceipt: ...

    def vote(self, round: int, proposal_id: int, approve: bool) -> TxReceipt: ...

    def close_round(self, round: int) -> TxReceipt: ...

    # ---------------------------------------------------------------- admin

    def start(self) -> TxReceipt: ...

    def allow(self, node: str) -> TxReceipt: ...

    def disallow(self, node: str) -> TxReceipt: ...

    def set_allowlist(self, enabled: bool) -> TxReceipt: ...

    def set_config(self, config: RoundConfig) -> TxReceipt: ...

    def pause(self) -> TxReceipt: ...

    def unpause(self) -> TxReceipt: ...

    def transfer_ownership(self, new_owner: str) -> TxReceipt: ...

    def accept_ownership(self) -> TxReceipt: ...

    # ---------------------------------------------------------------- views

    def version(self) -> int:
        """The interface version the contract speaks (`rounds.INTERFACE_VERSION` here)."""
        ...

    def owner(self) -> str: ...

    def pending_owner(self) -> str: ...

    def paused(self) -> bool: ...

    def model_spec_hash(self) -> bytes: ...

    def genesis_model(self) -> bytes: ...

    def allowlist_enabled(self) -> bool: ...

    def config(self) -> RoundConfig: ...

    def current_round(self) -> int: ...

    def phase(self, round: int) -> Phase: ...

    def get_round(self, round: int) -> RoundInfo: ...

    def get_node(self, node: str) -> NodeInfo: ...

    def bls_key_owner(self, bls_key_hash: bytes) -> str:
        """The address a BLS key (by keccak256) is bound to; the zero address if none."""
        ...

    def node_count(self) -> int:
        """Registered nodes now; who they are is in the NodeRegistered/NodeDeregistered events."""
        ...

    def is_eligible(self, round: int, node: str) -> bool: ...

    def update_of(self, round: int, node: str) -> bytes:
        """keccak256 of the node's update CID in that round; 32 zero bytes when none."""
        ...

    def seats(self, round: int) -> Sequence[Seat]: ...

    def is_seat_holder(self, round: int, node: str) -> bool: ...

    def has_voted(self, round: int, node: str) -> bool: ...

    def get_proposal(self, round: int, proposal_id: int) -> Proposal: ...

    def global_model(self) -> tuple[int, bytes]:
        """(round, CID) of the latest finalized model; round 0 is the genesis model."""
        ...

    def base_model(self, round: int) -> bytes:
        """The CID of the model round `round` trains from."""
        ...
