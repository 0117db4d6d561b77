"""Attacks on the model's dtype range: an update that overflows is left out, never fatal.

Each attacker is a well-formed `flare-update/1` bundle that a loose committed policy lets
through its norm bound and sample cap; the review must leave exactly it out, say why, and
produce the very bytes the rest alone would give (so honest seat holders still agree).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from eth_utils.address import to_checksum_address
from flare_testing import cid_of
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from flare.protocol.aggregate import Rule
from flare.protocol.bundle import BundleMeta, write_bundle
from flare.protocol.cid import decode_cid
from flare.protocol.committee import NextModel, NotEnoughUpdatesError, Submission, next_model
from flare.protocol.model import GlobalModel, ModelMeta, read_model, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.overflow import FINITE_MAX
from flare.protocol.policy import ReviewPolicy
from flare.protocol.tensorfile import bfloat16_bits

RANK = 2
LOOSE = {"norm_bound": 1e300, "sample_cap": 2**63}  # what a careless deployment might commit


def spec_of(dtype: str) -> ModelSpec:
    return ModelSpec.from_shapes({"layer.weight": (12, 8), "layer.bias": (8,)}, dtype=dtype)


def policy(rule: Rule | None = None, **settings: Any) -> ReviewPolicy:
    return ReviewPolicy(rule=rule or Rule("fedavg"), **{**LOOSE, **settings})


def node(i: int) -> str:
    return to_checksum_address("0x" + f"{i + 1:02x}" * 20)


def wire(values: NDArray[Any], dtype: str) -> NDArray[Any]:
    """An array as a bundle or model file carries it in `dtype`."""
    as32 = np.asarray(values, dtype=np.float32)
    return bfloat16_bits(as32) if dtype == "bfloat16" else as32.astype(dtype)


def base_model(spec: ModelSpec, bias: Sequence[float] = ()) -> tuple[GlobalModel, str]:
    """Small random weights; the bias starts as `bias` (then zeros)."""
    rng = np.random.default_rng(0)
    weights: dict[str, NDArray[Any]] = {}
    for p in spec.params:
        values = rng.standard_normal(p.shape).astype(np.float32) * 0.1
        if p.name == "layer.bias":
            values[:] = 0.0
            values[: len(bias)] = bias
        weights[p.name] = wire(values, p.dtype)
    data = write_model(ModelMeta.genesis(spec), spec, weights)
    return read_model(data, spec), cid_of(data)


def bundle(
    spec: ModelSpec,
    i: int,
    base_cid: str,
    *,
    samples: int = 10,
    factors: float = 0.1,
    bias: Sequence[float] | None = None,
) -> Submission:
    """Node i's update: random factors times `factors`, a random bias unless `bias` is given.

    The first row of each factor is all ones, so layer.weight[0, 0] = RANK * factors**2: the
    update's peak, known in advance.
    """
    rng = np.random.default_rng(100 + i)
    meta = BundleMeta(round=1, node=node(i), base_model=base_cid, num_samples=samples,
                      rank=RANK, model_spec=spec.hash)  # fmt: skip
    p = rng.standard_normal((12, RANK)).astype(np.float32)
    q = rng.standard_normal((8, RANK)).astype(np.float32)
    p[0], q[0] = 1.0, 1.0
    values = rng.standard_normal(8) * 0.1
    if bias is not None:
        values = np.zeros(8)
        values[: len(bias)] = bias
    tensors = {
        "layer.weight.P": p * np.float32(factors),
        "layer.weight.Q": q * np.float32(factors),
        "layer.bias": wire(values, spec.param("layer.bias").dtype),
    }
    data = write_bundle(meta, spec, tensors)
    return Submission(node(i), decode_cid(cid_of(data)), samples, data)


def honest(spec: ModelSpec, base_cid: str, count: int = 3) -> list[Submission]:
    return [bundle(spec, i, base_cid) for i in range(count)]


def assert_same_as_the_rest_alone(
    result: NextModel,
    base: GlobalModel,
    base_cid: str,
    rest: Sequence[Submission],
    review: ReviewPolicy,
) -> None:
    alone = next_model(base, base_cid, 1, rest, review)
    assert result.included == alone.included
    assert result.model == alone.model  # bit for bit: the same CID, the same vote
    weights = read_model(result.model, base.spec).weights
    assert all(np.isfinite(weights[name]).all() for name in base.spec.names)


# --- one update overflows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "factors"),
    [
        ("float32", 2e19),  # a peak of 8e38, past 3.40e38
        ("bfloat16", 2e19),
        ("bfloat16", 1.3029e19),  # 3.3951e38: within float32, past bfloat16's 3.3895e38
        ("float16", 1e3),  # 2e6, past 65504
    ],
)
def test_an_update_whose_delta_overflows_the_dtype_is_left_out(dtype: str, factors: float) -> None:
    peak = RANK * float(np.float32(factors)) ** 2
    assert FINITE_MAX[dtype] < peak < 1e300  # past the dtype, within the loose norm bound
    spec = spec_of(dtype)
    base, base_cid = base_model(spec)
    rest = honest(spec, base_cid)
    attacker = bundle(spec, 9, base_cid, factors=factors)
    submissions = [rest[0], attacker, *rest[1:]]

    result = next_model(base, base_cid, 1, submissions, policy())

    assert [r.node for r in result.rejected] == [node(9)]
    assert f"layer.weight overflows {dtype}: its delta reaches" in result.rejected[0].reason
    assert_same_as_the_rest_alone(result, base, base_cid, rest, policy())


def test_a_heavy_update_that_pushes_a_float16_weight_past_65504_is_left_out() -> None:
    """Each of its values fits float16 and the norm bound; the new weight would not."""
    spec = spec_of("float16")
    base, base_cid = base_model(spec, bias=[10000.0])
    rest = honest(spec, base_cid)
    attacker = bundle(spec, 9, base_cid, samples=2**63, bias=[60000.0])
    review = policy(norm_bound=1e5)

    result = next_model(base, base_cid, 1, [attacker, *rest], review)

    assert [r.node for r in result.rejected] == [node(9)]
    reason = result.rejected[0].reason
    assert "layer.bias overflows float16 in the new model" in reason
    assert "reaches 70000" in reason
    assert_same_as_the_rest_alone(result, base, base_cid, rest, review)


def test_a_large_server_learning_rate_makes_a_large_update_overflow() -> None:
    spec = spec_of("float16")
    base, base_cid = base_model(spec)
    rest = honest(spec, base_cid)
    attacker = bundle(spec, 9, base_cid, bias=[20000.0])
    review = policy(norm_bound=1e5, server_learning_rate=4.0)

    result = next_model(base, base_cid, 1, [*rest, attacker], review)

    assert [r.node for r in result.rejected] == [node(9)]
    assert "base + 4 x its delta reaches 80000" in result.rejected[0].reason
    assert_same_as_the_rest_alone(result, base, base_cid, rest, review)


@pytest.mark.parametrize(
    "rule",
    [
        Rule("fedavg"),
        Rule("clipped-fedavg", clip_norm=1.0),
        Rule("median"),
        Rule("trimmed-mean", trim=1),
        Rule("multi-krum", byzantine=1, select=3),
    ],
    ids=lambda rule: rule.name,
)
def test_every_rule_leaves_the_overflowing_update_out(rule: Rule) -> None:
    spec = spec_of("float32")
    base, base_cid = base_model(spec)
    rest = honest(spec, base_cid, count=5)
    attacker = bundle(spec, 9, base_cid, factors=2e19)
    review = policy(rule)

    result = next_model(base, base_cid, 1, [attacker, *rest], review)

    assert node(9) not in result.included
    assert [r.node for r in result.rejected if "overflows" in r.reason] == [node(9)]
    assert_same_as_the_rest_alone(result, base, base_cid, rest, review)


def test_when_every_update_overflows_there_is_nothing_to_propose_with_every_reason() -> None:
    spec = spec_of("float32")
    base, base_cid = base_model(spec)
    attackers = [bundle(spec, i, base_cid, factors=2e19) for i in range(3)]

    with pytest.raises(NotEnoughUpdatesError, match="0 update") as caught:
        next_model(base, base_cid, 1, attackers, policy())

    assert sorted(r.node for r in caught.value.rejected) == [node(i) for i in range(3)]
    assert all("overflows float32" in r.reason for r in caught.value.rejected)


# --- only the sum overflows --------------------------------------------------------------

# Two heavy updates that both sit exactly at float16's largest value at layer.bias[0], and a
# light honest one. Each alone lands within range; their weighted mean, summed in float64 in
# address order, rounds one ulp past 65504. Weights found by a seeded search (random integers
# in [2^60, 2^63) until the triple overflowed and each heavy one with the honest did not).
HEAVY = (6200228341718081426, 3806091473530524279)  # node(0), node(1)
EDGE = 65504.0
HONEST_B0 = 0.5


def fedavg_b0(weights: Sequence[int], values: Sequence[float]) -> float:
    """layer.bias[0] of sample-weighted FedAvg, added in the given (address) order."""
    acc = 0.0
    for weight, value in zip(weights, values, strict=True):
        acc += float(weight) * value
    return acc / math.fsum(float(w) for w in weights)


def sum_overflow_round() -> tuple[GlobalModel, str, list[Submission]]:
    spec = spec_of("float16")
    base, base_cid = base_model(spec)  # layer.bias[0] starts at 0
    submissions = [
        bundle(spec, 0, base_cid, samples=HEAVY[0], factors=0.0, bias=[EDGE, 40000.0]),
        bundle(spec, 1, base_cid, samples=HEAVY[1], factors=0.0, bias=[EDGE, -40000.0]),
        bundle(spec, 2, base_cid, bias=[HONEST_B0, 0.25]),
    ]
    return base, base_cid, submissions


def test_the_preconditions_of_the_sum_overflow_hold() -> None:
    """The case is what it claims: fine alone (and in pairs with the honest update), not summed."""
    assert fedavg_b0([*HEAVY, 10], [EDGE, EDGE, HONEST_B0]) > EDGE
    assert fedavg_b0([HEAVY[0], 10], [EDGE, HONEST_B0]) <= EDGE
    assert fedavg_b0([HEAVY[1], 10], [EDGE, HONEST_B0]) <= EDGE
    assert HEAVY[0] * EDGE > HEAVY[1] * EDGE  # node(0) pushes furthest


def test_when_only_the_sum_overflows_the_largest_contributor_is_left_out() -> None:
    base, base_cid, submissions = sum_overflow_round()
    review = policy(norm_bound=1e5)

    result = next_model(base, base_cid, 1, submissions, review)

    assert result.included == (node(1), node(2))
    assert [r.node for r in result.rejected] == [node(0)]
    reason = result.rejected[0].reason
    assert "the aggregate overflows float16 at layer.bias[0]" in reason
    assert "pushes furthest" in reason
    assert_same_as_the_rest_alone(result, base, base_cid, submissions[1:], review)


def test_the_sum_overflow_is_decided_the_same_whatever_the_arrival_order() -> None:
    base, base_cid, submissions = sum_overflow_round()
    review = policy(norm_bound=1e5)
    first = next_model(base, base_cid, 1, submissions, review)

    for seed in range(3):
        shuffled = submissions[:]
        random.Random(seed).shuffle(shuffled)
        again = next_model(base, base_cid, 1, shuffled, review)
        assert again.model == first.model
        assert again.rejected == first.rejected


# --- whatever the updates, the review ends with a model or a shortfall --------------------


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
    factors=st.lists(st.sampled_from([1e-2, 1.0, 1e2, 1e3, 1e19, 2e19]), min_size=4, max_size=4),
    samples=st.lists(st.sampled_from([1, 10, 2**40, 2**63]), min_size=4, max_size=4),
    rate=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_no_mix_of_updates_fails_the_review(
    dtype: str, factors: list[float], samples: list[int], rate: float
) -> None:
    spec = spec_of(dtype)
    base, base_cid = base_model(spec)
    submissions = [
        bundle(spec, i, base_cid, samples=n, factors=f)
        for i, (f, n) in enumerate(zip(factors, samples, strict=True))
    ]
    review = policy(server_learning_rate=rate)

    try:
        result: NextModel | NotEnoughUpdatesError = next_model(
            base, base_cid, 1, submissions, review
        )
    except NotEnoughUpdatesError as shortfall:  # the only way out without a model
        result = shortfall
    if isinstance(result, NotEnoughUpdatesError):
        assert len(result.rejected) == len(submissions)
        return
    rest = [s for s in submissions if s.node in result.included]
    assert_same_as_the_rest_alone(result, base, base_cid, rest, review)
    assert len(result.included) + len(result.rejected) == len(submissions)
