"""The BlobStore port: how the node puts and gets update bundles and global models by CID.

Two implementations live in `flare.node.store`: the embedded block store (a directory, no
daemon) and an IPFS daemon over its RPC API. Both name content exactly as
`ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` does, so a CID registered on-chain
by one node resolves to the same bytes on every other, whichever backend each runs. CIDs cross
this interface as base32 text (`bafy...`/`bafk...`); `flare.protocol.cid.decode_cid` gives the
binary form the contract stores.

Every read is verified block by block against its CID before a byte is handed out; a mismatch
raises `StorageIntegrityError` naming the CID. A store never hands out or keeps half-written data.
Reads of peer content take `max_bytes`: a file whose verified root declares more is refused with
`ContentTooLargeError` before any other block is read, so a peer cannot make a node buffer an
arbitrarily large file.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from flare.protocol.cid import StorageIntegrityError
from flare.protocol.errors import FlareError, UnavailableError
from flare.protocol.unixfs import ContentTooLargeError

__all__ = [
    "BlobStore",
    "BlockNotFoundError",
    "ContentTooLargeError",
    "GcReport",
    "Progress",
    "StorageFullError",
    "StorageIntegrityError",
    "StoreIOError",
    "StoreUnavailableError",
]

Progress = Callable[[int], None]
"""Called with the number of bytes just processed; drives progress bars."""


class BlockNotFoundError(FlareError, LookupError):
    """The store does not have (and could not fetch) a block of the requested content."""

    def __init__(self, cid: str, location: str, *, block: str | None = None) -> None:
        what = cid if block is None or block == cid else f"block {block} of {cid}"
        super().__init__(
            f"{what} is not in the store at {location}",
            hint="add the content first (`flare-node store add`), or fetch it from a peer",
        )
        self.cid = cid
        self.block = block or cid
        self.location = location


class StoreIOError(FlareError, OSError):
    """The store's files could not be read or written (permissions, a vanished directory)."""


class StorageFullError(StoreIOError):
    """The disk holding the store is full; whatever was being written has been removed."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(
            f"no space left on the device holding {location} ({detail}); nothing was kept",
            hint="free disk space, or run `flare-node store gc` to drop unpinned content",
        )
        self.location = location


class StoreUnavailableError(UnavailableError):
    """The IPFS daemon did not answer after the configured retries."""

    def __init__(self, address: str, attempts: int, detail: str) -> None:
        super().__init__(
            f"the IPFS daemon at {address} did not answer after {attempts} attempt(s): {detail}",
            hint="start it (`ipfs daemon`) or point --store at a running one (ipfs://HOST:PORT)",
        )
        self.address = address
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a garbage collection removed; `freed_bytes` is None where the backend cannot tell."""

    removed_blocks: int
    freed_bytes: int | None


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage of whole files, addressed by base32 CIDv1 text."""

    @property
    def location(self) -> str:
        """Where the content lives (a directory or a daemon address), for messages."""
        ...

    def put(self, data: bytes, *, pin: bool = True) -> str:
        """Store `data` and return its CID."""
        ...

    def put_stream(
        self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None
    ) -> str:
        """Store everything `stream` yields (memory bounded) and return its CID."""
        ...

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The whole verified content of `cid`; `ContentTooLargeError` if over `max_bytes`."""
        ...

    def get_stream(
        self, cid: str, *, progress: Progress | None = None, max_bytes: int | None = None
    ) -> Generator[bytes, None, None]:
        """The verified content of `cid` in order, one block at a time.

        Over `max_bytes`, the first `next()` raises `ContentTooLargeError`. Close the generator
        (`contextlib.closing`) when abandoning it early, so the backend's read-ahead stops now
        rather than whenever the generator is collected.
        """
        ...

    def size(self, cid: str) -> int:
        """The content's size in bytes, read from its (verified) root block."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the store can serve `cid` now without fetching from peers."""
        ...

    def pin(self, cid: str) -> None:
        """Keep `cid` and all its blocks through garbage collection."""
        ...

    def unpin(self, cid: str) -> bool:
        """Let gc remove `cid`; False when it was not pinned."""
        ...

    def pins(self) -> list[str]:
        """CIDs pinned (recursively), sorted."""
        ...

    def gc(self) -> GcReport:
        """Remove every block that no pin reaches."""
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...
