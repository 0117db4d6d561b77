"""The contract's events as values: the audit log every round can be rebuilt from.

One frozen dataclass per `IFlareRounds` event, field for field, plus where the log sits on the
chain (block, transaction, log index) so an auditor can order and cite it. Addresses are
checksummed strings, `bytes32` and CIDs are bytes, enums are `Phase`/`FailureReason`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flare.protocol.rounds import FailureReason, RoundConfig


@dataclass(frozen=True, kw_only=True)
class ChainEvent:
    """Position of a log: events sort by (block, log_index) in the order the chain emitted them."""

    block: int
    log_index: int
    tx_hash: bytes

    @property
    def position(self) -> tuple[int, int]:
        """Sort key that reproduces emission order."""
        return (self.block, self.log_index)


@dataclass(frozen=True, kw_only=True)
class NodeRegistered(ChainEvent):
    node: str
    vrf_public_key: bytes
    eligible_from: int


@dataclass(frozen=True, kw_only=True)
class NodeDeregistered(ChainEvent):
    node: str
    by: str


@dataclass(frozen=True, kw_only=True)
class NodeAllowed(ChainEvent):
    node: str


@dataclass(frozen=True, kw_only=True)
class NodeDisallowed(ChainEvent):
    node: str


@dataclass(frozen=True, kw_only=True)
class AllowlistSet(ChainEvent):
    enabled: bool


@dataclass(frozen=True, kw_only=True)
class ConfigSet(ChainEvent):
    config: RoundConfig
    effective_from: int


@dataclass(frozen=True, kw_only=True)
class RoundOpened(ChainEvent):
    round: int
    seed: bytes
    base_round: int
    base_model: bytes
    train_end: int
    review_window: int
    committee_size: int
    quorum: int
    min_updates: int
    eligible_nodes: int


@dataclass(frozen=True, kw_only=True)
class UpdateSubmitted(ChainEvent):
    round: int
    node: str
    cid: bytes
    num_samples: int


@dataclass(frozen=True, kw_only=True)
class SeatClaimed(ChainEvent):
    round: int
    node: str
    output: bytes
    proof: bytes
    evicted: str  # the zero address when no seat holder was pushed out


@dataclass(frozen=True, kw_only=True)
class TrainingClosed(ChainEvent):
    round: int
    review_end: int


@dataclass(frozen=True, kw_only=True)
class AggregateProposed(ChainEvent):
    round: int
    proposer: str
    proposal_id: int
    cid: bytes
    updates_root: bytes


@dataclass(frozen=True, kw_only=True)
class VoteCast(ChainEvent):
    round: int
    node: str
    proposal_id: int
    approve: bool


@dataclass(frozen=True, kw_only=True)
class RoundFinalized(ChainEvent):
    round: int
    proposal_id: int
    cid: bytes
    updates_root: bytes
    approvals: int


@dataclass(frozen=True, kw_only=True)
class RoundFailed(ChainEvent):
    round: int
    reason: FailureReason


@dataclass(frozen=True, kw_only=True)
class OwnershipTransferStarted(ChainEvent):
    """OpenZeppelin Ownable2Step: a new owner was proposed and must accept."""

    previous_owner: str
    new_owner: str


@dataclass(frozen=True, kw_only=True)
class OwnershipTransferred(ChainEvent):
    """OpenZeppelin Ownable: the owner changed (also emitted once at deployment)."""

    previous_owner: str
    new_owner: str


@dataclass(frozen=True, kw_only=True)
class Paused(ChainEvent):
    """OpenZeppelin Pausable: state-changing node calls are refused until unpaused."""

    account: str


@dataclass(frozen=True, kw_only=True)
class Unpaused(ChainEvent):
    account: str


Event = (
    NodeRegistered
    | NodeDeregistered
    | NodeAllowed
    | NodeDisallowed
    | AllowlistSet
    | ConfigSet
    | RoundOpened
    | UpdateSubmitted
    | SeatClaimed
    | TrainingClosed
    | AggregateProposed
    | VoteCast
    | RoundFinalized
    | RoundFailed
    | OwnershipTransferStarted
    | OwnershipTransferred
    | Paused
    | Unpaused
)

EVENT_TYPES: dict[str, type[ChainEvent]] = {
    cls.__name__: cls
    for cls in (
        NodeRegistered,
        NodeDeregistered,
        NodeAllowed,
        NodeDisallowed,
        AllowlistSet,
        ConfigSet,
        RoundOpened,
        UpdateSubmitted,
        SeatClaimed,
        TrainingClosed,
        AggregateProposed,
        VoteCast,
        RoundFinalized,
        RoundFailed,
        OwnershipTransferStarted,
        OwnershipTransferred,
        Paused,
        Unpaused,
    )
}
