"""The review policy document: canonical bytes, strict parsing, the acceptance rule."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.protocol.aggregate import Rule
from flare.protocol.policy import (
    MAX_POLICY_BYTES,
    PolicyError,
    ReviewPolicy,
    canonical_json,
    read_policy,
)

DEFAULT = ReviewPolicy(rule=Rule("fedavg"), norm_bound=1000.0, sample_cap=100_000)


def edited(change: Any) -> bytes:
    """The default policy's document after `change(document)`, re-encoded canonically."""
    document = json.loads(DEFAULT.to_bytes())
    change(document)
    return canonical_json(document)


def test_the_canonical_encoding_is_pinned() -> None:
    assert DEFAULT.to_bytes() == (
        b'{"acceptance":{"max_loss_increase":0.0,"rule":"held-out-loss"},'
        b'"aggregation":{"rule":"fedavg"},"copy_threshold":0.9999,"format":"flare-policy/1",'
        b'"norm_bound":1000.0,"sample_cap":100000,'
        b'"server_optimizer":{"learning_rate":1.0,"name":"sgd"}}'
    )


rules = st.one_of(
    st.just(Rule("fedavg")),
    st.just(Rule("median")),
    st.builds(lambda c: Rule("clipped-fedavg", clip_norm=c), st.floats(1e-6, 1e6)),
    st.builds(lambda t: Rule("trimmed-mean", trim=t), st.integers(0, 10)),
    st.builds(
        lambda f, m: Rule("multi-krum", byzantine=f, select=m),
        st.integers(0, 5),
        st.integers(1, 10),
    ),
)


@given(
    rule=rules,
    bound=st.floats(1e-9, 1e12),
    cap=st.integers(1, 2**64 - 1),
    rate=st.floats(1e-6, 10.0),
    copy=st.floats(1e-6, 1.0),
    slack=st.floats(0.0, 10.0),
)
def test_every_policy_reads_back_from_its_canonical_bytes(
    rule: Rule, bound: float, cap: int, rate: float, copy: float, slack: float
) -> None:
    policy = ReviewPolicy(rule, bound, cap, rate, copy, slack)

    assert read_policy(policy.to_bytes()) == policy


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (DEFAULT.to_bytes().replace(b",", b", "), "canonical"),
        (json.dumps(DEFAULT.document(), sort_keys=False).encode(), "canonical"),
        (DEFAULT.to_bytes() + b"\n", "canonical"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (edited(lambda d: d.update(format="flare-policy/2")), "flare-policy/2"),
        (edited(lambda d: d.update(extra=1)), "unknown"),
        (edited(lambda d: d.pop("norm_bound")), "missing"),
        (edited(lambda d: d["aggregation"].update(rule="krum")), "not one this node knows"),
        (edited(lambda d: d["aggregation"].update(trim=1)), "unknown"),
        (edited(lambda d: d["server_optimizer"].update(name="adam")), "not one this node knows"),
        (edited(lambda d: d["acceptance"].update(rule="vibes")), "not one this node knows"),
        (edited(lambda d: d.update(norm_bound=1000)), "written as a float"),
        (edited(lambda d: d.update(sample_cap=True)), "integer"),
        (edited(lambda d: d.update(sample_cap=0)), "sample_cap"),
        (edited(lambda d: d.update(norm_bound=-1.0)), "norm_bound"),
        (edited(lambda d: d.update(copy_threshold=1.5)), "copy_threshold"),
        (DEFAULT.to_bytes().replace(b"1000.0", b"NaN"), "not a number"),
        (b" " * (MAX_POLICY_BYTES + 1), "at most"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_anything_else_is_refused_with_what_is_wrong(data: bytes, match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        read_policy(data)


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        (Rule("clipped-fedavg", clip_norm=0.0), "clip_norm"),
        (Rule("trimmed-mean", trim=-1), "trim"),
        (Rule("multi-krum", byzantine=1, select=0), "multi-krum"),
    ],
)
def test_rule_parameters_out_of_range_are_refused(rule: Rule, match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        ReviewPolicy(rule=rule, norm_bound=1.0, sample_cap=1)


@pytest.mark.parametrize(
    ("slack", "base", "candidate", "approve"),
    [
        (0.0, 2.0, 1.9, True),
        (0.0, 2.0, 2.0, True),
        (0.0, 2.0, 2.0000001, False),
        (0.1, 2.0, 2.2, True),
        (0.1, 2.0, 2.21, False),
        (0.0, 2.0, math.nan, False),
        (0.0, math.inf, 1.0, False),
    ],
)
def test_the_acceptance_rule(slack: float, base: float, candidate: float, approve: bool) -> None:
    policy = ReviewPolicy(Rule("fedavg"), 1.0, 1, max_loss_increase=slack)

    assert policy.accepts(base, candidate) is approve
