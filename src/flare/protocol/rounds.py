"""The round protocol's values: phases, parameters, and what the contract reports about rounds.

These mirror the types of `IFlareRounds` (interface version `INTERFACE_VERSION`) so node code,
the chain adapter and auditors share one vocabulary. The formulas both the contract and the
nodes must agree on live here: the quorum (`ceil(k * quorumBps / 10000)`), the `updatesRoot` a
proposal commits to, and the seed chain (`next_seed`, `accumulate`) an auditor recomputes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from flare.protocol.errors import ConfigError
from flare.protocol.sortition import seat_word

INTERFACE_VERSION = 2  # what FlareRounds.version() returns for the interface this code speaks
BPS = 10_000
MAX_COMMITTEE = 64
MAX_CID_BYTES = 128
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_UINT32 = 2**32 - 1
_UINT64 = 2**64 - 1


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
    `review_policy` is the binary CID of the deployment's review policy document
    (`flare.protocol.policy`); every deployment names one, so it has no default.
    """

    committee_size: int = 7
    quorum_bps: int = 6000
    train_window: int = 3600
    review_window: int = 1800
    min_claim_window: int = 300
    min_updates: int = 1
    max_samples: int = 100_000
    review_policy: bytes = field(kw_only=True)

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.committee_size <= MAX_COMMITTEE:
            problems.append(f"committee size {self.committee_size} is not in 1..{MAX_COMMITTEE}")
        if not 1 <= self.quorum_bps <= BPS:
            problems.append(f"quorum bps {self.quorum_bps} is not in 1..{BPS}")
        elif self.committee_size >= 1 and 2 * self.quorum <= self.committee_size:
            problems.append(
                f"a quorum of {self.quorum} of {self.committee_size} seats is not a majority: "
                "a minority of the committee could finalize a model on its own"
            )
        if not 1 <= self.train_window <= _UINT32:
            problems.append(f"train window {self.train_window}s is not in 1..{_UINT32}")
        if not 1 <= self.review_window <= _UINT32:
            problems.append(f"review window {self.review_window}s is not in 1..{_UINT32}")
        if not 0 <= self.min_claim_window <= min(self.train_window, _UINT32):
            problems.append(
                f"min claim window {self.min_claim_window}s is not in 0..{self.train_window} "
                "(the train window)"
            )
        if not 1 <= self.min_updates <= _UINT32:
            problems.append(f"min updates {self.min_updates} is not in 1..{_UINT32}")
        if not 1 <= self.max_samples <= _UINT64:
            problems.append(f"max samples {self.max_samples} is not in 1..{_UINT64}")
        if not 1 <= len(self.review_policy) <= MAX_CID_BYTES:
            problems.append("the review policy must be a binary CID of 1..128 bytes")
        if problems:
            raise InvalidRoundConfigError(
                "invalid round config: " + "; ".join(problems),
                hint="see docs/deployer.md for what each parameter means",
            )

    @property
    def quorum(self) -> int:
        """Approvals needed with this config."""
        return quorum(self.committee_size, self.quorum_bps)

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int, bytes]:
        """The `Config` struct in ABI field order."""
        return (
            self.committee_size,
            self.quorum_bps,
            self.train_window,
            self.review_window,
            self.min_claim_window,
            self.min_updates,
            self.max_samples,
            self.review_policy,
        )

    @classmethod
    def from_tuple(cls, value: tuple[Any, ...]) -> RoundConfig:
        """The `Config` struct as the ABI decodes it (fields in order)."""
        *numbers, policy = value
        return cls(*(int(n) for n in numbers), review_policy=bytes(policy))


@dataclass(frozen=True)
class RoundParams:
    """The parameters a round snapshotted when it opened, as `RoundOpened` carries them."""

    train_end: int
    claim_end: int
    review_window: int
    committee_size: int
    quorum: int
    min_updates: int
    max_samples: int
    eligible_nodes: int


@dataclass(frozen=True)
class RoundInfo:
    """The stored facts of a round and what the contract derives from them (`RoundView`)."""

    round: int
    phase: Phase
    seed: bytes
    base_round: int
    opened_at: int
    claim_end: int
    train_end: int
    review_start: int
    review_end: int
    committee_size: int
    quorum: int
    min_updates: int
    max_samples: int
    eligible_nodes: int
    update_count: int
    seat_count: int
    proposal_count: int
    finalized_proposal: int
    vrf_accumulator: bytes
    review_policy: bytes


@dataclass(frozen=True)
class NodeInfo:
    """What the contract knows about a node (`NodeView`)."""

    address: str
    registered: bool
    allowed: bool
    bls_key_hash: bytes  # keccak256 of the 256-byte BLS public key
    peer_key: bytes  # ed25519 public key: libp2p identity and gossip signer
    eligible_from: int


@dataclass(frozen=True)
class Seat:
    """A committee seat: its holder and rank (the first 12 bytes of its VRF output)."""

    holder: str
    rank: int

    @property
    def word(self) -> int:
        """The contract's storage word for the seat (`sortition.seat_word`): lower wins."""
        return seat_word(self.rank, address_bytes(self.holder))


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


def accumulate(accumulator: bytes, output: bytes) -> bytes:
    """The round's VRF accumulator after a verified claim with `output` (as `claimSeat` does)."""
    return keccak(accumulator + output)


def next_seed(
    previous_seed: bytes, prevrandao: int, round: int, contract: str, accumulator: bytes
) -> bytes:
    """The seed of round `round`, as the contract derives it when the round opens.

    `previous_seed` and `accumulator` are round `round - 1`'s (zero for round 1), `prevrandao`
    the opening block's; the accumulator starts at the round's seed and takes in every verified
    VRF output, so seeds stay unpredictable even on a chain whose prevrandao is constant.
    """
    return keccak(
        previous_seed
        + prevrandao.to_bytes(32, "big")
        + round.to_bytes(32, "big")
        + bytes(12)
        + address_bytes(contract)
        + accumulator
    )
