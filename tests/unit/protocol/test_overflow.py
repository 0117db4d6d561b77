"""The overflow rules at their edges: the bound per dtype, an update alone, the aggregate.

Every decision is a comparison of exactly computed float64 values with a constant, so these
tests pin the constants and probe one ulp either side of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from flare.protocol.aggregate import Aggregate, Update, overflowing, screen
from flare.protocol.model import GlobalModel, ModelMeta, apply_delta, read_model, write_model
from flare.protocol.modelspec import DTYPES, ModelSpec
from flare.protocol.overflow import FINITE_MAX, ModelStep
from flare.protocol.tensorfile import bfloat16_bits

SHAPES = {"w": (2, 3), "b": (3,)}


def address(i: int) -> str:
    return "0x" + f"{i:040x}"


def spec_of(dtype: str) -> ModelSpec:
    return ModelSpec.from_shapes(SHAPES, dtype=dtype)


def zeros(spec: ModelSpec) -> dict[str, NDArray[np.float64]]:
    return {p.name: np.zeros(p.shape) for p in spec.params}


def with_value(spec: ModelSpec, value: float, name: str = "b") -> dict[str, NDArray[np.float64]]:
    delta = zeros(spec)
    delta[name].flat[0] = value
    return delta


def zero_model(spec: ModelSpec, base_b0: float = 0.0) -> GlobalModel:
    """A model of zeros (b[0] = `base_b0`), written and read back as the review reads it."""
    weights: dict[str, NDArray[Any]] = {}
    for p in spec.params:
        values = np.zeros(p.shape, dtype=np.float32)
        if p.name == "b":
            values[0] = base_b0
        weights[p.name] = bfloat16_bits(values) if p.dtype == "bfloat16" else values.astype(p.dtype)
    return read_model(write_model(ModelMeta.genesis(spec), spec, weights), spec)


def above(value: float) -> float:
    return float(np.nextafter(value, np.inf))


# --- the bound ---------------------------------------------------------------------------


def test_the_bound_is_each_dtypes_largest_finite_value() -> None:
    assert set(FINITE_MAX) == set(DTYPES)
    assert FINITE_MAX["float32"] == float(np.finfo(np.float32).max)
    assert FINITE_MAX["float16"] == float(np.finfo(np.float16).max) == 65504.0
    top = np.array([FINITE_MAX["bfloat16"]], dtype=np.float32)
    assert float(top[0]) == FINITE_MAX["bfloat16"]  # exact in float32
    assert int(bfloat16_bits(top)[0]) == 0x7F7F  # the largest finite bfloat16 pattern


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(fraction=st.floats(-1.0, 1.0))
def test_a_weight_within_the_bound_always_writes(dtype: str, fraction: float) -> None:
    """What makes rule 3 sufficient: base + step within [-M, M] never fails `apply_delta`."""
    spec = spec_of(dtype)
    target = fraction * FINITE_MAX[dtype]
    for edge in (target, FINITE_MAX[dtype], -FINITE_MAX[dtype]):
        weights = apply_delta(zero_model(spec), with_value(spec, edge))
        assert weights["b"].shape == (3,)


# --- rule 1: the update's own values -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_delta_value_one_ulp_past_the_dtype_is_left_out(dtype: str, sign: float) -> None:
    spec = spec_of(dtype)
    limit = FINITE_MAX[dtype]
    edge = Update(address(1), 5, with_value(spec, sign * limit, "w"))
    past = Update(address(2), 5, with_value(spec, sign * above(limit), "w"))

    accepted, rejected = screen([edge, past], spec, norm_bound=1e300)

    assert accepted == [edge]
    assert [r.node for r in rejected] == [address(2)]
    assert f"w overflows {dtype}: its delta reaches" in rejected[0].reason


# --- rule 2: the model the update would make on its own ----------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_update_pushing_the_base_past_the_dtype_is_left_out(dtype: str) -> None:
    spec = spec_of(dtype)
    limit = FINITE_MAX[dtype]
    base_b0 = limit / 4  # exact in every dtype: a power-of-two scaling of the maximum
    model = zero_model(spec, base_b0)
    assert float(model.weights["b"][0]) == base_b0
    fits = Update(address(1), 5, with_value(spec, limit - base_b0))  # lands on the limit exactly
    spills = Update(address(2), 5, with_value(spec, above(limit - base_b0)))
    step = ModelStep(model.weights)

    accepted, rejected = screen([fits, spills], spec, norm_bound=1e300, step=step)

    assert accepted == [fits]
    assert [r.node for r in rejected] == [address(2)]
    assert f"b overflows {dtype} in the new model" in rejected[0].reason
    assert screen([spills], spec, norm_bound=1e300) == ([spills], [])  # rule 1 alone lets it by


def test_the_server_learning_rate_counts_in_the_model_an_update_would_make() -> None:
    spec = spec_of("float16")
    update = Update(address(1), 5, with_value(spec, 40000.0))

    slow, _ = screen([update], spec, norm_bound=1e300, step=ModelStep(zero_model(spec).weights))
    _, fast = screen(
        [update], spec, norm_bound=1e300, step=ModelStep(zero_model(spec).weights, 2.0)
    )

    assert slow == [update]
    assert [r.node for r in fast] == [address(1)]
    assert "base + 2 x its delta reaches 80000" in fast[0].reason


# --- rule 3: the aggregate ---------------------------------------------------------------


def aggregate_of(
    spec: ModelSpec, values: dict[str, float], weights: dict[str, float], b0: float
) -> tuple[Aggregate, list[Update]]:
    """An aggregate landing at b[0] = `b0`, made of updates holding `values` at b[0]."""
    updates = [Update(node, 1, with_value(spec, value)) for node, value in values.items()]
    nodes = tuple(sorted(values))
    result = Aggregate(with_value(spec, b0), nodes, weights=tuple(weights[n] for n in nodes))
    return result, updates


def test_an_aggregate_within_range_leaves_nobody_out() -> None:
    spec = spec_of("float16")
    result, updates = aggregate_of(spec, {address(1): 65504.0}, {address(1): 1.0}, 65504.0)

    assert overflowing(result, updates, spec, ModelStep(zero_model(spec).weights)) is None


def test_the_largest_weighted_push_toward_the_overflow_goes_first() -> None:
    spec = spec_of("float16")
    values = {address(1): 60000.0, address(2): 50000.0, address(3): -65000.0}
    # weighted: 60000, 100000 (the largest push up), -6500000 (pushes down, not toward)
    weights = {address(1): 1.0, address(2): 2.0, address(3): 100.0}
    result, updates = aggregate_of(spec, values, weights, above(65504.0))

    culprit = overflowing(result, updates, spec, ModelStep(zero_model(spec).weights))

    assert culprit is not None
    assert culprit.node == address(2)
    assert "the aggregate overflows float16 at b[0]" in culprit.reason
    assert "its weighted value there, 100000, pushes furthest" in culprit.reason


def test_an_overflow_below_the_range_leaves_out_the_most_negative_push() -> None:
    spec = spec_of("float16")
    values = {address(1): -60000.0, address(2): -50000.0, address(3): 65000.0}
    weights = {address(1): 1.0, address(2): 1.0, address(3): 9.0}
    result, updates = aggregate_of(spec, values, weights, -above(65504.0))

    culprit = overflowing(result, updates, spec, ModelStep(zero_model(spec).weights))

    assert culprit is not None
    assert culprit.node == address(1)


def test_equal_pushes_leave_out_the_lower_address() -> None:
    spec = spec_of("float16")
    values = {address(7): 60000.0, address(3): 60000.0}
    result, updates = aggregate_of(spec, values, dict.fromkeys(values, 1.0), above(65504.0))

    culprit = overflowing(result, updates, spec, ModelStep(zero_model(spec).weights))

    assert culprit is not None
    assert culprit.node == address(3)


def test_the_first_coordinate_out_of_range_decides_in_spec_then_row_major_order() -> None:
    spec = spec_of("float16")  # "w" comes before "b" in the spec
    early = Update(address(1), 1, zeros(spec) | {"w": np.array([[0.0, 0, 0], [0, 9e4, 0]])})
    late = Update(address(2), 1, zeros(spec) | {"b": np.array([0.0, 0, 9e9])})
    delta = {"w": np.array([[0.0, 0, 0], [0, 7e4, 0]]), "b": np.array([0.0, 0, 8e4])}
    result = Aggregate(delta, (address(1), address(2)), weights=(1.0, 1.0))

    culprit = overflowing(result, [early, late], spec, ModelStep(zero_model(spec).weights))

    assert culprit is not None
    assert culprit.node == address(1)  # "w"[4] comes before "b"[2], however far "b" goes
    assert "at w[4]" in culprit.reason
