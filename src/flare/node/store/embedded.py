"""The embedded block store: IPFS-identical CIDs in a plain directory, no daemon.

Layout under the store directory (by default `<node home>/store`):

    blocks/<2 hex>/<sha2-256 hex>  one file per block, exactly its bytes (keyed by multihash,
                                   as Kubo's flatfs does: the same bytes are one block)
    pins/<cid>                     one empty file per recursive pin; survives restarts
                                   (written atomically: `.<cid>.<hex>.tmp` until complete)
    tmp/                           blocks being written; renamed into blocks/ when complete
    corrupt/                       blocks that failed verification on read, for inspection
    lock                           flock: adds and pins share it, gc takes it alone

A block becomes visible by `rename` once fully written, so a crash or a full disk never leaves
a partial block under a CID. Every read re-hashes. Blocks are not fsynced one by one by default
(that costs ~20x on a 256 KiB block); after a power loss a torn block fails verification on its
next read and is moved to corrupt/, after which adding the file again rewrites it. (An add does
not re-read blocks already there: it keeps any block file of the right size.) `fsync=True` syncs
every block and directory, as Kubo's flatfs does. Pins are always synced.
Several processes, and several threads of one, may share a store (see `lock.StoreLock`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import BinaryIO

from flare.node.atomic import fsync_directory, write_file_atomically
from flare.node.store.files import entries, io_error, remove_file
from flare.node.store.lock import StoreLock
from flare.node.store.pipeline import ImportIO, stream_file
from flare.protocol.cid import CODEC_DAG_PB, Cid, StorageIntegrityError, verify_block
from flare.protocol.dagpb import block_links
from flare.protocol.store import BlockNotFoundError, GcReport, Progress
from flare.protocol.unixfs import Block, FileHasher, file_size

__all__ = ["EmbeddedStore"]

_QUEUE_BLOCKS = 16  # chunk buffers, read or hashed but not yet written: 4 MiB


class EmbeddedStore:
    """A `BlobStore` in a directory; safe to share between processes on one machine."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = Path(root).expanduser()
        self._fsync = fsync
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        self._corrupt = self.root / "corrupt"
        # Plain strings on the per-block paths: pathlib would cost more than a 256 KiB read.
        self._blocks_name = str(self._blocks)
        self._tmp_name = str(self._tmp)
        self._shards: set[str] = set()
        # Temporary names unique across processes and store objects, cheaper than a uuid per block.
        self._writer_tag = f"{os.getpid()}-{id(self):x}-{uuid.uuid4().hex[:8]}"
        self._serial = itertools.count()
        try:
            for directory in (self._blocks, self._pins, self._tmp, self._corrupt):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise io_error(error, str(self.root), "create the store directories") from error
        self._lock = StoreLock(str(self.root / "lock"), str(self.root))

    @property
    def location(self) -> str:
        return str(self.root)

    def block_path(self, cid: Cid) -> Path:
        """Where the block named `cid` lives (whether or not it is there)."""
        return Path(self._block_name(cid))

    # ------------------------------------------------------------------ writing

    def put(self, data: bytes, *, pin: bool = True) -> str:
        return self.put_stream(io.BytesIO(data), pin=pin)

    def put_stream(
        self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None
    ) -> str:
        # The shared lock spans the blocks and the pin: gc cannot run between them.
        with self._lock.held(exclusive=False):
            with ImportIO(stream, self.write_block, depth=_QUEUE_BLOCKS) as spool:
                hasher = FileHasher(spool.submit, copy_chunks=False)
                for chunk in spool.chunks():
                    hasher.update(chunk)
                    if progress is not None:
                        progress(len(chunk))
                root = hasher.finish()
            if pin:
                self._write_pin(root)
        return root.text

    def write_block(self, block: Block) -> None:
        """Store one block unless an intact-looking copy (same size) is already there."""
        path = self._block_name(block.cid)
        try:
            if os.stat(path).st_size == len(block.data):
                return
        except FileNotFoundError:
            pass
        except OSError as error:
            raise io_error(error, self.location, f"inspect block {block.cid}") from error
        shard = os.path.dirname(path)
        serial = next(self._serial)
        temporary = f"{self._tmp_name}/{block.cid.digest.hex()}.{self._writer_tag}.{serial}.part"
        try:
            if shard not in self._shards:
                os.makedirs(shard, exist_ok=True)
                self._shards.add(shard)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC)
            try:
                view = memoryview(block.data)
                while view:
                    view = view[os.write(descriptor, view) :]
                if self._fsync:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, path)
            if self._fsync:
                fsync_directory(shard)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise io_error(error, self.location, f"write block {block.cid}") from error

    # ------------------------------------------------------------------ reading

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        return b"".join(self.get_stream(cid, max_bytes=max_bytes))

    def get_stream(
        self, cid: str, *, progress: Progress | None = None, max_bytes: int | None = None
    ) -> Generator[bytes, None, None]:
        return self._stream(Cid.parse(cid), progress, max_bytes)

    def _stream(
        self, root: Cid, progress: Progress | None, max_bytes: int | None
    ) -> Generator[bytes, None, None]:
        try:
            yield from stream_file(
                root, lambda block: self._read(root, block), progress=progress, max_bytes=max_bytes
            )
        except StorageIntegrityError as error:
            self._quarantine(Cid.parse(error.cid))
            raise

    def size(self, cid: str) -> int:
        root = Cid.parse(cid)
        return file_size(root, self._read(root, root))

    def has(self, cid: str) -> bool:
        root = Cid.parse(cid)
        try:
            self._reachable(root)
        except BlockNotFoundError:
            return False
        return True

    def _read(self, root: Cid, cid: Cid) -> bytes:
        try:
            descriptor = os.open(self._block_name(cid), os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(descriptor).st_size
                data = os.read(descriptor, size)
                while len(data) < size and (more := os.read(descriptor, size - len(data))):
                    data += more
                return data
            finally:
                os.close(descriptor)
        except FileNotFoundError:
            raise BlockNotFoundError(root.text, self.location, block=cid.text) from None
        except OSError as error:
            raise io_error(error, self.location, f"read block {cid}") from error

    def _reachable(self, root: Cid) -> set[str]:
        """File names of every block of `root`'s DAG; inner nodes are read and verified."""
        seen: set[str] = set()
        todo = [root]
        while todo:
            cid = todo.pop()
            name = cid.digest.hex()
            if name in seen:
                continue
            if cid.codec == CODEC_DAG_PB:
                data = self._read(root, cid)
                try:
                    verify_block(cid, data)
                except StorageIntegrityError:
                    self._quarantine(cid)
                    raise
                todo.extend(block_links(cid, data))
            elif not os.path.exists(self._block_name(cid)):
                raise BlockNotFoundError(root.text, self.location, block=cid.text)
            seen.add(name)
        return seen

    def _quarantine(self, cid: Cid) -> None:
        """Move a block that fails its hash out of blocks/, so adding the file again repairs it."""
        path = self._block_name(cid)
        try:
            verify_block(cid, Path(path).read_bytes())
        except StorageIntegrityError:
            with contextlib.suppress(OSError):
                os.replace(path, self._corrupt / f"{cid.text}.{uuid.uuid4().hex}")
        except OSError:
            return

    # ------------------------------------------------------------------ pins and gc

    def pin(self, cid: str) -> None:
        root = Cid.parse(cid)
        with self._lock.held(exclusive=False):
            self._reachable(root)
            self._write_pin(root)

    def unpin(self, cid: str) -> bool:
        root = Cid.parse(cid)
        with self._lock.held(exclusive=False):
            try:
                (self._pins / root.text).unlink()
            except FileNotFoundError:
                return False
            fsync_directory(self._pins)
        return True

    def pins(self) -> list[str]:
        try:
            names = os.listdir(self._pins)
        except OSError as error:
            raise io_error(error, self.location, "list the pins") from error
        return sorted(name for name in names if name.startswith("b"))

    def gc(self) -> GcReport:
        """Delete blocks no pin reaches, leftovers of interrupted writes and quarantined blocks.

        Refuses (BlockNotFoundError) while some pinned content is incomplete, rather than
        guess which blocks the missing nodes would have kept. Readers take no lock, so a file
        may vanish under gc (a reader moved a corrupt block aside): it is skipped. Anything in
        blocks/ that is not a shard directory of files is not the store's, and is left alone.
        """
        removed = freed = 0
        with self._lock.held(exclusive=True):
            live: set[str] = set()
            for text in self.pins():
                live |= self._reachable(Cid.parse(text))
            try:
                for shard in entries(self._blocks_name, directories=True):
                    for entry in entries(shard.path, directories=False):
                        if entry.name not in live and (size := remove_file(entry)) is not None:
                            freed += size
                            removed += 1
                for directory in (self._tmp_name, str(self._corrupt)):
                    for entry in entries(directory, directories=False):
                        freed += remove_file(entry) or 0
                for entry in entries(str(self._pins), directories=False):
                    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                        remove_file(entry)  # a pin write cut short (pins are written beside them)
            except OSError as error:
                raise io_error(error, self.location, "collect garbage") from error
        return GcReport(removed_blocks=removed, freed_bytes=freed)

    def close(self) -> None:
        """Nothing to release: locks are held only for the duration of each call."""

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _block_name(self, cid: Cid) -> str:
        digest = cid.digest.hex()
        return f"{self._blocks_name}/{digest[:2]}/{digest}"

    def _write_pin(self, root: Cid) -> None:
        """An empty marker file, synced with its directory: a pin must survive a power cut."""
        try:
            write_file_atomically(self._pins / root.text, b"", fsync=True)
        except OSError as error:
            raise io_error(error, self.location, f"pin {root}") from error
