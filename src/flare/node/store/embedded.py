"""The embedded block store: IPFS-identical CIDs in a plain directory, no daemon.

Layout under the store directory (by default `<node home>/store`):

    packs/<name>.pack   blocks appended one after another, with an index at the end
                        (`flare.node.store.packs`); keyed by sha2-256 digest, as Kubo's
                        flatfs keys blocks by multihash: the same bytes are one block
    pins/<cid>          one empty file per recursive pin; survives restarts
                        (written atomically: `.<cid>.<hex>.tmp` until complete)
    tmp/                packs being written; renamed into packs/ when complete
    bad                 `pack offset` of each stored block found corrupt on read
    lock                flock: adds and pins share it, gc takes it alone

A put appends its new blocks to a pack in tmp/ and renames it into packs/ once every block
and the index are written (every 256 MiB for large files), so nothing ever leaves a partial
block under a CID: a put that fails removes its `.part` file, a killed one leaves it for gc.
Every read re-hashes.
Packs are not fsynced by default; after a power loss a torn block fails verification on its
next read, its location is listed in `bad`, and adding the file again writes it anew. (An add
does not re-read blocks already there: a block counts as present until a read finds it bad.)
`fsync=True` syncs every pack and its directory before it becomes visible. Pins are always
synced. Several processes, and several threads of one, may share a store (see `lock.StoreLock`);
readers take no lock, and re-read the pack listing when gc has moved a block under them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Generator
from pathlib import Path
from typing import BinaryIO

from flare.node.atomic import fsync_directory, write_file_atomically
from flare.node.store.files import entries, io_error, remove_file, remove_path
from flare.node.store.lock import StoreLock
from flare.node.store.packs import (
    SEGMENT_BYTES,
    Entry,
    Location,
    PackIndex,
    PackWriter,
    read_block,
)
from flare.node.store.pipeline import FileReads, ImportIO, stream_file
from flare.protocol.cid import CODEC_DAG_PB, Cid, StorageIntegrityError, verify_block
from flare.protocol.dagpb import block_links
from flare.protocol.errors import FlareError
from flare.protocol.store import BlockNotFoundError, GcReport, Progress
from flare.protocol.unixfs import Block, FileHasher

__all__ = ["EmbeddedStore"]

_QUEUE_BLOCKS = 16  # chunk buffers, read or hashed but not yet written: 4 MiB


class EmbeddedStore(FileReads):
    """A `BlobStore` in a directory; safe to share between processes on one machine."""

    def __init__(
        self, root: Path, *, fsync: bool = False, segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        self.root = Path(root).expanduser()
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._pins = self.root / "pins"
        self._tmp_name = str(self.root / "tmp")
        try:
            for directory in (self.root / "packs", self._pins, self.root / "tmp"):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise io_error(error, str(self.root), "create the store directories") from error
        self._index = PackIndex(str(self.root / "packs"), str(self.root / "bad"))
        self._lock = StoreLock(str(self.root / "lock"), str(self.root))

    @property
    def location(self) -> str:
        return str(self.root)

    def locate(self, cid: Cid) -> tuple[Path, int, int] | None:
        """Where the bytes of block `cid` are stored: (pack file, offset, length), or None."""
        found = self._find(cid)
        if found is None:
            return None
        return Path(self._index.path(found.pack)), found.offset, found.length

    # ------------------------------------------------------------------ writing

    def put(self, data: bytes, *, pin: bool = True) -> str:
        return self.put_stream(io.BytesIO(data), pin=pin)

    def put_stream(
        self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None
    ) -> str:
        # The shared lock spans the blocks and the pin: gc cannot run between them.
        with self._lock.held(exclusive=False):
            self._refresh()  # blocks other processes stored meanwhile are not written again
            appender = _Appender(self)
            try:
                with ImportIO(stream, appender.write, depth=_QUEUE_BLOCKS) as spool:
                    hasher = FileHasher(spool.submit, copy_chunks=False)
                    for chunk in spool.chunks():
                        hasher.update(chunk)
                        if progress is not None:
                            progress(len(chunk))
                    root = hasher.finish()
                appender.commit()
            except BaseException:
                appender.abort()
                raise
            if pin:
                self._write_pin(root)
        return root.text

    # ------------------------------------------------------------------ reading

    def _stream(
        self, root: Cid, progress: Progress | None, max_bytes: int | None
    ) -> Generator[bytes, None, None]:
        try:
            yield from stream_file(
                root, lambda block: self._fetch(root, block), progress=progress, max_bytes=max_bytes
            )
        except StorageIntegrityError as error:
            self._quarantine(Cid.parse(error.cid))
            raise

    def has(self, cid: str) -> bool:
        root = Cid.parse(cid)
        self._refresh()  # another process's gc may have removed blocks this store knew of
        try:
            self._reachable(root)
        except BlockNotFoundError:
            return False
        return True

    def _fetch(self, root: Cid, cid: Cid) -> bytes:
        """The stored bytes of block `cid` of `root`'s file, unverified (the walk verifies)."""
        for attempt in range(2):
            found = self._find(cid)
            if found is None:
                break
            try:
                return read_block(self._index.path(found.pack), found.offset, found.length)
            except FileNotFoundError:
                if attempt == 0:  # a gc rewrote the pack since this store looked: look again
                    self._refresh()
            except OSError as error:
                raise io_error(error, self.location, f"read block {cid}") from error
        raise BlockNotFoundError(root.text, self.location, block=cid.text)

    def _find(self, cid: Cid) -> Location | None:
        """The block's location, looking at the packs on disk again if it is not known yet."""
        found = self._index.lookup(cid.digest)
        if found is None:
            self._refresh()
            found = self._index.lookup(cid.digest)
        return found

    def _reachable(self, root: Cid) -> set[bytes]:
        """Digests of every block of `root`'s DAG; inner nodes are read and verified."""
        seen: set[bytes] = set()
        todo = [root]
        while todo:
            cid = todo.pop()
            if cid.digest in seen:
                continue
            if cid.codec == CODEC_DAG_PB:
                data = self._fetch(root, cid)
                try:
                    verify_block(cid, data)
                except StorageIntegrityError:
                    self._quarantine(cid)
                    raise
                todo.extend(block_links(cid, data))
            elif self._find(cid) is None:
                raise BlockNotFoundError(root.text, self.location, block=cid.text)
            seen.add(cid.digest)
        return seen

    def _quarantine(self, cid: Cid) -> None:
        """Stop using a stored block that fails its hash, so that adding the file rewrites it.

        A block cut short means its pack was torn: the pack's index is read again, which
        keeps its whole records only. Other bad bytes are listed in `bad`. Takes no lock,
        like every read: a gc running meanwhile may drop the line, which costs nothing but
        finding the block bad again on its next read.
        """
        found = self._index.lookup(cid.digest)
        if found is None:
            return
        path = self._index.path(found.pack)
        try:
            data = read_block(path, found.offset, found.length)
            if len(data) < found.length:
                self._index.reload(found.pack)
                return
            verify_block(cid, data)
        except StorageIntegrityError:
            with contextlib.suppress(OSError):
                self._index.mark_bad(found)
        except OSError:
            return

    # ------------------------------------------------------------------ pins and gc

    def pin(self, cid: str) -> None:
        root = Cid.parse(cid)
        with self._lock.held(exclusive=False):
            self._refresh()  # no gc runs under this lock: what it finds is what stays
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
        """Delete blocks no pin reaches, leftovers of interrupted writes and bad copies.

        Packs with nothing live go first, so that a gc on a full disk frees space before it
        needs any. The live blocks of packs that also hold dead ones are then copied into new
        packs, each hashed again on the way (a copy that fails is dropped); an old pack is
        deleted once the new packs holding its blocks are synced to disk, so that even a power
        cut leaves two copies, never none (and the next gc drops the newer). Where a block is
        stored twice, the copy in use is verified before the others are dropped. A read error
        stops gc before anything unread is deleted. Refuses (BlockNotFoundError) while some
        pinned content is incomplete, rather than guess which blocks the missing nodes would
        have kept. Files in packs/ that are not the store's packs are left alone.
        """
        removed = freed = 0
        with self._lock.held(exclusive=True):
            try:
                self._refresh()
                self._check_duplicates()
                live: set[bytes] = set()
                for text in self.pins():
                    live |= self._reachable(Cid.parse(text))
                where = self._index.where()
                partial: list[tuple[str, list[Entry], int]] = []
                for pack, held in self._index.packs().items():
                    keep = [
                        entry
                        for entry in held
                        if entry.digest in live
                        and where.get(entry.digest) == Location(pack, *entry[1:])
                    ]
                    if not keep:
                        removed += len(held)
                        freed += self._delete_pack(pack)
                    elif len(keep) < len(held):
                        partial.append((pack, keep, len(held)))
                for entry in entries(self._tmp_name, directories=False):
                    freed += remove_file(entry) or 0
                removed_copying, freed_copying = self._compact(partial)
                removed += removed_copying
                freed += freed_copying
                for entry in entries(str(self._pins), directories=False):
                    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                        remove_file(entry)  # a pin write cut short (pins are written beside them)
                self._index.prune_bad()
            except FlareError:
                raise  # content incomplete, a full disk: already worded for the user
            except OSError as error:
                raise io_error(error, self.location, "collect garbage") from error
        return GcReport(removed_blocks=removed, freed_bytes=freed)

    def _compact(self, partial: list[tuple[str, list[Entry], int]]) -> tuple[int, int]:
        """Copy the blocks to keep out of `partial` packs and delete those; (removed, freed).

        Each old pack is deleted as soon as every block copied out of it sits in a committed
        (synced) new pack; `freed` is what the old packs took less what the new ones take.
        """
        removed = freed = 0
        into = _Appender(self, dedupe=False, fsync=True)
        waiting: list[tuple[str, int]] = []  # an old pack, the new pack its last block went to
        try:
            for pack, keep, count in partial:
                copied = self._copy(pack, keep, into)
                removed += count - copied
                waiting.append((pack, into.last_segment if copied else -1))
                while waiting and waiting[0][1] < into.segments:
                    freed += self._delete_pack(waiting.pop(0)[0])
            into.commit()
        except BaseException:
            into.abort()
            raise
        for pack, _ in waiting:
            freed += self._delete_pack(pack)
        return removed, freed - into.bytes_committed

    def _check_duplicates(self) -> None:
        """Verify the copy in use of each block stored twice; a bad one gives way to the next."""
        for digest, _ in self._index.duplicated():
            while (location := self._index.lookup(digest)) is not None:
                if self._intact(location.pack, digest, *location[1:]) is not None:
                    break
                self._index.mark_bad(location)  # held in memory even if the file is not written

    def _copy(self, pack: str, keep: list[Entry], into: _Appender) -> int:
        """Append the intact blocks among `keep` to `into`; how many were intact."""
        copied = 0
        for entry in keep:
            data = self._intact(pack, *entry)
            if data is not None:
                into.append(entry.digest, data)
                copied += 1
        return copied

    def _intact(self, pack: str, digest: bytes, offset: int, length: int) -> bytes | None:
        """The block's bytes at that place in `pack` if they hash to `digest`, else None."""
        data = read_block(self._index.path(pack), offset, length)
        return data if hashlib.sha256(data).digest() == digest else None

    def _delete_pack(self, pack: str) -> int:
        """Remove a pack; its size, or 0 if it was already gone."""
        size = remove_path(self._index.path(pack)) or 0
        self._index.forget(pack)
        return size

    def close(self) -> None:
        """Nothing to release: locks are held only for the duration of each call."""

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _refresh(self) -> None:
        try:
            self._index.refresh()
        except OSError as error:
            raise io_error(error, self.location, "list the packs") from error

    def _write_pin(self, root: Cid) -> None:
        """An empty marker file, synced with its directory: a pin must survive a power cut."""
        try:
            write_file_atomically(self._pins / root.text, b"", fsync=True)
        except OSError as error:
            raise io_error(error, self.location, f"pin {root}") from error


class _Appender:
    """The new blocks of one put (or gc's copies), appended to packs of up to a segment each.

    A put calls `write` on the import's I/O thread; blocks the store already has, or that this
    put has just written, are skipped. Full segments are committed as they fill, the last one
    by `commit`; `abort` removes the one being written.
    """

    def __init__(
        self, store: EmbeddedStore, *, dedupe: bool = True, fsync: bool | None = None
    ) -> None:
        self._store = store
        self._dedupe = dedupe
        self._fsync = store._fsync if fsync is None else fsync
        self._writer: PackWriter | None = None
        self._written: set[bytes] = set()
        self.bytes_committed = 0
        self.segments = 0  # packs committed so far
        self.last_segment = -1  # the number the pack holding the last block appended will have

    def write(self, block: Block) -> None:
        digest = block.cid.digest
        if self._dedupe and (
            digest in self._written or self._store._index.lookup(digest) is not None
        ):
            return
        try:
            self.append(digest, block.data)
        except FlareError:
            raise  # a full disk met while committing a segment, already worded
        except OSError as error:
            raise io_error(error, self._store.location, f"write block {block.cid}") from error

    def append(self, digest: bytes, data: bytes | memoryview) -> None:
        store = self._store
        if self._writer is None:
            self._writer = PackWriter(store._tmp_name, store._index.directory, fsync=self._fsync)
        self._writer.append(digest, data)
        self.last_segment = self.segments
        self._written.add(digest)
        if self._writer.size >= store._segment_bytes:
            self.commit()

    def commit(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            held = writer.commit()
        except BaseException as error:
            writer.abort()
            if isinstance(error, OSError):
                raise io_error(error, self._store.location, "store a pack of blocks") from error
            raise
        self.bytes_committed += writer.size
        self.segments += 1
        self._store._index.add(writer.name, held)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
