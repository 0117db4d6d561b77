"""Committee sortition: what a node proves over, how seats are ranked, and whether to claim.

Round `r` has seed `seed_r` (32 bytes, from `RoundOpened`). Every eligible node proves over

    alpha = seed_r || uint256(r)        (64 bytes: Solidity's abi.encodePacked(bytes32, uint256))

and FlareRounds derives the output keccak256(proof) itself. A seat is one storage word:

    word = rank << 160 | address        rank = the output's first 12 bytes, big-endian

and the contract keeps the k lowest words, so seats go by rank and a tie (2^-96 per pair) by
the lower address. Nodes rank their own output the same way before spending a transaction.

Claiming costs a transaction, so a node claims only when its rank lies under a threshold T
chosen so that, with n eligible nodes whose ranks are uniform on [0, 2^96), fewer than k of them
fall under T with probability at most `miss_probability`: then the k lowest ranks are all under
T, so all k are claimed, while only about n·T/2^96 nodes send a transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flare.protocol import vrf
from flare.protocol.errors import ConfigError
from flare.protocol.vrf import OUTPUT_BYTES

SEED_BYTES = 32
ALPHA_BYTES = SEED_BYTES + 32
RANK_BYTES = 12
RANK_SPACE: int = 2 ** (8 * RANK_BYTES)  # ranks are uniform on [0, RANK_SPACE)
HOLDER_BITS = 160
DEFAULT_MISS_PROBABILITY = 1e-6


class SortitionError(ConfigError):
    """A sortition input is out of range (seed length, round number, k, node count)."""


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    """Whether to send `claimSeat`, with the numbers behind it for the node's log."""

    claim: bool
    rank: int
    threshold: int
    reason: str


def alpha_for(seed: bytes, round: int) -> bytes:
    """The VRF input of round `round`: seed || round as a 32-byte big-endian unsigned integer."""
    if len(seed) != SEED_BYTES:
        raise SortitionError(
            f"a round seed is {SEED_BYTES} bytes, got {len(seed)}",
            hint="take the seed from the round's RoundOpened event or getRound(round).seed",
        )
    if not 0 <= round < 2**256:
        raise SortitionError(f"round {round} does not fit a uint256")
    return seed + round.to_bytes(32, "big")


def rank_of(output: bytes) -> int:
    """The rank of a VRF output, as the contract ranks seats: its first 12 bytes, big-endian."""
    if len(output) != OUTPUT_BYTES:
        raise SortitionError(f"a VRF output is {OUTPUT_BYTES} bytes, got {len(output)}")
    return int.from_bytes(output[:RANK_BYTES], "big")


def seat_word(rank: int, holder: bytes) -> int:
    """The contract's storage word of a seat: rank above the 20-byte holder address."""
    return rank << HOLDER_BITS | int.from_bytes(holder, "big")


def verify_claim(
    public_key: bytes, seed: bytes, round: int, proof: bytes, output: bytes | None = None
) -> bytes | vrf.InvalidProof:
    """The output when `proof` is valid over round `round`'s alpha (and is `output`, if given).

    This is the whole off-chain check of a `SeatClaimed(round, node, output, proof)` event,
    with `public_key` from the node's registration and `seed` from `RoundOpened`: the contract
    already verified it, an auditor verifies it again without trusting the chain's execution.
    """
    result = vrf.verify(public_key, alpha_for(seed, round), proof)
    if isinstance(result, vrf.InvalidProof) or output is None or output == result:
        return result
    return vrf.InvalidProof(
        vrf.Rejection.WRONG_OUTPUT,
        f"recorded output 0x{output.hex()} is not the proof's 0x{result.hex()}",
    )


def miss_probability(k: int, eligible: int, fraction: float) -> float:
    """P[fewer than k of `eligible` uniform ranks fall under `fraction`·RANK_SPACE]."""
    if fraction >= 1.0:
        return 0.0 if eligible >= k else 1.0
    if fraction <= 0.0:
        return 1.0
    log_p, log_q = math.log(fraction), math.log1p(-fraction)
    log_terms = [
        math.lgamma(eligible + 1)
        - math.lgamma(i + 1)
        - math.lgamma(eligible - i + 1)
        + i * log_p
        + (eligible - i) * log_q
        for i in range(min(k, eligible + 1))
    ]
    top = max(log_terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms))


def claim_fraction(
    k: int,
    eligible: int,
    *,
    max_miss: float = DEFAULT_MISS_PROBABILITY,
    participation: float = 1.0,
) -> float:
    """The smallest share of the rank space such that k claims fail to appear at most rarely.

    `participation` is the share of eligible nodes expected online: offline nodes never claim,
    so the threshold widens by 1/participation to keep the same miss probability.
    """
    _check_committee(k, eligible)
    if not 0.0 < max_miss < 1.0:
        raise SortitionError(f"miss probability must lie in (0, 1), got {max_miss}")
    if not 0.0 < participation <= 1.0:
        raise SortitionError(f"participation must lie in (0, 1], got {participation}")
    if eligible <= k:
        return 1.0  # every eligible node holds a seat: all must claim
    lo, hi = 0.0, 1.0  # miss(lo) > target >= miss(hi); the miss probability falls as p grows
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if miss_probability(k, eligible, mid) <= max_miss:
            hi = mid
        else:
            lo = mid
    return min(1.0, hi / participation)


def claim_threshold(
    k: int,
    eligible: int,
    *,
    max_miss: float = DEFAULT_MISS_PROBABILITY,
    participation: float = 1.0,
) -> int:
    """T: claim when the rank is below T. RANK_SPACE means every node claims."""
    fraction = claim_fraction(
        k,
        eligible,
        max_miss=max_miss,
        participation=participation,
    )
    return min(RANK_SPACE, math.ceil(math.ldexp(fraction, 8 * RANK_BYTES)))


def decide_claim(
    output: bytes,
    holder: bytes,
    *,
    threshold: int,
    k: int,
    held: Sequence[int] = (),
) -> ClaimDecision:
    """Claim when the rank is under the threshold and the contract would still take the seat.

    `holder` is the claiming node's 20-byte address; `held` are the words of the seats
    already claimed this round (`Seat.word` of `seats(round)`): once k are held, the
    contract refuses any word not below the highest of them.
    """
    rank = rank_of(output)
    if len(held) >= k and seat_word(rank, holder) >= max(held):
        return ClaimDecision(False, rank, threshold, f"all {k} seats are held by lower ranks")
    if rank >= threshold:
        return ClaimDecision(
            False,
            rank,
            threshold,
            f"rank {rank / RANK_SPACE:.3g} is above the claim threshold "
            f"{threshold / RANK_SPACE:.3g}",
        )
    return ClaimDecision(True, rank, threshold, "rank is under the claim threshold")


def _check_committee(k: int, eligible: int) -> None:
    if k < 1:
        raise SortitionError(f"committee size must be at least 1, got {k}")
    if eligible < 0:
        raise SortitionError(f"eligible node count cannot be negative, got {eligible}")
