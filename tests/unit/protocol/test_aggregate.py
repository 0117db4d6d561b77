"""Aggregation rules: agreement with textbook formulas, order invariance, robust rejections."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from flare.protocol.aggregate import (
    Aggregate,
    Factored,
    InvalidRuleError,
    Rule,
    Update,
    aggregate,
    clipped_fedavg,
    coordinate_median,
    fedavg,
    find_copies,
    krum_scores,
    multi_krum,
    screen,
    trimmed_mean,
    update_norm,
)
from flare.protocol.bundle import BundleMeta, read_bundle, write_bundle
from flare.protocol.modelspec import ModelSpec
from flare.protocol.rounds import address_bytes, updates_root

SPEC = ModelSpec.from_shapes({"w": (3, 4), "b": (4,)})
BASE_MODEL = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def address(i: int) -> str:
    return "0x" + f"{i:040x}"


def make_updates(seed: int, count: int, scale: float = 1.0) -> list[Update]:
    rng = np.random.default_rng(seed)
    return [
        Update(
            address(int(rng.integers(1, 2**32)) * 64 + i),
            int(rng.integers(1, 500)),
            {p.name: rng.standard_normal(p.shape) * scale for p in SPEC.params},
        )
        for i in range(count)
    ]


def flat(delta: Any) -> NDArray[np.float64]:
    return np.concatenate([np.asarray(delta[name], np.float64).ravel() for name in SPEC.names])


def assert_same(a: Aggregate, b: Aggregate) -> None:
    assert a.included == b.included
    for name in SPEC.names:
        assert a.delta[name].tobytes() == b.delta[name].tobytes()  # bit for bit


RULE_CALLS = {
    "fedavg": lambda u: fedavg(u, SPEC),
    "clipped": lambda u: clipped_fedavg(u, SPEC, clip_norm=2.0),
    "median": lambda u: coordinate_median(u, SPEC),
    "trimmed": lambda u: trimmed_mean(u, SPEC, trim=1),
    "krum": lambda u: multi_krum(u, SPEC, byzantine=1, select=2),
}


# --- order never matters -----------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(5, 8), data=st.data())
def test_every_rule_is_permutation_invariant_bit_for_bit(seed: int, count: int, data: Any) -> None:
    updates = make_updates(seed, count)
    shuffled = data.draw(st.permutations(updates))
    for call in RULE_CALLS.values():
        assert_same(call(updates), call(shuffled))


# --- agreement with the textbook formulas ------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 7))
def test_fedavg_is_the_sample_weighted_mean(seed: int, count: int) -> None:
    updates = make_updates(seed, count)
    result = fedavg(updates, SPEC)
    weights = [u.num_samples for u in updates]
    expected = np.average([flat(u.delta) for u in updates], axis=0, weights=weights)
    np.testing.assert_allclose(flat(result.delta), expected, rtol=1e-12, atol=1e-14)
    assert result.included == tuple(sorted((u.node for u in updates), key=str.lower))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 7), clip=st.floats(0.1, 10.0))
def test_clipped_fedavg_clips_each_update_then_averages(seed: int, count: int, clip: float) -> None:
    updates = make_updates(seed, count, scale=2.0)
    result = clipped_fedavg(updates, SPEC, clip_norm=clip)
    clipped = []
    for u in updates:
        vector = flat(u.delta)
        clipped.append(vector * min(1.0, clip / np.linalg.norm(vector)))
    weights = [u.num_samples for u in updates]
    expected = np.average(clipped, axis=0, weights=weights)
    np.testing.assert_allclose(flat(result.delta), expected, rtol=1e-12, atol=1e-14)
    assert np.linalg.norm(flat(result.delta)) <= clip * (1 + 1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 8))
def test_median_is_the_coordinate_wise_median(seed: int, count: int) -> None:
    updates = make_updates(seed, count)
    result = coordinate_median(updates, SPEC)
    stacked = np.stack([flat(u.delta) for u in updates])
    for j in range(stacked.shape[1]):
        column = sorted(stacked[:, j])
        middle = len(column) // 2
        reference = column[middle] if len(column) % 2 else (column[middle - 1] + column[middle]) / 2
        assert flat(result.delta)[j] == reference


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(3, 9), trim=st.integers(0, 3))
def test_trimmed_mean_drops_extremes_per_coordinate(seed: int, count: int, trim: int) -> None:
    updates = make_updates(seed, count)
    if count < 2 * trim + 1:
        with pytest.raises(InvalidRuleError, match="at least"):
            trimmed_mean(updates, SPEC, trim=trim)
        return
    result = trimmed_mean(updates, SPEC, trim=trim)
    stacked = np.stack([flat(u.delta) for u in updates])
    for j in range(stacked.shape[1]):
        kept = sorted(stacked[:, j])[trim : count - trim]
        assert flat(result.delta)[j] == pytest.approx(math.fsum(kept) / len(kept), rel=1e-12)


def reference_krum_scores(vectors: list[NDArray[np.float64]], f: int) -> list[float]:
    scores = []
    for i, v in enumerate(vectors):
        distances = sorted(float(np.sum((v - w) ** 2)) for j, w in enumerate(vectors) if j != i)
        scores.append(sum(distances[: len(vectors) - f - 2]))
    return scores


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(5, 8), f=st.integers(0, 1))
def test_multi_krum_matches_brute_force(seed: int, count: int, f: int) -> None:
    updates = sorted(make_updates(seed, count), key=lambda u: u.node.lower())
    vectors = [flat(u.delta) for u in updates]
    reference = reference_krum_scores(vectors, f)
    assert krum_scores(updates, SPEC, byzantine=f) == pytest.approx(reference, rel=1e-12)
    select = 2
    best = sorted(range(count), key=lambda i: (reference[i], updates[i].node.lower()))[:select]
    result = multi_krum(updates, SPEC, byzantine=f, select=select)
    assert set(result.included) == {updates[i].node for i in best}
    expected = np.mean([vectors[i] for i in best], axis=0)
    np.testing.assert_allclose(flat(result.delta), expected, rtol=1e-12, atol=1e-14)
    assert len(result.rejected) == count - select


# --- robustness --------------------------------------------------------------------------


def test_robust_rules_resist_one_outlier_fedavg_does_not() -> None:
    honest = make_updates(1, 6, scale=0.01)
    attacker = Update(address(999), 10_000, {p.name: np.full(p.shape, 1e3) for p in SPEC.params})
    updates = [*honest, attacker]
    assert np.abs(flat(fedavg(updates, SPEC).delta)).max() > 100
    for call in (RULE_CALLS["median"], RULE_CALLS["trimmed"], RULE_CALLS["krum"]):
        assert np.abs(flat(call(updates).delta)).max() < 0.1
    assert attacker.node not in multi_krum(updates, SPEC, byzantine=1, select=3).included
    clipped = clipped_fedavg(updates, SPEC, clip_norm=0.05)
    assert np.linalg.norm(flat(clipped.delta)) <= 0.05 * (1 + 1e-12)


# --- screening ---------------------------------------------------------------------------


def test_screen_rejects_each_bad_update_with_its_reason() -> None:
    good = make_updates(2, 3)
    bad = {
        "nan": Update(address(1), 5, good[0].delta | {"b": np.array([0.0, np.nan, 0, 0])}),
        "inf": Update(address(2), 5, good[0].delta | {"w": np.full((3, 4), np.inf)}),
        "shape": Update(address(3), 5, good[0].delta | {"b": np.zeros(5)}),
        "missing": Update(address(4), 5, {"w": np.zeros((3, 4))}),
        "samples": Update(address(5), 0, good[0].delta),
        "norm": Update(address(6), 5, {p.name: np.full(p.shape, 100.0) for p in SPEC.params}),
    }
    accepted, rejected = screen([*good, *bad.values()], SPEC, norm_bound=50.0)
    assert [u.node for u in accepted] == sorted((u.node for u in good), key=str.lower)
    reasons = {r.node: r.reason for r in rejected}
    assert "NaN" in reasons[address(1)]
    assert "NaN or infinite" in reasons[address(2)]
    assert "shape" in reasons[address(3)]
    assert "differ from the model spec" in reasons[address(4)]
    assert "numSamples" in reasons[address(5)]
    assert "exceeds the bound" in reasons[address(6)]
    assert len(rejected) == len(bad)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), data=st.data())
def test_every_update_from_a_duplicated_node_is_rejected_whatever_the_order(
    seed: int, data: Any
) -> None:
    good = make_updates(seed, 4)
    other_spelling = "0x" + good[1].node[2:].upper()  # the same 20 bytes
    second = Update(other_spelling, 5, good[0].delta)
    updates = data.draw(st.permutations([*good, second]))

    accepted, rejected = screen(updates, SPEC, norm_bound=1e9)

    assert [u.node for u in accepted] == sorted(
        (u.node for u in good if u is not good[1]), key=str.lower
    )
    assert [(r.node, "same node" in r.reason) for r in rejected] == [
        (other_spelling, True),
        (good[1].node, True),
    ]
    assert screen([*good, second], SPEC, norm_bound=1e9) == (accepted, rejected)


def test_an_update_whose_node_is_not_an_address_is_rejected() -> None:
    good = make_updates(5, 2)
    typo = good[0].node[:-1] + "g"
    bad_checksum = "0x" + "aB" * 20

    accepted, rejected = screen(
        [*good, Update(typo, 5, good[0].delta), Update(bad_checksum, 5, good[0].delta)],
        SPEC,
        norm_bound=1e9,
    )

    assert accepted == sorted(good, key=lambda u: u.node.lower())
    assert sorted(r.node for r in rejected) == sorted([typo, bad_checksum])
    assert all("not an Ethereum address" in r.reason for r in rejected)
    with pytest.raises(InvalidRuleError, match="not an Ethereum address"):
        fedavg([*good, Update(typo, 5, good[0].delta)], SPEC)


def spelled(raw: bytes, style: int) -> str:
    """One of the three spellings of an address: lower case, upper-case hex, EIP-55."""
    body = raw.hex()
    return ["0x" + body, "0x" + body.upper(), to_checksum_address(raw)][style]


@settings(max_examples=50, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.binary(min_size=20, max_size=20), st.integers(0, 2), st.binary(max_size=40)),
        min_size=5,
        max_size=8,
        unique_by=lambda entry: entry[0],
    ),
    data=st.data(),
)
def test_aggregate_inclusion_order_is_the_order_updates_root_commits_to(
    entries: list[tuple[bytes, int, bytes]], data: Any
) -> None:
    rng = np.random.default_rng(len(entries))
    cids = {spelled(raw, style): cid for raw, style, cid in entries}
    updates = [
        Update(node, 10, {p.name: rng.standard_normal(p.shape) for p in SPEC.params})
        for node in cids
    ]
    shuffled = data.draw(st.permutations(updates))

    for call in RULE_CALLS.values():
        included = call(shuffled).included
        in_aggregate_order = keccak(
            b"".join(address_bytes(node) + keccak(cids[node]) for node in included)
        )
        assert in_aggregate_order == updates_root((node, cids[node]) for node in included)
    full = fedavg(shuffled, SPEC).included
    assert [address_bytes(node) for node in full] == sorted(raw for raw, _, _ in entries)


def test_aggregate_screens_then_applies_the_rule_and_keeps_every_rejection() -> None:
    updates = make_updates(3, 6)
    poisoned = Update(address(7), 5, {p.name: np.full(p.shape, 1e6) for p in SPEC.params})
    result = aggregate([*updates, poisoned], SPEC, Rule("multi-krum", select=3), norm_bound=1e3)
    assert len(result.included) == 3
    assert any("exceeds the bound" in r.reason for r in result.rejected)
    assert sum("multi-Krum" in r.reason for r in result.rejected) == 3
    assert_same(aggregate(updates, SPEC, Rule("fedavg"), norm_bound=1e3), fedavg(updates, SPEC))


@pytest.mark.parametrize(
    "rule",
    [
        Rule("fedavg"),
        Rule("median"),
        Rule("trimmed-mean", trim=2),
        Rule("multi-krum", byzantine=1, select=4),
    ],
)
def test_minimum_updates_is_exactly_what_the_rule_needs(rule: Rule) -> None:
    enough = make_updates(8, rule.minimum_updates)
    assert aggregate(enough, SPEC, rule, norm_bound=1e9).included
    with pytest.raises(InvalidRuleError, match="at least"):
        aggregate(enough[:-1], SPEC, rule, norm_bound=1e9)


def test_bad_rules_and_too_few_updates_are_refused() -> None:
    with pytest.raises(InvalidRuleError, match="unknown"):
        Rule("mean-of-everything")
    with pytest.raises(InvalidRuleError, match="at least 1"):
        fedavg([], SPEC)
    with pytest.raises(InvalidRuleError, match="at least 5"):
        multi_krum(make_updates(4, 4), SPEC, byzantine=1, select=1)
    with pytest.raises(InvalidRuleError, match="positive"):
        clipped_fedavg(make_updates(4, 2), SPEC, clip_norm=0.0)
    twice = make_updates(4, 2)
    with pytest.raises(InvalidRuleError, match="same node"):
        fedavg([twice[0], twice[0]], SPEC)


def test_rules_accept_lazy_deltas_straight_from_bundles() -> None:
    spec = ModelSpec.from_shapes({"w": (16, 12), "b": (12,)})
    rng = np.random.default_rng(5)
    updates = []
    for i in range(3):
        meta = BundleMeta(7, address(i + 1), BASE_MODEL, 10 + i, 2, spec.hash)
        arrays = {
            name: rng.standard_normal(shape).astype(np.float32)
            for name, (_, shape) in spec.wire_layout(2, "float32").items()
        }
        bundle = read_bundle(write_bundle(meta, spec, arrays), spec)
        updates.append(Update(bundle.meta.node, bundle.meta.num_samples, bundle.delta()))
    result = fedavg(updates, spec)
    eager = [Update(u.node, u.num_samples, dict(u.delta)) for u in updates]
    eager_result = fedavg(eager, spec)
    for name in spec.names:
        np.testing.assert_array_equal(result.delta[name], eager_result.delta[name])
    assert update_norm(updates[0].delta, spec) == pytest.approx(
        float(np.linalg.norm(np.concatenate([np.ravel(updates[0].delta[n]) for n in spec.names])))
    )


def test_reference_helpers_agree_on_a_tiny_case() -> None:
    """Sanity of the brute-force Krum helper itself on a case worked by hand."""
    vectors = [
        np.array([0.0]),
        np.array([1.0]),
        np.array([3.0]),
        np.array([10.0]),
        np.array([11.0]),
    ]
    # f = 1: each score sums the n - f - 2 = 2 smallest squared distances
    assert reference_krum_scores(vectors, 1) == [1 + 9, 1 + 4, 4 + 9, 1 + 49, 1 + 64]


def test_a_norm_too_close_to_the_bound_is_decided_by_the_exact_sum() -> None:
    update = make_updates(seed=41, count=1)[0]
    exact = update_norm(update.delta, SPEC)
    squares = [np.square(np.asarray(update.delta[n], np.float64)).ravel() for n in SPEC.names]
    assert exact == math.sqrt(math.fsum(math.fsum(s.tolist()) for s in squares))

    accepted, _ = screen([update], SPEC, norm_bound=exact)
    rejected_by_an_ulp = screen([update], SPEC, norm_bound=math.nextafter(exact, 0.0))[1]

    assert len(accepted) == 1
    assert len(rejected_by_an_ulp) == 1


def bundled_updates(seed: int, count: int, copies: dict[int, tuple[int, float]]) -> list[Update]:
    """Lazy updates from real bundles; `copies[i] = (j, noise)`: update i is update j's factors
    plus `noise` times fresh values (a copier disguising its copy)."""
    spec = ModelSpec.from_shapes({"w": (24, 16), "c": (4, 6, 8), "b": (16,)})
    rng = np.random.default_rng(seed)
    arrays: list[dict[str, NDArray[np.float32]]] = []
    updates = []
    for i in range(count):
        fresh = {
            name: rng.standard_normal(shape).astype(np.float32)
            for name, (_, shape) in spec.wire_layout(3, "float32").items()
        }
        if i in copies:
            source, noise = copies[i]
            fresh = {n: (arrays[source][n] + noise * fresh[n]).astype(np.float32) for n in fresh}
        arrays.append(fresh)
        meta = BundleMeta(7, address(i + 1), BASE_MODEL, 10 + i, 3, spec.hash)
        bundle = read_bundle(write_bundle(meta, spec, fresh), spec)
        updates.append(Update(bundle.meta.node, bundle.meta.num_samples, bundle.delta()))
    return updates


@pytest.mark.parametrize("noise", [0.0, 1e-4, 0.05, 1.0])
def test_copy_detection_on_factors_decides_as_on_the_multiplied_out_updates(noise: float) -> None:
    """Cosines taken on the PowerSGD factors equal those of the dense deltas to ~1e-12, far
    inside the close-call margin, so the kept and rejected updates are the same."""
    updates = bundled_updates(3, 6, {3: (1, noise), 5: (0, noise)})
    spec = ModelSpec.from_shapes({"w": (24, 16), "c": (4, 6, 8), "b": (16,)})
    assert all(isinstance(u.delta, Factored) for u in updates)
    dense = [Update(u.node, u.num_samples, dict(u.delta)) for u in updates]
    assert not isinstance(dense[0].delta, Factored)
    for threshold in (0.5, 0.9, 0.99, 0.999999):
        kept, copied = find_copies(updates, spec, threshold=threshold)
        kept_dense, copied_dense = find_copies(dense, spec, threshold=threshold)
        assert [u.node for u in kept] == [u.node for u in kept_dense]
        assert copied == copied_dense
    disguised = {r.node for r in find_copies(updates, spec, threshold=0.9)[1]}
    assert disguised == ({updates[3].node, updates[5].node} if noise <= 0.05 else set())


def test_a_copy_within_a_hair_of_the_threshold_is_decided_the_same_either_way() -> None:
    updates = bundled_updates(9, 3, {2: (0, 0.3)})
    spec = ModelSpec.from_shapes({"w": (24, 16), "c": (4, 6, 8), "b": (16,)})
    a, b = flat(updates[2].delta), flat(updates[0].delta)
    exact = float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
    for threshold in (math.nextafter(exact, 0.0), exact, math.nextafter(exact, 2.0)):
        dense = [Update(u.node, u.num_samples, dict(u.delta)) for u in updates]
        assert (
            find_copies(updates, spec, threshold=threshold)[1]
            == find_copies(dense, spec, threshold=threshold)[1]
        )
