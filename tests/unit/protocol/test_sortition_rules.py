"""Sortition encodings (alpha, rank, seat word) against the ABI; the threshold by exact math."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from math import comb
from pathlib import Path

import pytest
from eth_abi import decode
from eth_abi.packed import encode_packed
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.protocol import sortition, vrf
from flare.protocol.errors import ConfigError

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "bls" / "flare-vectors.json").read_text()
)
KEYS = VECTORS["keys"]


def exact_miss(k: int, n: int, p: Fraction) -> Fraction:
    """P[Binomial(n, p) < k] in exact rational arithmetic."""
    return sum((comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(min(k, n + 1))), Fraction(0))


@given(seed=st.binary(min_size=32, max_size=32), round_number=st.integers(0, 2**256 - 1))
def test_alpha_is_abi_encode_packed_of_seed_and_round(seed: bytes, round_number: int) -> None:
    alpha = sortition.alpha_for(seed, round_number)

    assert alpha == encode_packed(["bytes32", "uint256"], [seed, round_number])
    assert len(alpha) == sortition.ALPHA_BYTES


@given(output=st.binary(min_size=32, max_size=32), holder=st.binary(min_size=20, max_size=20))
def test_rank_and_seat_word_are_what_the_contract_stores(output: bytes, holder: bytes) -> None:
    rank = sortition.rank_of(output)
    word = sortition.seat_word(rank, holder)

    # FlareRounds: (uint256(output) >> 160 << 160) | uint160(holder)
    as_uint = decode(["uint256"], output)[0]
    assert word == (as_uint >> 160 << 160) | int.from_bytes(holder, "big")
    assert rank == as_uint >> 160
    assert 0 <= rank < sortition.RANK_SPACE


def test_seat_words_order_by_rank_then_address() -> None:
    low, high = (1).to_bytes(12, "big") + bytes(20), (2).to_bytes(12, "big") + bytes(20)
    a, b = b"\x01" * 20, b"\x02" * 20

    words = [
        sortition.seat_word(sortition.rank_of(out), who) for out in (low, high) for who in (a, b)
    ]

    assert words == sorted(words)


@pytest.mark.parametrize(
    ("seed", "round_number"),
    [(b"\x01" * 31, 1), (b"\x01" * 33, 1), (b"\x01" * 32, -1), (b"\x01" * 32, 2**256)],
)
def test_alpha_refuses_bad_seed_or_round(seed: bytes, round_number: int) -> None:
    with pytest.raises(sortition.SortitionError) as caught:
        sortition.alpha_for(seed, round_number)
    assert isinstance(caught.value, ConfigError)


def test_rank_refuses_wrong_lengths() -> None:
    with pytest.raises(sortition.SortitionError):
        sortition.rank_of(bytes(31))
    with pytest.raises(sortition.SortitionError):
        sortition.rank_of(bytes(64))


@settings(max_examples=60)
@given(
    n=st.integers(1, 150),
    k=st.integers(1, 12),
    p=st.fractions(min_value=Fraction(1, 10**6), max_value=Fraction(999_999, 10**6)),
)
def test_miss_probability_matches_exact_binomial(n: int, k: int, p: Fraction) -> None:
    exact = exact_miss(k, n, Fraction(float(p)))

    approx = sortition.miss_probability(k, n, float(p))

    assert abs(Fraction(approx) - exact) <= exact * Fraction(1, 10**9) + Fraction(1, 10**300)


@settings(max_examples=40)
@given(
    k=st.integers(1, 12),
    extra=st.integers(1, 150),
    target=st.sampled_from([1e-3, 1e-6, 1e-9]),
)
def test_claim_fraction_is_the_smallest_that_meets_the_target(
    k: int, extra: int, target: float
) -> None:
    n = k + extra

    fraction = sortition.claim_fraction(k, n, max_miss=target)

    assert exact_miss(k, n, Fraction(fraction)) <= Fraction(target) * (1 + Fraction(1, 10**9))
    assert exact_miss(k, n, Fraction(fraction) * (1 - Fraction(1, 10**6))) > Fraction(target)


def test_threshold_widens_with_k_and_narrows_with_n() -> None:
    by_k = [sortition.claim_threshold(k, 1000) for k in (1, 4, 16, 64)]
    by_n = [sortition.claim_threshold(16, n) for n in (50, 200, 1000, 10_000)]

    assert by_k == sorted(by_k)
    assert len(set(by_k)) == len(by_k)
    assert by_n == sorted(by_n, reverse=True)
    assert len(set(by_n)) == len(by_n)


def test_lower_participation_widens_the_threshold() -> None:
    full = sortition.claim_fraction(8, 500)

    half = sortition.claim_fraction(8, 500, participation=0.5)

    assert half == pytest.approx(2 * full, rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 7, 8])
def test_everyone_claims_when_nodes_do_not_outnumber_seats(n: int) -> None:
    assert sortition.claim_threshold(8, n) == sortition.RANK_SPACE


def test_most_nodes_skip_in_a_large_network() -> None:
    fraction = sortition.claim_fraction(16, 1000)

    assert 16 / 1000 < fraction < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0, "eligible": 10},
        {"k": 1, "eligible": -1},
        {"k": 1, "eligible": 10, "max_miss": 0.0},
        {"k": 1, "eligible": 10, "max_miss": 1.0},
        {"k": 1, "eligible": 10, "participation": 0.0},
        {"k": 1, "eligible": 10, "participation": 1.5},
    ],
)
def test_claim_threshold_refuses_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(sortition.SortitionError):
        sortition.claim_fraction(**kwargs)


def test_simulated_rounds_miss_about_as_often_as_the_target() -> None:
    # Independent of the binomial formula: draw uniform outputs and count rounds where fewer
    # than k nodes fall under the threshold. With target 5% over 4000 rounds the count is
    # Binomial(4000, <=0.05): mean <= 200, standard deviation about 14.
    k, n, target, rounds = 5, 60, 0.05, 4000
    threshold = sortition.claim_threshold(k, n, max_miss=target)
    rng = random.Random(20240605)

    misses = sum(sum(rng.getrandbits(96) < threshold for _ in range(n)) < k for _ in range(rounds))

    assert abs(misses - target * rounds) < 5 * (rounds * target * (1 - target)) ** 0.5


def output_of(rank: int) -> bytes:
    """An output whose rank is `rank`."""
    return rank.to_bytes(12, "big") + bytes(20)


def test_decide_claims_under_the_threshold_and_skips_above() -> None:
    threshold = 2**95
    node = b"\x07" * 20

    claim = sortition.decide_claim(output_of(2**94), node, threshold=threshold, k=4)
    skip = sortition.decide_claim(output_of(2**95), node, threshold=threshold, k=4)

    assert claim.claim
    assert claim.rank == 2**94
    assert not skip.claim
    assert "threshold" in skip.reason


def test_decide_skips_when_k_lower_seats_are_held() -> None:
    node = b"\x05" * 20
    held = [sortition.seat_word(rank, b"\x09" * 20) for rank in (10, 20, 30)]
    every = sortition.RANK_SPACE

    above = sortition.decide_claim(output_of(31), node, threshold=every, k=3, held=held)
    tie_lower_address = sortition.decide_claim(output_of(30), node, threshold=every, k=3, held=held)
    below = sortition.decide_claim(output_of(25), node, threshold=every, k=3, held=held)
    room = sortition.decide_claim(output_of(99), node, threshold=every, k=4, held=held)

    assert not above.claim
    assert "seats are held" in above.reason
    assert tie_lower_address.claim  # same rank, lower address: the contract takes it
    assert below.claim
    assert room.claim


@pytest.mark.parametrize("vector", VECTORS["proofs"][:3], ids=lambda v: f"round {v['round']}")
def test_verify_claim_accepts_a_golden_seat_and_refuses_a_wrong_output(
    vector: dict[str, str],
) -> None:
    key = bytes.fromhex(KEYS[int(vector["key"])]["public_key"])
    seed, round_number = bytes.fromhex(vector["seed"]), int(vector["round"])
    proof, output = bytes.fromhex(vector["proof"]), bytes.fromhex(vector["output"])
    other_output = bytes([output[0] ^ 1]) + output[1:]

    good = sortition.verify_claim(key, seed, round_number, proof, output)
    wrong = sortition.verify_claim(key, seed, round_number, proof, other_output)
    next_round = sortition.verify_claim(key, seed, round_number ^ 1, proof)

    assert good == output
    assert isinstance(wrong, vrf.InvalidProof)
    assert wrong.rejection is vrf.Rejection.WRONG_OUTPUT
    assert isinstance(next_round, vrf.InvalidProof)
    assert next_round.rejection is vrf.Rejection.MISMATCH
