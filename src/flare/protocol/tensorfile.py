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
from collections.abc import Mapping
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
    "bfloat16_bits",
    "canonical_json",
    "is_canonical_cid",
    "no_duplicates",
    "safetensors_header",
    "to_float32",
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
