"""The narrow ports the node loop (`flare.node.round`) talks through, each with a twin.

- `NodeLedger`: the part of the round contract a node uses (no owner or admin calls).
  `flare.chain.ledger.Web3Ledger` implements it over any EVM; tests run it on the in-process
  EVM, which executes the real bytecode.
- `Trainer`: trains an update from a base model, keeps the state that lasts across rounds,
  and evaluates a model on the node's own held-out data. `flare.node.train.trainer` is the
  LeRobot one; `flare.node.train.twin` a torch-free twin that loop tests run in milliseconds.
- `Clock`: how the loop waits. Wall time for a real node; the demo's clock moves the chain's
  time forward when every node is waiting.
- `Gossip`: best-effort broadcast to the deployment's other nodes. `flare.node.gossip.libp2p`
  is py-libp2p gossipsub; `flare.node.gossip.memory` an in-memory twin for the demo and tests.
  It carries opaque bytes: signing and checking messages (`flare.protocol.gossip`) is the
  loop's, so both carry exactly the same messages.
- The content store is `flare.protocol.store.BlobStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from flare.protocol.events import ChainEvent
from flare.protocol.ledger import ProposalReceipt, TxReceipt
from flare.protocol.model import GlobalModel
from flare.protocol.modelspec import ModelSpec
from flare.protocol.rounds import NodeInfo, Proposal, RoundInfo, Seat


@runtime_checkable
class NodeLedger(Protocol):
    """The round contract as a node sees it: what it reads and the transactions it sends."""

    @property
    def address(self) -> str:
        """The contract's address."""
        ...

    @property
    def chain_id(self) -> int: ...

    @property
    def account(self) -> str | None:
        """The node's own address (transactions are sent from it)."""
        ...

    def timestamp(self) -> int:
        """The latest block's timestamp: the clock phases follow."""
        ...

    def balance(self) -> int:
        """The node account's balance in wei (for metrics and status)."""
        ...

    def block_number(self) -> int: ...

    def head(self) -> tuple[int, bytes]:
        """The latest block's number and hash."""
        ...

    def block_hash(self, number: int) -> bytes | None:
        """The hash of the canonical block at `number`; None past the tip."""
        ...

    def events(self, from_block: int, to_block: int | None = None) -> list[ChainEvent]: ...

    def current_round(self) -> int: ...

    def get_round(self, round: int) -> RoundInfo: ...

    def get_node(self, node: str) -> NodeInfo: ...

    def seats(self, round: int) -> Sequence[Seat]: ...

    def is_seat_holder(self, round: int, node: str) -> bool: ...

    def get_proposal(self, round: int, proposal_id: int) -> Proposal: ...

    def update_of(self, round: int, node: str) -> bytes: ...

    def has_voted(self, round: int, node: str) -> bool: ...

    def base_model(self, round: int) -> bytes:
        """The binary CID of the model round `round` trains from."""
        ...

    def submit_update(self, round: int, cid: bytes, num_samples: int) -> TxReceipt: ...

    def claim_seat(self, round: int, proof: bytes, bls_key: bytes) -> TxReceipt: ...

    def propose_aggregate(self, round: int, cid: bytes, updates_root: bytes) -> ProposalReceipt: ...

    def vote(self, round: int, proposal_id: int, approve: bool) -> TxReceipt: ...

    def close_round(self, round: int) -> TxReceipt: ...


@dataclass(frozen=True)
class Trained:
    """A round's local update: the `flare-update/1` bundle and what it was trained on."""

    bundle: bytes
    num_samples: int
    metrics: Mapping[str, float] = field(default_factory=dict)


class Trainer(Protocol):
    """Local training with state that lasts across rounds.

    `train` leaves the state it produces (error-feedback residual, warm-start factors, the
    schedule's position) pending; `commit` makes it the state the next round starts from, once
    the update is registered. Training a round again before `commit` starts from the same
    state, so a node that crashed between training and registering trains the same update.
    """

    @property
    def spec(self) -> ModelSpec: ...

    def train(
        self, base: GlobalModel, base_cid: str, round_number: int, seed: bytes, node: str
    ) -> Trained: ...

    def commit(self, round_number: int) -> None: ...

    def evaluate(self, model: GlobalModel) -> float:
        """Loss of `model` on the node's own held-out data (the policy's acceptance test)."""
        ...


class Clock(Protocol):
    """How a node loop waits; `sleep` may return early (a signal, a demo scheduler)."""

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Peer:
    """A peer the gossip layer is connected to: its libp2p id and, when known, its address."""

    peer_id: str
    addr: str | None = None


@runtime_checkable
class Gossip(Protocol):
    """The deployment's gossip topic. Never blocks the loop and never raises for a lost
    message: the chain stays the source of truth, gossip only makes nodes faster."""

    def publish(self, data: bytes) -> None:
        """Send `data` to the topic (queued: returns at once)."""
        ...

    def receive(self) -> list[bytes]:
        """The messages received since the last call, oldest first (never blocks)."""
        ...

    def peers(self) -> list[Peer]:
        """The peers connected now."""
        ...

    def close(self) -> None: ...
