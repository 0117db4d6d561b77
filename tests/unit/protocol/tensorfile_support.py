"""Test help for tensor files (bundles, models): edit a header and keep the file canonical."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any


def rewrite_header(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    """Apply `edit` to the parsed header and re-encode it canonically (keeping the data)."""
    (length,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + length])
    edit(header)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length :]
