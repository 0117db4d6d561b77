"""Atomic writes of the chain layer's files (deployment records, the contract artifact).

The chain layer may not import the node's `atomic` module, and its files are small, written
once per deploy or compile: a sibling temporary file and a rename are all they need.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a reader sees the old file or the new one, never half.

    Raises the underlying `OSError`, after removing the temporary file; callers name the file.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
