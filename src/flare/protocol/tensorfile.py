"""Canonical safetensors: the one byte layout of flare's tensor files (updates, global models).

A file is `u64 header length | JSON header | tensor bytes`, as safetensors defines it, written
one way only: JSON with sorted keys and no spaces, padded with spaces to 8 bytes, tensors laid
out back to back in the order of their layout. The same tensors and metadata therefore always
give the same bytes, and so the same CID; readers rebuild the header and insist it matches.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flare.protocol.cid import Cid
from flare.protocol.modelspec import ITEMSIZE

__all__ = [
    "DECIMAL",
    "NP_WIRE",
    "ST_DTYPE",
    "UINT64",
    "Layout",
    "TensorFileError",
    "bfloat16_bits",
    "canonical_json",
    "is_canonical_cid",
    "layout_bytes",
    "no_duplicates",
    "read_tensor_file",
    "safetensors_header",
    "to_float32",
    "write_tensor_file",
]

ST_DTYPE = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
NP_WIRE: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "bfloat16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
}
UINT64 = 2**64 - 1
DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_CID_TEXT = re.compile(r"b[a-z2-7]{8,127}")  # base32 CIDv1 characters: a cheap first filter


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def is_canonical_cid(text: object) -> bool:
    """Whether `text` is a CID nodes can fetch, written the one way `Cid.text` writes it.

    One spelling per CID keeps one byte string (and so one CID) per file that names it.
    """
    if not isinstance(text, str) or not _CID_TEXT.fullmatch(text):
        return False
    try:
        return Cid.parse(text).text == text
    except ValueError:  # CidError: not a CID, or a codec or hash flare-node does not fetch
        return False


def safetensors_header(
    layout: Mapping[str, tuple[str, tuple[int, ...]]], metadata: dict[str, str]
) -> bytes:
    """The canonical JSON header for tensors laid out in `layout`'s order."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape) in layout.items():
        end = offset + math.prod(shape) * ITEMSIZE[dtype]
        header[name] = {
            "data_offsets": [offset, end],
            "dtype": ST_DTYPE[dtype],
            "shape": list(shape),
        }
        offset = end
    text = canonical_json(header).encode("ascii")
    return text + b" " * (-len(text) % 8)


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` refusing a key given twice (JSON parsers disagree on which wins)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice")
    return result


def to_float32(array: NDArray[Any], dtype: str) -> NDArray[np.float32]:
    """Wire values as float32, exactly (bfloat16 arrives as its uint16 bit patterns)."""
    if dtype == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32, copy=False)


def bfloat16_bits(array: NDArray[Any]) -> NDArray[np.uint16]:
    """float32 -> bfloat16 bit patterns, rounding to nearest even (as torch does)."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


Layout = Mapping[str, tuple[str, tuple[int, ...]]]
"""Tensor name -> (spec dtype, shape), in the order the tensors are laid out."""


class TensorFileError(ValueError):
    """A tensor file that is not in its one canonical form; formats re-raise it as their own."""


def layout_bytes(layout: Layout) -> int:
    """Bytes of tensor data `layout` describes."""
    return sum(math.prod(shape) * ITEMSIZE[dtype] for dtype, shape in layout.values())


def write_tensor_file(
    layout: Layout, metadata: dict[str, str], tensors: Mapping[str, NDArray[Any]]
) -> bytes:
    """The canonical bytes of `tensors` (wire arrays: float32, float16, bfloat16 as uint16 bits).

    Anything `read_tensor_file` would refuse is refused here first.
    """
    if set(tensors) != set(layout):
        odd = sorted(set(tensors) ^ set(layout))
        raise TensorFileError(f"tensors missing or unexpected for this layout: {odd[:5]}")
    chunks: list[bytes] = []
    for name, (dtype, shape) in layout.items():
        array = np.asarray(tensors[name])
        if array.shape != shape or array.dtype.newbyteorder("<") != NP_WIRE[dtype]:
            raise TensorFileError(
                f"{name}: got {array.dtype}{list(array.shape)}, "
                f"the layout needs {dtype}{list(shape)}"
            )
        _check_finite(name, to_float32(array, dtype))
        chunks.append(np.ascontiguousarray(array, dtype=NP_WIRE[dtype]).tobytes())
    header = safetensors_header(layout, metadata)
    return struct.pack("<Q", len(header)) + header + b"".join(chunks)


def read_tensor_file[T](
    data: bytes,
    *,
    kind: str,
    limit: int,
    header_limit: int,
    decode: Callable[[dict[str, str]], tuple[T, Layout, dict[str, str]]],
) -> tuple[T, dict[str, NDArray[np.float32]]]:
    """Parse an untrusted tensor file: every check before a single array is made.

    `decode` turns the metadata into the format's own record, the layout that record implies,
    and the metadata as the writer would have written it (to rebuild the canonical header).
    Arrays come back as float32, exact for every wire dtype, and finite.
    """
    if len(data) > limit:
        raise TensorFileError(f"{kind} of {len(data)} bytes exceeds the {limit}-byte bound")
    if len(data) < 8:
        raise TensorFileError(f"{kind} of {len(data)} bytes is truncated before its header")
    (header_len,) = struct.unpack_from("<Q", data)
    if header_len > header_limit or 8 + header_len > len(data):
        raise TensorFileError(f"header length {header_len} is out of bounds or truncated")
    header_bytes = bytes(data[8 : 8 + header_len])
    try:
        header = json.loads(header_bytes.decode("ascii"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise TensorFileError(f"{kind} header is not JSON: {error}") from error
    metadata = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TensorFileError(f"{kind} header has no str -> str __metadata__")
    record, layout, canonical = decode(metadata)
    if set(header) != set(layout):
        odd = sorted(set(header) ^ set(layout))
        raise TensorFileError(f"tensors missing or unexpected for this layout: {odd[:5]}")
    for name, (dtype, shape) in layout.items():
        entry = header[name]
        if not isinstance(entry, dict) or entry.get("dtype") != ST_DTYPE[dtype]:
            raise TensorFileError(f"{name}: dtype is not {ST_DTYPE[dtype]} as the layout needs")
        if entry.get("shape") != list(shape):
            raise TensorFileError(f"{name}: shape {entry.get('shape')} is not {list(shape)}")
    if safetensors_header(layout, canonical) != header_bytes:
        raise TensorFileError(f"{kind} header is not in canonical form (offsets or encoding)")
    start = 8 + header_len
    if len(data) != start + layout_bytes(layout):
        raise TensorFileError(f"{kind} is truncated or has trailing bytes")
    arrays: dict[str, NDArray[np.float32]] = {}
    for name, (dtype, shape) in layout.items():
        begin, _ = header[name]["data_offsets"]
        wire = np.frombuffer(data, NP_WIRE[dtype], math.prod(shape), start + begin)
        arrays[name] = _check_finite(name, to_float32(wire.reshape(shape), dtype))
    return record, arrays


def _check_finite(name: str, array: NDArray[np.float32]) -> NDArray[np.float32]:
    if not np.isfinite(array).all():
        raise TensorFileError(f"{name} holds NaN or infinite values")
    return array
