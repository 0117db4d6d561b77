"""Copying content from one store to another, e.g. from an IPFS daemon into the embedded store.

The source verifies every block as it reads; the target then derives the CID again from the
bytes it receives. Content added with flare-node's importer settings arrives under the same
CID, so a copy is checked twice. Content chunked differently (another chunker, no raw leaves)
would get another CID here, and is refused rather than stored under a name nobody asked for.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import BinaryIO, cast

from flare.protocol.cid import Cid, StorageIntegrityError
from flare.protocol.store import BlobStore, Progress

__all__ = ["transfer"]


def transfer(
    cid: str,
    source: BlobStore,
    target: BlobStore,
    *,
    pin: bool = True,
    progress: Progress | None = None,
) -> str:
    """Copy `cid` from `source` into `target` and return its CID (the same one)."""
    expected = Cid.parse(cid).text
    # Closed on every exit: a target that fails mid-copy must not leave the source's
    # read-ahead threads fetching until the generator happens to be collected.
    with contextlib.closing(source.get_stream(expected, progress=progress)) as pieces:
        copied = target.put_stream(cast(BinaryIO, _PieceReader(pieces)), pin=pin)
    if copied != expected:
        target.unpin(copied)
        raise StorageIntegrityError(
            expected,
            f"its bytes re-added to {target.location} are named {copied}",
            hint="it was not imported with raw leaves and 256 KiB chunks; "
            "fetch it with an IPFS client instead",
        )
    return copied


class _PieceReader(io.RawIOBase):
    """A read-only stream over an iterator of byte pieces."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._current = memoryview(piece)
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size
