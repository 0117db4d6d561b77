"""The BlobStore port: how the node puts and gets update bundles and global models by CID.

Two implementations live in `flare.node.store`: the embedded block store (a directory, no
daemon) and an IPFS daemon over its RPC API. Both name content exactly as
`ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` does, so a CID registered on-chain
by one node resolves to the same bytes on every other, whichever backend each runs. CIDs cross
this interface as base32 text (`bafy...`/`bafk...`); `flare.protocol.cid.decode_cid` gives the
binary form the contract stores.

Every read is verified block by block against its CID before a byte is handed out; a mismatch
raises `StorageIntegrityError` naming the CID. A store never hands out or keeps half-written data.
Content the store holds but cannot read back whole (a damaged disk, a pack cut short or deleted)
raises `StoreCorruptionError`, never `BlockNotFoundError`: "not there" would send the operator
looking for content that the store has lost. `VerifyReport` is what a scrub of the pins found.
Reads of peer content take `max_bytes`: a file whose verified root declares more is refused with
`ContentTooLargeError` before any other block is read, so a peer cannot make a node buffer an
arbitrarily large file.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from flare.protocol.cid import StorageIntegrityError
from flare.protocol.errors import FlareError, IntegrityError, UnavailableError
from flare.protocol.unixfs import ContentTooLargeError

__all__ = [
    "REPAIR_HINT",
    "BlobStore",
    "BlockNotFoundError",
    "ContentTooLargeError",
    "DamagedBlock",
    "DamagedPack",
    "DamagedPin",
    "GcReport",
    "Progress",
    "StorageFullError",
    "StorageIntegrityError",
    "StoreCorruptionError",
    "StoreDamagedError",
    "StoreIOError",
    "StoreUnavailableError",
    "VerifyReport",
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


REPAIR_HINT = (
    "add the file again (`flare-node store add FILE`), or fetch it from a peer or daemon that "
    "has it (`flare-node store get CID --store ipfs://HOST:PORT -o FILE`) and add that"
)
"""How to store damaged content anew; what a corrupt read and `store verify` tell the operator."""


class StoreCorruptionError(StorageIntegrityError):
    """Stored content cannot be read back whole: a block's bytes are damaged or lost.

    `cid` (as for every `StorageIntegrityError`) and `block` name the block, `root` the file it
    belongs to, `packs` the files on disk known to have held it (the message also names those
    that may have). `lost` is True when the store already held no usable copy, False when this
    very read found the bytes bad (`has` answers False for the one, raises the other).
    """

    def __init__(
        self,
        block: str,
        root: str,
        location: str,
        problem: str,
        *,
        packs: tuple[str, ...] = (),
        lost: bool = False,
    ) -> None:
        what = root if block == root else f"block {block} of {root}"
        # Worded here rather than by StorageIntegrityError: the store, not the bytes a peer
        # sent, is what failed, and the hint is how to store the block anew.
        IntegrityError.__init__(
            self,
            f"{what} is corrupt in the store at {location}: {problem}",
            hint=f"{REPAIR_HINT}; `flare-node store verify` lists all damage",
        )
        self.cid = block
        self.reason = problem
        self.block = block
        self.root = root
        self.location = location
        self.packs = packs
        self.lost = lost


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a garbage collection removed; `freed_bytes` is None where the backend cannot tell."""

    removed_blocks: int
    freed_bytes: int | None


@dataclass(frozen=True, slots=True)
class DamagedBlock:
    """One block of pinned content that cannot be read back: its CID, what is wrong, and the
    pack file that held it (None when no pack is known to have)."""

    cid: str
    problem: str
    pack: str | None = None


@dataclass(frozen=True, slots=True)
class DamagedPin:
    """A pin whose content cannot be read back whole, and the blocks at fault."""

    cid: str
    blocks: tuple[DamagedBlock, ...]


@dataclass(frozen=True, slots=True)
class DamagedPack:
    """A pack file found damaged, and the pins that lack a block it held or may have held."""

    path: str
    problem: str
    pins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a scrub read (every block of every pin), and what it found damaged.

    `blocks_checked` is None where the backend reads whole files and cannot count blocks.
    """

    location: str
    pins_checked: int
    blocks_checked: int | None
    bytes_checked: int
    damaged_pins: tuple[DamagedPin, ...] = ()
    damaged_packs: tuple[DamagedPack, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.damaged_pins and not self.damaged_packs


_LISTED = 5  # damaged pins (and blocks of each) an error names; `store verify` lists them all


def _some(items: Iterable[str]) -> str:
    """The first few `items`, and how many more there are."""
    listed = list(items)
    more = f", and {len(listed) - _LISTED} more" if len(listed) > _LISTED else ""
    return ", ".join(listed[:_LISTED]) + more


class StoreDamagedError(IntegrityError):
    """gc collected what it could prove dead, but pinned content is damaged.

    Raised after the collection, so that a caller learns of the damage; `report` says what was
    collected, `damaged` which pins lack which blocks, `kept` the pack files left in place.
    """

    def __init__(
        self,
        location: str,
        report: GcReport,
        damaged: tuple[DamagedPin, ...],
        kept: tuple[str, ...] = (),
        *,
        unknown: tuple[str, ...] = (),
    ) -> None:
        freed = "" if report.freed_bytes is None else f" ({report.freed_bytes} bytes freed)"
        pins = "; ".join(
            f"{pin.cid} ("
            + _some(f"block {block.cid}: {block.problem}" for block in pin.blocks)
            + ")"
            for pin in damaged[:_LISTED]
        )
        if len(damaged) > _LISTED:
            pins += f"; and {len(damaged) - _LISTED} more"
        message = (
            f"collected {report.removed_blocks} block(s) no pin needs{freed}, but "
            f"{len(damaged)} pinned file(s) in the store at {location} are damaged: {pins}"
        )
        if kept:
            message += (
                f"; the damaged pack(s) {', '.join(kept)} were left as they are: they held "
                "what is lost, or may have"
            )
        if unknown:
            message += (
                "; blocks no pin reaches were kept too: without the lost inner node(s) "
                f"{', '.join(unknown)} nobody can tell which blocks lie under them"
            )
        super().__init__(
            message,
            hint="add those files again (`flare-node store add FILE`) or fetch them from a peer "
            "or daemon, or unpin them if they are not needed, then run `flare-node store gc` "
            "again; `flare-node store verify` reads every pinned block",
        )
        self.location = location
        self.report = report
        self.damaged = damaged
        self.kept = kept
        self.unknown = unknown


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
