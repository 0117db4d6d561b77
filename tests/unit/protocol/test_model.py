"""The global model file (`flare-model/1`): canonical bytes, strict reading, exact updates."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from tensorfile_support import rewrite_header

from flare.protocol.model import (
    FORMAT,
    GlobalModel,
    InvalidModelError,
    ModelMeta,
    apply_delta,
    model_size,
    read_model,
    write_model,
)
from flare.protocol.modelspec import ModelSpec, ParamSpec
from flare.protocol.tensorfile import bfloat16_bits, to_float32

SPEC = ModelSpec(
    (
        ParamSpec("layer.weight", (6, 4), "float32"),
        ParamSpec("head.bias", (3,), "float16"),
        ParamSpec("adapter", (2, 5), "bfloat16"),
    )
)
PARENT = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def wire_weights(seed: int) -> dict[str, NDArray[Any]]:
    generator = np.random.default_rng(seed)
    return {
        "layer.weight": generator.standard_normal((6, 4)).astype(np.float32),
        "head.bias": generator.standard_normal(3).astype(np.float16),
        "adapter": bfloat16_bits(generator.standard_normal((2, 5)).astype(np.float32)),
    }


def genesis_bytes(seed: int = 0) -> bytes:
    return write_model(ModelMeta.genesis(SPEC), SPEC, wire_weights(seed))


def test_a_model_round_trips_with_canonical_bytes() -> None:
    data = genesis_bytes()

    model = read_model(data, SPEC)

    assert model.meta == ModelMeta.genesis(SPEC)
    assert write_model(model.meta, SPEC, wire_weights(0)) == data  # one byte string per model
    for name, array in wire_weights(0).items():
        dtype = SPEC.param(name).dtype
        np.testing.assert_array_equal(model.weights[name], to_float32(array, dtype))
    header = json.loads(data[8 : 8 + struct.unpack_from("<Q", data)[0]])
    assert header["__metadata__"]["format"] == FORMAT
    assert list(header)[1:] == sorted(SPEC.names)  # tensors in name order


def test_a_derived_model_names_its_parent_and_updates() -> None:
    meta = ModelMeta(round=7, parent=PARENT, updates_root=b"\x11" * 32, model_spec=SPEC.hash)

    model = read_model(write_model(meta, SPEC, wire_weights(1)), SPEC)

    assert model.meta == meta


def test_adding_a_zero_delta_gives_back_the_same_bits() -> None:
    parent = read_model(genesis_bytes(2), SPEC)

    same = apply_delta(
        parent, {name: np.zeros(p.shape) for name, p in zip(SPEC.names, SPEC.params, strict=True)}
    )

    for name, array in wire_weights(2).items():
        np.testing.assert_array_equal(same[name], array)
        assert same[name].dtype == array.dtype


def test_applying_a_delta_adds_in_float64_then_rounds_through_float32() -> None:
    parent = read_model(genesis_bytes(3), SPEC)
    generator = np.random.default_rng(4)
    delta = {p.name: generator.standard_normal(p.shape) * 1e-3 for p in SPEC.params}

    child = apply_delta(parent, delta)

    for p in SPEC.params:
        exact = (parent.weights[p.name].astype(np.float64) + delta[p.name]).astype(np.float32)
        expected = (
            bfloat16_bits(exact) if p.dtype == "bfloat16" else exact.astype(child[p.name].dtype)
        )
        np.testing.assert_array_equal(child[p.name], expected)
    meta = ModelMeta(round=1, parent=PARENT, updates_root=b"\x01" * 32, model_spec=SPEC.hash)
    assert read_model(write_model(meta, SPEC, child), SPEC).meta.round == 1


@pytest.mark.parametrize(
    ("name", "push"),
    [("layer.weight", 1e39), ("head.bias", 7e4), ("adapter", 3.4e38)],
    ids=["float32", "float16", "bfloat16"],
)
def test_a_delta_pushing_a_weight_out_of_its_dtype_is_refused(name: str, push: float) -> None:
    parent = read_model(genesis_bytes(5), SPEC)
    delta = {p.name: np.zeros(p.shape) for p in SPEC.params}
    delta[name] = np.full(SPEC.param(name).shape, push)

    with pytest.raises(InvalidModelError, match=f"{name} leaves the range"):
        apply_delta(parent, delta)


def test_a_delta_of_the_wrong_layout_is_refused() -> None:
    parent = read_model(genesis_bytes(6), SPEC)
    delta = {p.name: np.zeros(p.shape) for p in SPEC.params}

    with pytest.raises(InvalidModelError, match="does not cover"):
        apply_delta(parent, {k: v for k, v in delta.items() if k != "adapter"})
    with pytest.raises(InvalidModelError, match="has shape"):
        apply_delta(parent, {**delta, "adapter": np.zeros((5, 2))})


@pytest.mark.parametrize(
    "changes",
    [
        {"round": -1},
        {"parent": PARENT},  # round 0 with a parent
        {"round": 2},  # a later round without a parent
        {"round": 2, "parent": PARENT.upper()},
        {"updates_root": b"short"},
    ],
)
def test_bad_metadata_is_refused_on_construction(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "round": 0,
        "parent": "",
        "updates_root": bytes(32),
        "model_spec": SPEC.hash,
    }
    with pytest.raises(InvalidModelError, match="bad model metadata"):
        ModelMeta(**(fields | changes))


def _edit_header(edit: Callable[[dict[str, Any]], None]) -> bytes:
    return rewrite_header(genesis_bytes(), edit)


def _set_meta(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda header: header["__metadata__"].__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_meta("format", "flare-update/1"), "is not flare-model/1"),
        (_set_meta("model_spec", "0x" + "00" * 32), "model spec"),
        (_set_meta("round", "01"), "not decimal"),
        (_set_meta("updates_root", "0x12"), "64 lower-case hex"),
        (_set_meta("extra", ""), "missing or unexpected"),
        (_set_meta("round", "3"), "bad model metadata"),  # a later round with no parent
        (lambda h: h["adapter"].__setitem__("dtype", "F32"), "dtype"),
        (lambda h: h["adapter"]["data_offsets"].__setitem__(1, 99), "canonical"),
    ],
)
def test_malformed_model_headers_are_refused(
    edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(InvalidModelError, match=message):
        read_model(_edit_header(edit), SPEC)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\0\0", "trailing"),
        (lambda d: d[:5], "truncated before its header"),
        (lambda d: d + b"\0" * (model_size(SPEC) - len(d) + 1), "exceeds"),
    ],
)
def test_truncated_padded_and_oversized_files_are_refused(
    mangle: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(InvalidModelError, match=message):
        read_model(mangle(genesis_bytes()), SPEC)


def test_non_finite_weights_are_refused_on_both_sides() -> None:
    weights = wire_weights(7)
    weights["layer.weight"][0, 0] = np.nan

    with pytest.raises(InvalidModelError, match="NaN"):
        write_model(ModelMeta.genesis(SPEC), SPEC, weights)

    data = bytearray(genesis_bytes(7))
    (length,) = struct.unpack_from("<Q", data)
    offset = 8 + length + json.loads(data[8 : 8 + length])["layer.weight"]["data_offsets"][0]
    data[offset : offset + 4] = struct.pack("<f", float("inf"))
    with pytest.raises(InvalidModelError, match="NaN or infinite"):
        read_model(bytes(data), SPEC)


def test_a_model_for_another_spec_is_refused_before_its_tensors() -> None:
    other = ModelSpec.from_shapes({"layer.weight": (6, 4)})

    with pytest.raises(InvalidModelError, match="another model spec"):
        write_model(ModelMeta.genesis(other), SPEC, wire_weights(0))
    with pytest.raises(InvalidModelError, match="model spec"):
        read_model(genesis_bytes(), other)


def test_the_model_type_carries_what_it_was_read_with() -> None:
    model = read_model(genesis_bytes(), SPEC)

    assert isinstance(model, GlobalModel)
    assert model.spec is SPEC
