"""The embedded block store: IPFS-identical CIDs in a plain directory, no daemon.

Layout under the store directory (by default `<node home>/store`):

    packs/<name>.pack   blocks appended one after another, with an index at the end
                        (`flare.node.store.packs`); keyed by sha2-256 digest, as Kubo's
                        flatfs keys blocks by multihash: the same bytes are one block
    pins/<cid>          one empty file per recursive pin; survives restarts
                        (written atomically: `.<cid>.<hex>.tmp` until complete)
    tmp/                packs being written; renamed into packs/ when complete
    bad                 `pack offset` of each stored block found corrupt on read
    lock                flock: adds, pins and verify share it, gc takes it alone

A put appends its new blocks to a pack in tmp/ and renames it into packs/ once every block
and the index are written (every 256 MiB for large files), so nothing ever leaves a partial
block under a CID: a put that fails removes its `.part` file, a killed one leaves it for gc.
Every read re-hashes.
Packs are not fsynced by default; after a power loss a torn block fails verification on its
next read, its location is listed in `bad`, and adding the file again writes it anew. (An add
does not re-read blocks already there: a block counts as present until a read finds it bad.)
Damage is reported as damage: a block the store held and can no longer serve (its bytes fail
their hash, its pack is cut short or overwritten, a pinned block has vanished) raises
`StoreCorruptionError` naming the block, its file and the pack, never "not in the store".
`verify` reads every pinned block and reports what is damaged; gc collects what it can prove
dead and keeps what damaged content may still need.
`fsync=True` syncs every pack and its directory before it becomes visible. Pins are always
synced. Several processes, and several threads of one, may share a store (see `lock.StoreLock`);
readers take no lock, and re-read the pack listing when gc has moved a block under them.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Generator
from pathlib import Path
from typing import BinaryIO

from flare.node.atomic import fsync_directory, write_file_atomically
from flare.node.store.damage import (
    Survey,
    damaged_packs,
    diagnose,
    kept_for_repair,
    missing_error,
    walk,
)
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
from flare.protocol.cid import CODEC_DAG_PB, Cid, StorageIntegrityError
from flare.protocol.dagpb import block_links
from flare.protocol.errors import FlareError
from flare.protocol.store import (
    BlockNotFoundError,
    GcReport,
    Progress,
    StoreCorruptionError,
    StoreDamagedError,
    VerifyReport,
)
from flare.protocol.unixfs import Block, FileHasher

__all__ = ["EmbeddedStore"]

_QUEUE_BLOCKS = 16  # chunk buffers, read or hashed but not yet written: 4 MiB
_MAX_COPIES = 8  # copies of one block a read tries before giving up (two puts at once make two)


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
            better = self._explain(root, error)
            if better is error:
                raise
            raise better from error

    def _explain(self, root: Cid, error: StorageIntegrityError) -> StorageIntegrityError:
        """The store's own account of a block that failed verification: which pack, and why."""
        if isinstance(error, StoreCorruptionError):
            return error
        return self._diagnose(root, Cid.parse(error.cid)) or error

    def has(self, cid: str) -> bool:
        root = Cid.parse(cid)
        self._refresh()  # another process's gc may have removed blocks this store knew of
        try:
            self._reachable(root)
        except BlockNotFoundError:
            return False
        except StoreCorruptionError as error:
            if not error.lost:
                raise  # found bad by this very call: say so once; it is missing from now on
            return False
        return True

    def _fetch(self, root: Cid, cid: Cid) -> bytes:
        """The stored bytes of block `cid` of `root`'s file, unverified (the walk verifies)."""
        for attempt in range(2):
            found = self._find(cid)
            if found is None:
                break
            path = self._index.path(found.pack)
            try:
                return read_block(path, found.offset, found.length)
            except FileNotFoundError:
                if attempt == 0:  # a gc rewrote the pack since this store looked: look again
                    self._refresh()
            except OSError as error:
                if error.errno == errno.EIO:  # the disk could not read it back: damage too
                    problem = f"reading it from pack {path} fails: {error.strerror}"
                    raise StoreCorruptionError(
                        cid.text, root.text, self.location, problem, packs=(path,)
                    ) from error
                raise io_error(error, self.location, f"read block {cid}") from error
        raise self._missing(root, cid)

    def _find(self, cid: Cid) -> Location | None:
        """The block's location, looking at the packs on disk again if it is not known yet."""
        found = self._index.lookup(cid.digest)
        if found is None:
            self._refresh()
            found = self._index.lookup(cid.digest)
        return found

    def _read_checked(self, root: Cid, cid: Cid) -> bytes:
        """Bytes of block `cid` that hash to it; a bad copy is set aside and the next one tried."""
        for _ in range(_MAX_COPIES):
            data = self._fetch(root, cid)
            if hashlib.sha256(data).digest() == cid.digest:
                return data
            found = self._diagnose(root, cid)
            if found is not None and self._index.lookup(cid.digest) is None:
                raise found  # no other copy
        raise StorageIntegrityError(cid.text, "its stored copies keep changing while read")

    def _reachable(self, root: Cid) -> set[bytes]:
        """Digests of every block of `root`'s DAG, or the error for the first block missing or
        bad; inner nodes are read and verified, leaves only looked up."""
        seen: set[bytes] = set()
        todo = [root]
        while todo:
            cid = todo.pop()
            if cid.digest in seen:
                continue
            if cid.codec == CODEC_DAG_PB:
                todo.extend(block_links(cid, self._read_checked(root, cid)))
            elif self._find(cid) is None:
                raise self._missing(root, cid)
            seen.add(cid.digest)
        return seen

    def _missing(self, root: Cid, cid: Cid) -> BlockNotFoundError | StoreCorruptionError:
        pinned = (self._pins / root.text).exists()
        return missing_error(self._index, self.location, root, cid, pinned=pinned)

    def _diagnose(self, root: Cid, cid: Cid) -> StoreCorruptionError | None:
        return diagnose(self._index, self.location, root, cid)

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
        needs any. The live blocks of packs that also hold dead ones, and of damaged packs, are
        then copied into new packs, each hashed again on the way; an old pack is deleted once
        the new packs holding its blocks are synced to disk, so that even a power cut leaves two
        copies, never none (and the next gc drops the newer). Where a block is stored twice,
        the copy in use is verified before the others are dropped. A read error stops gc before
        anything unread is deleted. Files in packs/ that are not the store's packs are left alone.

        Damaged pinned content does not stop the collection: gc deletes only what it can prove
        dead, keeps the damaged packs that may still hold what is lost, and then raises
        `StoreDamagedError` naming the damaged pins. Where a pinned inner node is lost, nothing
        can tell the blocks under it from garbage: only bad and duplicate copies go then.
        """
        removed = freed = 0
        with self._lock.held(exclusive=True):
            try:
                self._refresh()
                self._check_duplicates()
                pins = self.pins()
                survey = self._survey(pins)
                if self._check_damaged_packs(survey):
                    survey = self._survey(pins)  # blocks found bad there are lost now
                kept = kept_for_repair(self._index, survey)
                where = self._index.where()
                live = set(where) if survey.unknown else set(survey.live)
                damaged = self._index.damaged()
                partial: list[tuple[str, list[Entry], int]] = []
                for pack, held in self._index.packs().items():
                    if pack in kept:
                        continue
                    keep = [
                        entry
                        for entry in held
                        if entry.digest in live
                        and where.get(entry.digest) == Location(pack, *entry[1:])
                    ]
                    if not keep:
                        removed += len(held)
                        freed += self._delete_pack(pack)
                    elif len(keep) < len(held) or pack in damaged:  # a damaged pack is rewritten
                        partial.append((pack, keep, len(held)))
                for entry in entries(self._tmp_name, directories=False):
                    freed += remove_file(entry) or 0
                removed_copying, freed_copying, failed = self._compact(partial)
                removed += removed_copying
                freed += freed_copying
                for entry in entries(str(self._pins), directories=False):
                    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                        remove_file(entry)  # a pin write cut short (pins are written beside them)
                self._index.prune_bad()
                if failed:  # a live block failed its hash while being copied: report it
                    survey = self._survey(pins)
                    kept |= failed
            except FlareError:
                raise  # a full disk: already worded for the user
            except OSError as error:
                raise io_error(error, self.location, "collect garbage") from error
        report = GcReport(removed_blocks=removed, freed_bytes=freed)
        if survey.damaged:
            raise StoreDamagedError(
                self.location,
                report,
                survey.pins(),
                tuple(sorted(self._index.path(pack) for pack in kept)),
                unknown=tuple(survey.unknown),
            )
        return report

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Read back and hash every block of every pin; report what is damaged.

        A scrub: it finds the damage that reads would meet later, while the files may still be
        at hand to add again. Every pack's index is read anew first, so that damage done since
        this process looked shows; blocks no pin reaches are not read, but every damaged pack
        is reported, with the pins it affects (maybe none). A block found bad is set aside as a
        read would, so that adding its file again writes it anew. Shares the lock with adds:
        gc cannot move blocks meanwhile. `progress` hears the bytes of each leaf read.
        """
        with self._lock.held(exclusive=False):
            self._refresh(again=True)
            pins = self.pins()
            survey = self._survey(pins, read_leaves=True, progress=progress)
            packs = damaged_packs(self._index, survey)
        return VerifyReport(
            location=self.location,
            pins_checked=len(pins),
            blocks_checked=len(survey.live),
            bytes_checked=survey.bytes,
            damaged_pins=survey.pins(),
            damaged_packs=packs,
        )

    def _survey(
        self, pins: list[str], *, read_leaves: bool = False, progress: Progress | None = None
    ) -> Survey:
        """Walk every pin, reading and verifying inner nodes, and leaves if `read_leaves`."""

        def visit(root: Cid, cid: Cid) -> tuple[list[Cid], int]:
            if cid.codec != CODEC_DAG_PB and not read_leaves:
                if self._find(cid) is None:
                    raise self._missing(root, cid)
                return [], 0
            data = self._read_checked(root, cid)
            if cid.codec == CODEC_DAG_PB:
                return block_links(cid, data), len(data)
            if progress is not None:
                progress(len(data))
            return [], len(data)

        return walk(pins, visit)

    def _check_damaged_packs(self, survey: Survey) -> bool:
        """Hash the live blocks of damaged packs that gc is about to rewrite; True if any failed.

        A pack whose header was overwritten still lists its blocks; before its blocks are copied
        out and it is deleted, each live one is checked, so that a bad one is reported as lost
        rather than dropped unnoticed.
        """
        failed = False
        packs = self._index.packs()
        for pack, damage in self._index.damaged().items():
            if not damage.complete:
                continue  # its blocks were hashed when it was read
            for entry in packs.get(pack, []):
                location = Location(pack, *entry[1:])
                in_use = self._index.lookup(entry.digest) == location
                if entry.digest in survey.live and in_use and self._intact(pack, *entry) is None:
                    self._index.mark_bad(location)
                    failed = True
        return failed

    def _compact(self, partial: list[tuple[str, list[Entry], int]]) -> tuple[int, int, set[str]]:
        """Copy the blocks to keep out of `partial` packs and delete those; (removed, freed, the
        packs kept because a live block in them failed its hash).

        Each old pack is deleted as soon as every block copied out of it sits in a committed
        (synced) new pack; `freed` is what the old packs took less what the new ones take.
        """
        removed = freed = 0
        failed: set[str] = set()
        into = _Appender(self, dedupe=False, fsync=True)
        waiting: list[tuple[str, int]] = []  # an old pack, the new pack its last block went to
        try:
            for pack, keep, count in partial:
                copied = self._copy(pack, keep, into)
                if copied < len(keep):
                    failed.add(pack)  # it shows which pinned block went bad: kept, reported
                    continue
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
        return removed, freed - into.bytes_committed, failed

    def _check_duplicates(self) -> None:
        """Verify the copy in use of each block stored twice; a bad one gives way to the next."""
        for digest, _ in self._index.duplicated():
            while (location := self._index.lookup(digest)) is not None:
                if self._intact(location.pack, digest, *location[1:]) is not None:
                    break
                self._index.mark_bad(location)  # held in memory even if the file is not written

    def _copy(self, pack: str, keep: list[Entry], into: _Appender) -> int:
        """Append the intact blocks among `keep` to `into`; how many were intact (a bad one is
        listed in `bad`)."""
        copied = 0
        for entry in keep:
            data = self._intact(pack, *entry)
            if data is None:
                self._index.mark_bad(Location(pack, *entry[1:]))
                continue
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

    def _refresh(self, *, again: bool = False) -> None:
        try:
            self._index.refresh(again=again)
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
