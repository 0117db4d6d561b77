"""The model spec: its hash, its JSON form, and the factored/dense layout it implies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.protocol.modelspec import (
    MAX_RANK,
    InvalidModelSpecError,
    ModelSpec,
    ParamSpec,
)

BASE = ModelSpec.from_shapes({"a.weight": (8, 6), "a.bias": (6,), "b": (2, 3, 4)}, backbone="x")


def test_hash_is_keccak_of_canonical_json_and_stable() -> None:
    again = ModelSpec.from_shapes(
        {"a.weight": (8, 6), "a.bias": (6,), "b": (2, 3, 4)}, backbone="x"
    )
    assert BASE.hash == again.hash
    assert len(BASE.hash) == 32
    assert b" " not in BASE.canonical_json()


@pytest.mark.parametrize(
    "changed",
    [
        ModelSpec.from_shapes({"a.weight": (8, 6), "a.bias": (6,), "b": (2, 3, 5)}, backbone="x"),
        ModelSpec.from_shapes({"a.bias": (6,), "a.weight": (8, 6), "b": (2, 3, 4)}, backbone="x"),
        ModelSpec.from_shapes({"a.weight": (8, 6), "a.bias": (6,), "b": (2, 3, 4)}, backbone="y"),
        ModelSpec.from_shapes(
            {"a.weight": (8, 6), "a.bias": (6,), "b": (2, 3, 4)}, backbone="x", dtype="bfloat16"
        ),
        ModelSpec.from_shapes({"a.weight": (8, 6), "a.bias": (6,), "c": (2, 3, 4)}, backbone="x"),
    ],
    ids=["shape", "order", "backbone", "dtype", "name"],
)
def test_any_change_changes_the_hash(changed: ModelSpec) -> None:
    assert changed.hash != BASE.hash


def test_json_round_trip() -> None:
    assert ModelSpec.from_json(BASE.canonical_json()) == BASE


@pytest.mark.parametrize("text", [b"{}", b"[]", b"not json", b'{"format":"flare-modelspec/1"}'])
def test_from_json_refuses_other_documents(text: bytes) -> None:
    with pytest.raises(InvalidModelSpecError):
        ModelSpec.from_json(text)


@pytest.mark.parametrize(
    "params",
    [
        (),
        (ParamSpec("w", (2, 2)), ParamSpec("w", (3,))),
        (ParamSpec("w", (2, 0)),),
        (ParamSpec("w", ()),),
        (ParamSpec("w", (2,), "int8"),),
        (ParamSpec("w", (4, 4)), ParamSpec("w.P", (4,))),
        (ParamSpec("has space", (2,)),),
        (ParamSpec("__metadata__", (2,)),),
        (ParamSpec("", (2,)),),
    ],
    ids=[
        "empty",
        "duplicate",
        "zero-dim",
        "scalar",
        "dtype",
        "factor-clash",
        "space",
        "meta",
        "noname",
    ],
)
def test_invalid_specs_are_refused(params: tuple[ParamSpec, ...]) -> None:
    with pytest.raises(InvalidModelSpecError):
        ModelSpec(params)


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(1, 300), min_size=1, max_size=4).map(tuple),
    rank=st.integers(1, MAX_RANK),
)
def test_factored_iff_factors_are_at_least_twice_smaller(shape: tuple[int, ...], rank: int) -> None:
    p = ParamSpec("w", shape)
    if len(shape) == 1:
        assert not p.factored(rank)
        return
    m, n = shape[0], math.prod(shape[1:])
    assert p.matrix_shape == (m, n)
    assert p.factored(rank) == ((m + n) * rank * 2 <= m * n)


def test_wire_layout_and_bytes() -> None:
    spec = ModelSpec.from_shapes({"big": (960, 720), "bias": (720,), "thin": (6, 720)})
    layout = spec.wire_layout(4, "bfloat16")
    assert layout == {
        "big.P": ("bfloat16", (960, 4)),
        "big.Q": ("bfloat16", (720, 4)),
        "bias": ("float32", (720,)),
        "thin": ("float32", (6, 720)),
    }
    assert list(layout) == sorted(layout)
    assert spec.wire_bytes(4, "bfloat16") == (960 + 720) * 4 * 2 + 720 * 4 + 6 * 720 * 4
    with pytest.raises(InvalidModelSpecError):
        spec.wire_layout(0, "float32")
