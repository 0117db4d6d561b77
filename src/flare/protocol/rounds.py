"""The round protocol's values: phases, parameters, and what the contract reports about rounds.

These mirror the types of `IFlareRounds` so node code, the chain adapter and auditors share one
vocabulary. Two formulas live here because both the contract and the nodes must agree on them:
the quorum (`ceil(k * quorumBps / 10000)`) and the `updatesRoot` a proposal commits to.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from flare.protocol.errors import ConfigError
from flare.protocol.sortition import rank_int

BPS = 10_000
MAX_COMMITTEE = 64
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_UINT16 = 2**16 - 1
_UINT32 = 2**32 - 1


class Phase(IntEnum):
    """Where a round stands; `NONE` is a round not opened yet (same order as the contract)."""

    NONE = 0
    TRAINING = 1
    REVIEW = 2
    FINALIZED = 3
    FAILED = 4


class FailureReason(IntEnum):
    """Why a round failed (same order as the contract)."""

    TOO_FEW_UPDATES = 0
    NO_QUORUM = 1


class InvalidRoundConfigError(ConfigError):
    """Round parameters the contract would refuse."""


def quorum(committee_size: int, quorum_bps: int) -> int:
    """Approvals a proposal needs: `ceil(k * quorumBps / 10000)`, in integers like the contract."""
    if committee_size < 0 or quorum_bps < 0:
        raise InvalidRoundConfigError(
            f"quorum of k={committee_size}, bps={quorum_bps} is undefined",
            hint="committee size and quorum bps are non-negative",
        )
    return (committee_size * quorum_bps + BPS - 1) // BPS


@dataclass(frozen=True)
class RoundConfig:
    """Parameters a round is opened with; a change applies from the next opened round.

    Checked here with the contract's own bounds so a bad value fails before a transaction.
    """

    committee_size: int = 7
    quorum_bps: int = 6000
    train_window: int = 3600
    review_window: int = 1800
    min_updates: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.committee_size <= MAX_COMMITTEE:
            problems.append(f"committee size {self.committee_size} is not in 1..{MAX_COMMITTEE}")
        if not 1 <= self.quorum_bps <= BPS:
            problems.append(f"quorum bps {self.quorum_bps} is not in 1..{BPS}")
        if not 1 <= self.train_window <= _UINT32:
            problems.append(f"train window {self.train_window}s is not in 1..{_UINT32}")
        if not 1 <= self.review_window <= _UINT32:
            problems.append(f"review window {self.review_window}s is not in 1..{_UINT32}")
        if not 1 <= self.min_updates <= _UINT32:
            problems.append(f"min updates {self.min_updates} is not in 1..{_UINT32}")
        if problems:
            raise InvalidRoundConfigError(
                "invalid round config: " + "; ".join(problems),
                hint="see docs/deployer.md for what each parameter means",
            )

    @property
    def quorum(self) -> int:
        """Approvals needed with this config."""
        return quorum(self.committee_size, self.quorum_bps)

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """The `Config` struct in ABI field order."""
        return (
            self.committee_size,
            self.quorum_bps,
            self.train_window,
            self.review_window,
            self.min_updates,
        )


@dataclass(frozen=True)
class RoundInfo:
    """The stored facts of a round and what the contract derives from them (`RoundView`)."""

    round: int
    phase: Phase
    seed: bytes
    base_round: int
    opened_at: int
    train_end: int
    review_start: int
    review_end: int
    committee_size: int
    quorum: int
    min_updates: int
    eligible_nodes: int
    update_count: int
    seat_count: int
    proposal_count: int
    finalized_proposal: int


@dataclass(frozen=True)
class NodeInfo:
    """What the contract knows about a node (`NodeView`)."""

    address: str
    registered: bool
    allowed: bool
    vrf_public_key: bytes
    eligible_from: int


@dataclass(frozen=True)
class Seat:
    """A committee seat: its holder and the first 32 bytes of the holder's VRF output."""

    holder: str
    output: bytes

    @property
    def rank(self) -> int:
        """The output as the contract ranks it (`sortition.rank_int`): lower is better."""
        return rank_int(self.output)


@dataclass(frozen=True)
class Proposal:
    """An aggregate proposal and its tally (`ProposalView`); ids start at 1."""

    round: int
    proposal_id: int
    proposer: str
    cid: bytes
    updates_root: bytes
    approvals: int
    rejections: int


def address_bytes(address: str) -> bytes:
    """The 20 bytes of a 0x-hex address; refuses anything else (a checksum typo included)."""
    if not isinstance(address, str) or not address.startswith("0x"):
        raise ConfigError(
            f"{address!r} is not an Ethereum address: it must start with 0x",
            hint="give 0x followed by 40 hex digits",
        )
    try:
        checksummed = to_checksum_address(address)
    except ValueError as error:
        raise ConfigError(
            f"{address!r} is not an Ethereum address",
            hint="give 0x followed by 40 hex digits",
        ) from error
    body = address[2:]
    # All-lower and all-upper hex carry no checksum (EIP-55); mixed case must match it.
    if body not in (body.lower(), body.upper()) and address != checksummed:
        raise ConfigError(
            f"{address} fails its EIP-55 checksum",
            hint=f"did you mean {checksummed}? Copy addresses rather than typing them",
        )
    return bytes.fromhex(checksummed[2:])


def updates_root(updates: Iterable[tuple[str, bytes]]) -> bytes:
    """Commitment to the updates an aggregate includes, in the order aggregation uses.

    keccak256 over the concatenation, for updates sorted by node address, of the 20-byte
    address followed by keccak256(binary CID). One entry per node: a duplicate is refused.
    """
    entries = sorted((address_bytes(node), cid) for node, cid in updates)
    for (previous, _), (current, _) in itertools.pairwise(entries):
        if previous == current:
            raise ConfigError(
                f"node {to_checksum_address(current)} appears twice in the update list",
                hint="a node submits one update per round; deduplicate before committing",
            )
    return keccak(b"".join(node + keccak(cid) for node, cid in entries))
