"""What seat holders compute in review: checked updates, the aggregate, the next model's bytes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from eth_utils.address import to_checksum_address
from flare_testing import cid_of
from numpy.typing import NDArray
from tensorfile_support import rewrite_header

from flare.protocol.aggregate import Rule
from flare.protocol.bundle import BundleMeta, write_bundle
from flare.protocol.cid import decode_cid
from flare.protocol.committee import NotEnoughUpdatesError, Submission, next_model
from flare.protocol.model import ModelMeta, read_model, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.policy import ReviewPolicy
from flare.protocol.rounds import updates_root

SPEC = ModelSpec.from_shapes({"layer.weight": (12, 8), "layer.bias": (8,)})
RANK = 2


def policy(rule: Rule | None = None, **settings: Any) -> ReviewPolicy:
    """The deployment's review policy: fedavg with a loose norm bound unless told otherwise."""
    return ReviewPolicy(
        rule=rule or Rule("fedavg"), **{"norm_bound": 100.0, "sample_cap": 10**6, **settings}
    )


def base_model() -> tuple[bytes, str]:
    rng = np.random.default_rng(0)
    weights = {p.name: rng.standard_normal(p.shape).astype(np.float32) for p in SPEC.params}
    data = write_model(ModelMeta.genesis(SPEC), SPEC, weights)
    return data, cid_of(data)


def node(i: int) -> str:
    return to_checksum_address("0x" + f"{i + 1:02x}" * 20)


def bundle(
    i: int, base: str, *, round_number: int = 1, samples: int = 10, names: str | None = None
) -> tuple[bytes, dict[str, NDArray[np.float64]]]:
    """A dense-only (bias) plus factored (weight) update; returns its bytes and its delta."""
    rng = np.random.default_rng(100 + i)
    meta = BundleMeta(
        round=round_number,
        node=names or node(i),
        base_model=base,
        num_samples=samples,
        rank=RANK,
        model_spec=SPEC.hash,
    )
    wire: dict[str, NDArray[Any]] = {
        "layer.weight.P": rng.standard_normal((12, RANK)).astype(np.float32) * 0.1,
        "layer.weight.Q": rng.standard_normal((8, RANK)).astype(np.float32) * 0.1,
        "layer.bias": rng.standard_normal(8).astype(np.float32) * 0.1,
    }
    delta = {
        "layer.weight": wire["layer.weight.P"].astype(np.float64)
        @ wire["layer.weight.Q"].astype(np.float64).T,
        "layer.bias": wire["layer.bias"].astype(np.float64),
    }
    return write_bundle(meta, SPEC, wire), delta


def metrics_bomb(i: int, base: str) -> bytes:
    """A well-formed bundle whose metrics JSON nests deep enough to exhaust a parser's stack."""
    deep = "[" * 5000 + "]" * 5000
    return rewrite_header(
        bundle(i, base)[0], lambda h: h["__metadata__"].__setitem__("metrics", deep)
    )


def submission(i: int, data: bytes | None, samples: int = 10) -> Submission:
    return Submission(node(i), decode_cid(cid_of(data or b"missing")), samples, data)


def test_the_next_model_is_the_base_plus_the_sample_weighted_mean() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    made = [bundle(i, base_cid, samples=10 * (i + 1)) for i in range(3)]
    submissions = [submission(i, data, 10 * (i + 1)) for i, (data, _) in enumerate(made)]

    result = next_model(base, base_cid, 1, submissions, policy())

    model = read_model(result.model, SPEC)
    assert model.meta == result.meta
    assert (model.meta.round, model.meta.parent) == (1, base_cid)
    assert model.meta.updates_root == updates_root([(s.node, s.cid) for s in submissions])
    assert result.included == tuple(node(i) for i in range(3))
    assert result.rejected == ()
    for name in SPEC.names:  # the same float64 steps, in address order, then one rounding
        total = np.zeros(SPEC.param(name).shape)
        for i, (_, delta) in enumerate(made):
            total += 10.0 * (i + 1) * delta[name]
        expected = (base.weights[name].astype(np.float64) + total / 60.0).astype(np.float32)
        np.testing.assert_array_equal(model.weights[name], expected)


def test_every_seat_holder_computes_the_same_bytes_whatever_the_order() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    submissions = [submission(i, bundle(i, base_cid)[0]) for i in range(4)]
    shuffled = submissions[:]
    random.Random(1).shuffle(shuffled)

    first = next_model(base, base_cid, 1, submissions, policy())
    second = next_model(base, base_cid, 1, shuffled, policy())

    assert first.model == second.model


def test_bad_updates_are_left_out_with_their_reasons() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    other_base = cid_of(b"another base")
    submissions = [
        submission(0, bundle(0, base_cid)[0]),
        submission(1, bundle(1, base_cid)[0]),
        submission(2, bundle(2, other_base)[0]),
        submission(3, bundle(3, base_cid, round_number=2)[0]),
        submission(4, bundle(4, base_cid, names=node(0))[0]),
        submission(5, b"not a bundle"),
        submission(6, None),
        submission(7, bundle(7, base_cid, samples=10)[0], samples=9),
        submission(8, metrics_bomb(8, base_cid)),
    ]

    result = next_model(base, base_cid, 1, submissions, policy())

    assert result.included == (node(0), node(1))
    reasons = {rejection.node: rejection.reason for rejection in result.rejected}
    assert "not this round's base" in reasons[node(2)]
    assert "built for round 2" in reasons[node(3)]
    assert "not the node that registered it" in reasons[node(4)]
    assert "header" in reasons[node(5)]
    assert "could not be fetched" in reasons[node(6)]
    assert "claims 10 samples, the chain registered 9" in reasons[node(7)]
    assert "metadata JSON does not parse" in reasons[node(8)]
    assert read_model(result.model, SPEC).meta.updates_root == updates_root(
        [(s.node, s.cid) for s in submissions[:2]]
    )


def test_too_few_good_updates_leave_nothing_to_propose() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    submissions = [submission(i, bundle(i, base_cid)[0]) for i in range(2)]

    with pytest.raises(NotEnoughUpdatesError, match="needs 3"):
        next_model(base, base_cid, 1, submissions, policy(Rule("trimmed-mean", trim=1)))
    with pytest.raises(NotEnoughUpdatesError, match="0 update"):
        next_model(base, base_cid, 1, [submission(0, None)], policy())


def test_an_update_over_the_norm_bound_is_screened_out() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    made = [bundle(i, base_cid) for i in range(3)]
    norms = [float(np.sqrt(sum((d**2).sum() for d in delta.values()))) for _, delta in made]
    largest = int(np.argmax(norms))
    bound = sorted(norms)[1] * (1 + 1e-6)  # only the largest is over it
    submissions = [submission(i, data) for i, (data, _) in enumerate(made)]

    result = next_model(base, base_cid, 1, submissions, policy(norm_bound=bound))

    assert node(largest) not in result.included
    assert len(result.included) == 2
    assert [r.node for r in result.rejected] == [node(largest)]
    assert "norm" in result.rejected[0].reason


def test_weights_are_capped_at_the_policys_sample_cap() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    samples = (10, 1000)
    made = [bundle(i, base_cid, samples=s) for i, s in enumerate(samples)]
    submissions = [submission(i, made[i][0], s) for i, s in enumerate(samples)]

    capped = read_model(
        next_model(base, base_cid, 1, submissions, policy(sample_cap=10)).model, SPEC
    )

    for name in SPEC.names:  # both weigh 10: the plain mean
        mean = (made[0][1][name] * 10.0 + made[1][1][name] * 10.0) / 20.0
        expected = (base.weights[name].astype(np.float64) + mean).astype(np.float32)
        np.testing.assert_array_equal(capped.weights[name], expected)


def test_the_server_learning_rate_scales_the_step() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    made = [bundle(i, base_cid) for i in range(2)]
    submissions = [submission(i, data) for i, (data, _) in enumerate(made)]

    half = read_model(
        next_model(base, base_cid, 1, submissions, policy(server_learning_rate=0.5)).model, SPEC
    )

    for name in SPEC.names:
        mean = (made[0][1][name] + made[1][1][name]) / 2.0
        expected = (base.weights[name].astype(np.float64) + mean * 0.5).astype(np.float32)
        np.testing.assert_array_equal(half.weights[name], expected)


def scaled_copy(original: int, copier: int, base: str, scale: float) -> bytes:
    """Node `copier`'s bundle carrying node `original`'s factors scaled by `scale`."""
    rng = np.random.default_rng(100 + original)
    meta = BundleMeta(round=1, node=node(copier), base_model=base, num_samples=10, rank=RANK,
                      model_spec=SPEC.hash)  # fmt: skip
    wire = {
        "layer.weight.P": rng.standard_normal((12, RANK)).astype(np.float32) * 0.1 * scale,
        "layer.weight.Q": rng.standard_normal((8, RANK)).astype(np.float32) * 0.1,
        "layer.bias": rng.standard_normal(8).astype(np.float32) * 0.1 * scale,
    }
    return write_bundle(meta, SPEC, wire)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_a_copy_of_an_update_registered_earlier_is_left_out(scale: float) -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    # Node 5 (a higher address) registered first; node 0 copies it (scaled: same direction).
    submissions = [
        submission(5, bundle(5, base_cid)[0]),
        submission(1, bundle(1, base_cid)[0]),
        submission(0, scaled_copy(5, 0, base_cid, scale)),
    ]

    result = next_model(base, base_cid, 1, submissions, policy())

    assert result.included == (node(1), node(5))
    assert [r.node for r in result.rejected] == [node(0)]
    assert f"copies the update of {node(5)}" in result.rejected[0].reason


def test_the_first_registered_of_two_identical_updates_is_kept() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    original, copy = scaled_copy(3, 4, base_cid, 1.0), scaled_copy(3, 2, base_cid, 1.0)

    first = next_model(base, base_cid, 1, [submission(4, original), submission(2, copy)], policy())
    second = next_model(base, base_cid, 1, [submission(2, copy), submission(4, original)], policy())

    assert first.included == (node(4),)
    assert second.included == (node(2),)


def test_a_looser_copy_threshold_keeps_similar_but_distinct_updates() -> None:
    base_bytes, base_cid = base_model()
    base = read_model(base_bytes, SPEC)
    submissions = [submission(i, bundle(i, base_cid)[0]) for i in range(3)]

    result = next_model(base, base_cid, 1, submissions, policy(copy_threshold=0.9999))

    assert result.rejected == ()
