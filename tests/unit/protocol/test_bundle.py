"""The update bundle: canonical bytes, round trips, and refusal of anything malformed."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray
from safetensors.numpy import load as safetensors_load
from tensorfile_support import rewrite_header

from flare.protocol.bundle import (
    FORMAT,
    BundleMeta,
    InvalidBundleError,
    UpdateBundle,
    read_bundle,
    write_bundle,
)
from flare.protocol.modelspec import ModelSpec
from flare.protocol.tensorfile import bfloat16_bits

SPEC = ModelSpec.from_shapes({"layer.weight": (24, 16), "layer.bias": (16,), "head": (3, 16)})
NODE = "0x" + "5a" * 20
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def meta(**changes: Any) -> BundleMeta:
    fields: dict[str, Any] = {
        "round": 7,
        "node": NODE,
        "base_model": CID,
        "num_samples": 120,
        "rank": 2,
        "model_spec": SPEC.hash,
        "metrics": {"loss": 0.25, "steps": 50},
    }
    return BundleMeta(**(fields | changes))


def tensors(spec: ModelSpec, bundle_meta: BundleMeta, seed: int = 0) -> dict[str, NDArray[Any]]:
    rng = np.random.default_rng(seed)
    out: dict[str, NDArray[Any]] = {}
    for name, (dtype, shape) in spec.wire_layout(
        bundle_meta.rank, bundle_meta.factor_dtype
    ).items():
        values = rng.standard_normal(shape).astype(np.float32)
        out[name] = bfloat16_bits(values) if dtype == "bfloat16" else values.astype(dtype)
    return out


def good_bundle() -> bytes:
    bundle_meta = meta()
    return write_bundle(bundle_meta, SPEC, tensors(SPEC, bundle_meta))


# --- writing and reading ---------------------------------------------------------------


def test_round_trip_keeps_metadata_and_values() -> None:
    bundle_meta = meta()
    arrays = tensors(SPEC, bundle_meta)
    bundle = read_bundle(write_bundle(bundle_meta, SPEC, arrays), SPEC)
    assert bundle.meta == bundle_meta
    assert set(bundle.tensors) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(bundle.tensors[name], array)


def test_same_inputs_give_same_bytes_whatever_the_dict_order() -> None:
    bundle_meta = meta()
    arrays = tensors(SPEC, bundle_meta)
    reordered = dict(reversed(list(arrays.items())))
    first = write_bundle(bundle_meta, SPEC, arrays)
    assert first == write_bundle(bundle_meta, SPEC, reordered)
    assert first == write_bundle(meta(node=NODE.upper().replace("0X", "0x")), SPEC, arrays)


def test_bundle_is_a_plain_safetensors_file() -> None:
    bundle_meta = meta()
    arrays = tensors(SPEC, bundle_meta)
    loaded = safetensors_load(write_bundle(bundle_meta, SPEC, arrays))
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_metadata_encoding() -> None:
    data = good_bundle()
    (length,) = struct.unpack_from("<Q", data)
    metadata = json.loads(data[8 : 8 + length])["__metadata__"]
    assert metadata["format"] == FORMAT
    assert metadata["round"] == "7"
    assert metadata["num_samples"] == "120"
    assert metadata["metrics"] == '{"loss":0.25,"steps":50.0}'
    assert json.loads(metadata["shapes"]) == {
        "layer.weight": [24, 16],
        "layer.bias": [16],
        "head": [3, 16],
    }
    assert metadata["model_spec"] == "0x" + SPEC.hash.hex()


def test_delta_decompresses_in_float64() -> None:
    bundle = read_bundle(good_bundle(), SPEC)
    delta = bundle.delta()
    assert list(delta) == list(SPEC.names)
    p = bundle.tensors["layer.weight.P"].astype(np.float64)
    q = bundle.tensors["layer.weight.Q"].astype(np.float64)
    assert delta["layer.weight"].dtype == np.float64
    np.testing.assert_array_equal(delta["layer.weight"], p @ q.T)
    np.testing.assert_array_equal(delta["head"], bundle.tensors["head"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(["float32", "bfloat16", "float16"]))
def test_round_trip_any_spec(data: st.DataObject, dtype: str) -> None:
    shapes = data.draw(
        st.dictionaries(
            st.text("abcdefgh.", min_size=1, max_size=6).filter(
                lambda s: not s.endswith((".P", ".Q"))
            ),
            st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple),
            min_size=1,
            max_size=4,
        )
    )
    spec = ModelSpec.from_shapes(shapes)
    rank = data.draw(st.integers(1, 3))
    bundle_meta = meta(model_spec=spec.hash, rank=rank, factor_dtype=dtype)
    arrays = {
        name: data.draw(
            hnp.arrays(
                np.uint16 if kind == "bfloat16" else kind,
                shape,
                elements=st.floats(-1e4, 1e4, width=16 if kind == "float16" else 32)
                if kind != "bfloat16"
                else st.integers(0, 0x7F7F),
            )
        )
        for name, (kind, shape) in spec.wire_layout(rank, dtype).items()
    }
    encoded = write_bundle(bundle_meta, spec, arrays)
    assert encoded == write_bundle(bundle_meta, spec, arrays)
    bundle = read_bundle(encoded, spec)
    for name, (kind, _) in spec.wire_layout(rank, dtype).items():
        expected = arrays[name]
        if kind == "bfloat16":
            expected = (expected.astype(np.uint32) << 16).view(np.float32)
        np.testing.assert_array_equal(bundle.tensors[name], expected)
    assert len(encoded) == 8 + struct.unpack_from("<Q", encoded)[0] + spec.wire_bytes(rank, dtype)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) < 3.38e38)
)
def test_bfloat16_bits_round_to_nearest_even(x: float) -> None:
    value = np.array([x], np.float32)
    truncated = int(value.view(np.uint32)[0]) >> 16  # toward zero; the other candidate is +1
    magnitude = lambda b: abs(float(np.array([b << 16], np.uint32).view(np.float32)[0]))  # noqa: E731
    below = abs(x) - magnitude(truncated)
    above = magnitude(truncated + 1) - abs(x)
    expected = (
        truncated if below < above or (below == above and truncated % 2 == 0) else truncated + 1
    )
    assert int(bfloat16_bits(value)[0]) == expected


# --- refusals ----------------------------------------------------------------------------


def test_writer_refuses_what_the_reader_would_refuse() -> None:
    bundle_meta = meta()
    arrays = tensors(SPEC, bundle_meta)
    with pytest.raises(InvalidBundleError, match="missing or unexpected"):
        write_bundle(bundle_meta, SPEC, {k: v for k, v in arrays.items() if k != "head"})
    with pytest.raises(InvalidBundleError, match="layout needs"):
        write_bundle(bundle_meta, SPEC, arrays | {"head": arrays["head"].T})
    with pytest.raises(InvalidBundleError, match="layout needs"):
        write_bundle(bundle_meta, SPEC, arrays | {"head": arrays["head"].astype(np.float64)})
    with pytest.raises(InvalidBundleError, match="NaN"):
        write_bundle(bundle_meta, SPEC, arrays | {"layer.bias": np.full(16, np.inf, np.float32)})
    with pytest.raises(InvalidBundleError, match="another model spec"):
        write_bundle(meta(model_spec=b"\x00" * 32), SPEC, arrays)


@pytest.mark.parametrize(
    "changes",
    [
        {"round": -1},
        {"num_samples": 0},
        {"rank": 0},
        {"factor_dtype": "int8"},
        {"base_model": "not a cid!"},
        {"node": "0x1234"},
        {"model_spec": b"short"},
        {"metrics": {"loss": float("nan")}},
        {"metrics": {str(i): 1.0 for i in range(65)}},
    ],
)
def test_bad_metadata_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidBundleError, match="bad bundle metadata"):
        meta(**changes)


@pytest.mark.parametrize(
    "base_model",
    [
        "bafkreiabcdefghij",  # base32 letters, but a 6-byte digest
        "bafyreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe",  # dag-cbor codec
        "bafkrgqfevpkejdcjkywyfaiv2e5b7thksj7vfngviwjjp6fuhzbnvcjdrpatmjxehxftrxnqqjeisj7msbh3ii"
        "cxiq4yh2efqulz2ucvdl7ge",  # sha2-512
        CID[:-1] + "z",  # stray trailing bits
        CID.upper(),  # a second spelling of the same CID
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # CIDv0
    ],
    ids=["short-digest", "dag-cbor", "sha2-512", "trailing-bits", "upper-case", "cidv0"],
)
def test_a_base_model_nodes_cannot_fetch_or_spelled_otherwise_is_refused(base_model: str) -> None:
    with pytest.raises(InvalidBundleError, match="not a CID in canonical form"):
        meta(base_model=base_model)


def test_every_truncation_is_refused() -> None:
    data = good_bundle()
    for cut in range(len(data)):
        with pytest.raises(InvalidBundleError):
            read_bundle(data[:cut], SPEC)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d + b"\x00" * 4, "trailing"),
        (lambda d: struct.pack("<Q", 2**63) + d[8:], "out of bounds"),
        (lambda d: struct.pack("<Q", 71_681) + d[8:] + b" " * 10**5, "exceeds"),
        (lambda d: struct.pack("<Q", 71_681) + d[8:], "out of bounds"),
        (lambda d: d[:8] + b"\xff" + d[9:], "not JSON"),
        (lambda d: d[:8] + b"[" * len(d[8:]), "not JSON"),
    ],
    ids=["trailing", "huge-length", "file-over-bound", "header-over-bound", "not-ascii", "nested"],
)
def test_oversized_and_garbled_bundles_are_refused(mangle: Any, message: str) -> None:
    with pytest.raises(InvalidBundleError, match=message):
        read_bundle(mangle(good_bundle()), SPEC)


def test_caller_size_bound_is_applied_first() -> None:
    data = good_bundle()
    with pytest.raises(InvalidBundleError, match="exceeds"):
        read_bundle(data, SPEC, max_bytes=len(data) - 1)
    assert isinstance(read_bundle(data, SPEC, max_bytes=len(data)), UpdateBundle)


def _set_meta(key: str, value: str) -> Any:
    return lambda h: h["__metadata__"].__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_meta("format", "flare-update/2"), "is not flare-update/1"),
        (lambda h: h.__delitem__("__metadata__"), "__metadata__"),
        (lambda h: h["__metadata__"].__delitem__("rank"), "missing or unexpected"),
        (_set_meta("extra", "1"), "missing or unexpected"),
        (_set_meta("round", "07"), "not decimal"),
        (_set_meta("num_samples", "-5"), "not decimal"),
        (_set_meta("model_spec", "0x" + "00" * 32), "model spec"),
        (_set_meta("shapes", '{"head":[3,16]}'), "shapes differ"),
        (_set_meta("metrics", '{"loss":NaN}'), "JSON"),
        (_set_meta("metrics", "[1]"), "not a JSON object"),
        (_set_meta("rank", "3"), "shape"),
        (_set_meta("rank", "20"), "missing or unexpected"),
        (_set_meta("node", "0x" + "5a" * 20), "canonical"),
        (lambda h: h.__setitem__("extra", h.pop("head")), "missing or unexpected"),
        (lambda h: h["head"].__setitem__("dtype", "F64"), "dtype"),
        (lambda h: h["head"].__setitem__("shape", [16, 3]), "shape"),
        (lambda h: h["head"].__setitem__("data_offsets", [4, 196]), "canonical"),
        (lambda h: h["__metadata__"].__setitem__("round", 7), "str -> str"),
    ],
)
def test_malformed_headers_are_refused(edit: Any, message: str) -> None:
    with pytest.raises(InvalidBundleError, match=message):
        read_bundle(rewrite_header(good_bundle(), edit), SPEC)


def test_non_canonical_spacing_is_refused() -> None:
    data = good_bundle()
    (length,) = struct.unpack_from("<Q", data)
    spaced = json.dumps(json.loads(data[8 : 8 + length]), sort_keys=True).encode()
    spaced += b" " * (-len(spaced) % 8)
    with pytest.raises(InvalidBundleError, match="canonical"):
        read_bundle(struct.pack("<Q", len(spaced)) + spaced + data[8 + length :], SPEC)


def test_duplicate_header_keys_are_refused() -> None:
    data = good_bundle()
    (length,) = struct.unpack_from("<Q", data)
    header = data[8 : 8 + length].rstrip(b" ")
    doubled = header[:-1] + b',"head":' + json.dumps(json.loads(header)["head"]).encode() + b"}"
    doubled += b" " * (-len(doubled) % 8)
    with pytest.raises(InvalidBundleError, match="twice"):
        read_bundle(struct.pack("<Q", len(doubled)) + doubled + data[8 + length :], SPEC)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    data = bytearray(good_bundle())
    data[-4:] = np.array([bad], np.float32).tobytes()  # the last value of the last tensor
    with pytest.raises(InvalidBundleError, match="NaN or infinite"):
        read_bundle(bytes(data), SPEC)


def test_bundle_for_another_spec_is_refused() -> None:
    other = ModelSpec.from_shapes({"layer.weight": (24, 16), "layer.bias": (16,), "head": (3, 17)})
    with pytest.raises(InvalidBundleError, match="model spec"):
        read_bundle(good_bundle(), other)


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, 10**6), value=st.integers(0, 255))
def test_any_single_byte_change_is_refused_or_keeps_the_layout(position: int, value: int) -> None:
    data = bytearray(good_bundle())
    position %= len(data)
    data[position] = value
    try:
        bundle = read_bundle(bytes(data), SPEC)
    except InvalidBundleError:
        return
    # accepted: only tensor values or a metadata value of the same width changed (a digit of
    # the round or sample count, a character of the base model CID, the node or a metric),
    # and the result is well-formed; the layout and the spec it was built for are untouched
    assert bundle.meta == meta(
        round=bundle.meta.round,
        num_samples=bundle.meta.num_samples,
        node=bundle.meta.node,
        base_model=bundle.meta.base_model,
        metrics=bundle.meta.metrics,
    )
    assert set(bundle.tensors) == set(SPEC.wire_layout(2, "float32"))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidBundleError):
        read_bundle(data, SPEC)


@pytest.mark.parametrize(
    "metrics", ['{"loss":' + "9" * 400 + "}", '{"loss":true}', "[" * 5000 + "]" * 5000]
)
def test_metric_values_no_float_holds_are_refused_cleanly(metrics: str) -> None:
    data = rewrite_header(
        good_bundle(), lambda h: h["__metadata__"].__setitem__("metrics", metrics)
    )

    with pytest.raises(InvalidBundleError, match=r"not a finite number|does not parse"):
        read_bundle(data, SPEC)
