"""The contract's events as values: the audit log every round can be rebuilt from.

One frozen dataclass per `IFlareRounds` event, field for field, plus where the log sits on the
chain (block, transaction, log index) so an auditor can order and cite it. Addresses are
checksummed strings, `bytes32` and CIDs are bytes, enums are `Phase`/`FailureReason`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flare.protocol.rounds import FailureReason, RoundConfig, RoundParams


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
    bls_key: bytes  # the 256-byte G2 public key whose proof of possession the contract checked
    peer_key: bytes  # ed25519: the node's libp2p identity and gossip signer
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
    params: RoundParams
    review_policy: bytes


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
    output: bytes  # keccak256(proof), derived by the contract from the proof it verified
    proof: bytes
    evicted: str  # the zero address when no seat holder was pushed out


@dataclass(frozen=True, kw_only=True)
class TrainingClosed(ChainEvent):
    round: int
    review_start: int  # may lie ahead: Training never ends before the round's claimEnd
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


def registered_nodes(events: Iterable[ChainEvent]) -> dict[str, NodeRegistered]:
    """The nodes registered after `events` (in emission order, from the deployment on), each
    with the registration that stands: the contract keeps no list, the log is the list."""
    nodes: dict[str, NodeRegistered] = {}
    for event in events:
        if isinstance(event, NodeRegistered):
            nodes[event.node] = event
        elif isinstance(event, NodeDeregistered):
            nodes.pop(event.node, None)
    return nodes
