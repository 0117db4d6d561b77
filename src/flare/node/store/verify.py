"""Scrubbing a store: read back every pinned file and report what is damaged.

A store's damage otherwise shows only when a round needs the content, when the file it came
from may be long gone; a scrub finds it while it can still be repaired. The embedded store
knows its packs, so it reports every damaged block of every pin and every damaged pack file
(`EmbeddedStore.verify`). Any other `BlobStore` is scrubbed through the port: each pinned file
is read whole, every block verified by the store as it reads, and a file that fails is reported
with the first block at fault. For an IPFS daemon that reads the daemon's blockstore and, for a
block it lacks, its peers; `ipfs repo verify` checks the daemon's own blockstore alone.
"""

from __future__ import annotations

from flare.node.store.embedded import EmbeddedStore
from flare.protocol.store import (
    BlobStore,
    BlockNotFoundError,
    DamagedBlock,
    DamagedPin,
    Progress,
    StorageIntegrityError,
    VerifyReport,
)

__all__ = ["pinned_bytes", "verify"]


def pinned_bytes(store: BlobStore) -> int:
    """The size of every pinned file together (a damaged root counts 0): a progress total."""
    total = 0
    for cid in store.pins():
        try:
            total += store.size(cid)
        except (StorageIntegrityError, BlockNotFoundError):
            continue  # the scrub itself reports it
    return total


def verify(store: BlobStore, *, progress: Progress | None = None) -> VerifyReport:
    """Read back every pinned file of `store` and report the damaged ones.

    An unreachable store raises (an `UnavailableError`): nothing could be checked.
    """
    if isinstance(store, EmbeddedStore):
        return store.verify(progress=progress)
    pins = store.pins()
    damaged: list[DamagedPin] = []
    checked = 0
    for cid in pins:
        try:
            for piece in store.get_stream(cid, progress=progress):
                checked += len(piece)
        except BlockNotFoundError as error:
            damaged.append(DamagedPin(cid, (DamagedBlock(error.block, error.message),)))
        except StorageIntegrityError as error:
            damaged.append(DamagedPin(cid, (DamagedBlock(error.cid, error.reason),)))
    return VerifyReport(
        location=store.location,
        pins_checked=len(pins),
        blocks_checked=None,
        bytes_checked=checked,
        damaged_pins=tuple(damaged),
    )
