"""Committees drawn from real VRF outputs over many seeds follow the expected distribution.

Keys and seeds are fixed (SHA-256 of labels), so each statistic is a deterministic function of
the code: a pass does not flake. Bounds are set at a tail probability of about 1e-4 for a
correct implementation; an alpha that ignores the seed or round (the same committee every
round), a rank that favours some keys, or a threshold that cuts into the k lowest lands far
outside them. Byte order against the contract is pinned in test_sortition_rules.py.
"""

from __future__ import annotations

import hashlib
import math

import pytest

from flare.protocol import sortition, vrf


def draw(nodes: int, rounds: int) -> list[list[int]]:
    """rank values [round][node] from real proofs over alpha = seed_r || r."""
    secrets = [
        (
            int.from_bytes(hashlib.sha256(f"dist-node/{i}".encode()).digest(), "big") % 2**250
        ).to_bytes(32, "big")
        for i in range(nodes)
    ]
    table = []
    for r in range(rounds):
        alpha = sortition.alpha_for(hashlib.sha256(f"dist-seed/{r}".encode()).digest(), r)
        outputs = [vrf.proof_to_output(vrf.prove(secret, alpha)) for secret in secrets]
        table.append([sortition.rank_of(output) for output in outputs])
    return table


def chi_square_z(counts: list[int], expected: float) -> float:
    """Wilson-Hilferty normal score of Pearson's statistic with len(counts) - 1 degrees."""
    statistic = sum((c - expected) ** 2 / expected for c in counts)
    df = len(counts) - 1
    return ((statistic / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))


def check_distribution(nodes: int, k: int, rounds: int) -> None:
    table = draw(nodes, rounds)
    threshold = sortition.claim_threshold(k, nodes, max_miss=1e-6)
    fraction = threshold / sortition.RANK_SPACE

    seats = [0] * nodes
    claimers = []
    for ranks in table:
        committee = sorted(range(nodes), key=ranks.__getitem__)[:k]
        for node in committee:
            seats[node] += 1
        under = [node for node in range(nodes) if ranks[node] < threshold]
        # the rule's promise: every one of the k lowest is under the threshold, so claims
        assert set(committee) <= set(under)
        claimers.append(len(under))

    # every node holds a seat about k/n of the time (no node is favoured)
    assert chi_square_z(seats, rounds * k / nodes) < 3.7
    # the number of claims per round averages n·T/2^96
    mean = sum(claimers) / rounds
    sd = math.sqrt(nodes * fraction * (1 - fraction) / rounds)
    assert abs(mean - nodes * fraction) < 4 * sd
    # rank values are uniform on [0, 2^96): Kolmogorov-Smirnov at about 1e-4
    values = sorted(v / sortition.RANK_SPACE for ranks in table for v in ranks)
    m = len(values)
    distance = max(max((i + 1) / m - v, v - i / m) for i, v in enumerate(values))
    assert distance < 2.0 / math.sqrt(m)


def test_committee_membership_is_uniform_over_seeds() -> None:
    check_distribution(nodes=20, k=4, rounds=100)


@pytest.mark.slow
def test_committee_membership_is_uniform_over_many_seeds() -> None:
    check_distribution(nodes=64, k=8, rounds=500)
