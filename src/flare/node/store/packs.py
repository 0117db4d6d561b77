"""Pack files: the embedded store's blocks, many to a file, each file visible whole or not at all.

A file per 256 KiB block costs a create and a rename per block, which on Linux file systems
takes about as much CPU as hashing the block: `put` could never come near hashing speed. So
blocks are appended to packs instead, as git and Kubo's newer datastores do. A put writes its
new blocks to `tmp/<name>.pack.part` and renames the file into `packs/` once it is complete,
its index included; a large put does so every `SEGMENT_BYTES`. A put that fails removes its
`.part` file; a killed one leaves it, unread, for gc. A pack in `packs/` is never written again.

Layout of a pack (integers big-endian):

    magic    b"FLAREPK1"
    records  digest (32) | length (4) | data          one per block, in the order written
    index    digest (32) | offset (8) | length (4)    one per record; offset of its data
    footer   count (4) | index offset (8) | sha256(index)[:16] | b"FLAREIX1"

Blocks are keyed by their sha2-256 digest, as Kubo's flatfs keys them by multihash: the same
bytes are one block whatever codec a CID gives them. The footer lets a store learn a pack's
contents with two reads; a pack whose footer does not check out (a power loss before the page
cache reached the disk) is read by walking its records and hashing each. Either way every block
is hashed again whenever it is read, so a torn record can only ever fail a read, never answer one.

A pack of ours that is damaged (header overwritten, cut short, index garbled) is not ignored:
what can still be read of it is used, and the damage is kept (`PackDamage`) with the blocks it
is known to have lost, so that a read of such a block says which pack failed instead of
claiming the store never held it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from flare.node.atomic import fsync_directory

__all__ = [
    "SEGMENT_BYTES",
    "SUFFIX",
    "Entry",
    "Location",
    "PackContents",
    "PackDamage",
    "PackIndex",
    "PackWriter",
    "inspect_pack",
    "read_block",
    "read_pack_index",
]

SUFFIX = ".pack"
SEGMENT_BYTES = 256 << 20  # a put (or gc's copying) starts a new pack past this size
MAGIC = b"FLAREPK1"
FOOTER_MAGIC = b"FLAREIX1"
_RECORD = struct.Struct(">32sI")
_ENTRY = struct.Struct(">32sQI")
_FOOTER = struct.Struct(">IQ16s8s")
_NO_DIGEST = bytes(32)
_OWN_NAME = re.compile(r"[0-9a-f]{16}-[0-9a-f]{8}")  # what PackWriter names its packs


class Entry(NamedTuple):
    """One block in a pack: its digest and where its bytes start, and how many."""

    digest: bytes
    offset: int
    length: int


class Location(NamedTuple):
    """Where a block's bytes are: a pack (its name, without the suffix), offset and length."""

    pack: str
    offset: int
    length: int


CUT_SHORT = "cut short"  # why a block is lost: its record runs past the end of the pack
BAD_HASH = "bad hash"  # its bytes are there but do not hash to its digest


class PackDamage(NamedTuple):
    """What is wrong with a pack of ours, and what is known of what it held.

    `lost` maps the digest of each block the pack is known to have held but cannot serve to why
    (`CUT_SHORT` or `BAD_HASH`). `complete` is True when the pack's own index listed everything
    it held, False when its records had to be walked: then more may have been lost than `lost`
    says, and nobody can tell which blocks.
    """

    problem: str
    lost: Mapping[bytes, str]
    complete: bool
    size: int


class PackContents(NamedTuple):
    """The blocks a pack can serve, and its damage (None for a sound pack)."""

    entries: list[Entry]
    damage: PackDamage | None


def _write_all(descriptor: int, pieces: Sequence[bytes | memoryview]) -> int:
    """Write every piece, in order, with as few system calls as the kernel allows."""
    views = [memoryview(piece).cast("B") for piece in pieces]
    total = sum(len(view) for view in views)
    while views:
        written = os.writev(descriptor, views)
        if not written and any(views):
            raise OSError(errno.EIO, "the file system accepted no bytes")
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views:
            views[0] = views[0][written:]
    return total


class PackWriter:
    """Appends blocks to a new pack under `tmp`; `commit` moves it, complete, into `packs`.

    Not thread-safe: one put (or one gc) owns a writer and calls it from one thread at a time.
    """

    def __init__(self, tmp: str, packs: str, *, fsync: bool) -> None:
        self.name = f"{time.time_ns():016x}-{secrets.token_hex(4)}"
        self.entries: list[Entry] = []
        self.size = 0
        self._part = f"{tmp}/{self.name}{SUFFIX}.part"
        self._final = f"{packs}/{self.name}{SUFFIX}"
        self._packs = packs
        self._fsync = fsync
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self._descriptor = os.open(self._part, flags, 0o644)
        try:
            self.size = _write_all(self._descriptor, [MAGIC])
        except BaseException:
            self.abort()
            raise

    def append(self, digest: bytes, data: bytes | memoryview) -> None:
        """Add one block; its bytes are written before this returns (the buffer may be reused)."""
        header = _RECORD.pack(digest, len(data))
        self.size += _write_all(self._descriptor, [header, data])
        self.entries.append(Entry(digest, self.size - len(data), len(data)))

    def commit(self) -> list[Entry]:
        """Write the index, then rename the pack into place; returns what it holds."""
        index = b"".join(_ENTRY.pack(*entry) for entry in self.entries)
        check = hashlib.sha256(index).digest()[:16]
        footer = _FOOTER.pack(len(self.entries), self.size, check, FOOTER_MAGIC)
        self.size += _write_all(self._descriptor, [index, footer])
        if self._fsync:
            os.fsync(self._descriptor)
        descriptor, self._descriptor = self._descriptor, -1
        os.close(descriptor)
        os.replace(self._part, self._final)
        if self._fsync:
            fsync_directory(self._packs)
        return self.entries

    def abort(self) -> None:
        """Forget the pack: nothing of it stays behind (best effort: gc removes what does)."""
        if self._descriptor >= 0:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)
            self._descriptor = -1
        with contextlib.suppress(OSError):
            os.unlink(self._part)


def read_block(path: str, offset: int, length: int) -> bytes:
    """The `length` bytes at `offset` of a pack; fewer if the file ends first (torn)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(descriptor, length, offset)
        while len(data) < length:
            more = os.pread(descriptor, length - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data
    finally:
        os.close(descriptor)


def read_pack_index(path: str) -> list[Entry] | None:
    """What a pack holds: from its footer's index, or, if that is damaged, its records.

    None for a file that is not a pack at all (no magic): nothing in it is trusted as one.
    """
    contents = inspect_pack(path, ours=False)
    return None if contents is None else contents.entries


def inspect_pack(path: str, *, ours: bool) -> PackContents | None:
    """A pack's blocks and what is wrong with it, from its footer or else from its records.

    A file without the magic is foreign (None) unless it is `ours` (named as the store names its
    packs): then its header was overwritten, and its index or records are read all the same,
    since every block is hashed before it is used.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(descriptor).st_size
        if size == 0:
            return PackContents([], PackDamage("it is empty", {}, False, 0)) if ours else None
        problems = []
        if os.pread(descriptor, len(MAGIC), 0) != MAGIC:
            if not ours:
                return None
            problems.append("its header is damaged")
        indexed, records_end = _indexed(descriptor, size)
        if indexed is not None:
            damage = None
            if problems:
                damage = PackDamage("; ".join(problems), {}, complete=True, size=size)
            return PackContents(indexed, damage)
        entries, lost, stop = _scan(descriptor, records_end)
        if records_end == size:  # no footer: cut short, or its end overwritten
            problems.append(_ENDS[stop])
        else:  # the footer is there, the index it points at is not right
            problems.append("its index is damaged")
            if stop:
                problems.append("the records before its index are damaged too")
        bad = sum(1 for why in lost.values() if why == BAD_HASH)
        if bad:
            problems.append(f"{bad} block(s) in it fail their hash")
        return PackContents(entries, PackDamage("; ".join(problems), lost, False, size))
    finally:
        os.close(descriptor)


# How a pack without a usable footer ends, by why the walk of its records stopped.
_ENDS = {
    "": "its index is gone: it was cut short, or its end overwritten",
    "index": "its index is cut short or damaged",
    "block": "it is cut short inside a block: the blocks after it and its index are gone",
    "header": "it is cut short inside a record: the blocks after it and its index are gone",
    "zeros": "its records run into a stretch of zeros, and what follows cannot be read",
}


def _indexed(descriptor: int, size: int) -> tuple[list[Entry] | None, int]:
    """The footer's index and where the records end; (None, where they may end) if unusable.

    Records end at `size` when the footer is missing (the pack was cut short or its end
    overwritten), before it when the footer is there but the index fails its check.
    """
    if size < len(MAGIC) + _FOOTER.size:
        return None, size
    footer = os.pread(descriptor, _FOOTER.size, size - _FOOTER.size)
    count, index_at, check, magic = _FOOTER.unpack(footer)
    if magic != FOOTER_MAGIC:
        return None, size
    if index_at + count * _ENTRY.size + _FOOTER.size != size or index_at < len(MAGIC):
        return None, size - _FOOTER.size
    index = os.pread(descriptor, count * _ENTRY.size, index_at)
    if hashlib.sha256(index).digest()[:16] != check:
        return None, index_at
    entries = [Entry(*fields) for fields in _ENTRY.iter_unpack(index)]
    if not all(entry.offset + entry.length <= index_at for entry in entries):
        return None, index_at
    return entries, index_at


def _scan(descriptor: int, size: int) -> tuple[list[Entry], dict[bytes, str], str]:
    """The intact records of a pack without a usable index, each checked against its digest;
    the digests of records found torn or failing their hash; where the walk stopped early
    ("block", "header" or "zeros"; "index" where the index begins; "" if it reached `size`).

    Only a crash or a damaged disk leaves such a pack, so hashing it whole once is affordable;
    in exchange no torn record, zeroed tail or stretch of the damaged index is ever taken for a
    block.
    """
    entries: list[Entry] = []
    lost: dict[bytes, str] = {}
    position = len(MAGIC)
    while position + _RECORD.size <= size:
        digest, length = _RECORD.unpack(os.pread(descriptor, _RECORD.size, position))
        start = position + _RECORD.size
        if digest == _NO_DIGEST:
            return entries, lost, "zeros"
        if start + length > size:
            lost[digest] = CUT_SHORT
            return entries, lost, "block"
        if hashlib.sha256(os.pread(descriptor, length, start)).digest() == digest:
            entries.append(Entry(digest, start, length))
        elif length == 0:  # an index entry (its offset's high bytes are 0): the records ended
            return entries, lost, "index"
        else:
            lost[digest] = BAD_HASH
        position = start + length
    return entries, lost, "header" if position < size else ""


class PackIndex:
    """Which pack holds each block, learned from the packs themselves; shared by threads.

    Other processes add and remove packs: `refresh` learns of them. A block stored twice (two
    puts of the same content at once) is read from the oldest pack; gc drops the other copies.
    A file named like the store's own packs is read even when damaged (its header overwritten,
    its end cut off): what still hashes is served, and its `PackDamage` is kept for messages and
    for gc, which keeps such a pack while pinned content is damaged. Other `*.pack` files
    without the magic are foreign. Locations found corrupt are listed, one `pack offset` line
    each, in the `bad` file, so that every process (and the next put) treats the block as lost
    until it is written again. Lookups take no lock: the maps they read are only ever replaced
    whole, or added to.
    """

    def __init__(self, packs: str, bad: str) -> None:
        self.directory = packs
        self._bad_path = bad
        self._lock = threading.Lock()
        self._packs: dict[str, list[Entry]] = {}
        self._foreign: set[str] = set()  # `*.pack` files without the magic: not ours
        self._damage: dict[str, PackDamage] = {}
        self._where: dict[bytes, Location] = {}
        self._lost: dict[bytes, list[tuple[str, str]]] = {}  # digest: (pack, why) it was lost
        self._bad: set[tuple[str, int]] = set()  # as listed in the file, plus `_local_bad`
        self._local_bad: set[tuple[str, int]] = set()  # found here, the file unwritable

    def path(self, pack: str) -> str:
        return f"{self.directory}/{pack}{SUFFIX}"

    def lookup(self, digest: bytes) -> Location | None:
        """Where the block is, as of the last `refresh` (None before the first)."""
        return self._where.get(digest)

    def lost(self, digest: bytes) -> list[tuple[str, str]]:
        """The packs known to have held the block but unable to serve it, each with why
        (`CUT_SHORT` or `BAD_HASH`), as of the last refresh."""
        return list(self._lost.get(digest, ()))

    def damaged(self) -> dict[str, PackDamage]:
        """The damaged packs of ours known at the last refresh, with their damage (a copy)."""
        with self._lock:
            return dict(self._damage)

    def bad_blocks(self) -> dict[str, list[Entry]]:
        """Blocks found corrupt on read, by pack (those packs are damaged too)."""
        with self._lock:
            found: dict[str, list[Entry]] = {}
            for name, held in self._packs.items():
                for entry in held:
                    if (name, entry.offset) in self._bad:
                        found.setdefault(name, []).append(entry)
            return found

    def packs(self) -> dict[str, list[Entry]]:
        """Every pack known at the last refresh and what it holds (a copy)."""
        with self._lock:
            return dict(self._packs)

    def where(self) -> dict[bytes, Location]:
        """The location of every block: a map never changed in place, only added to.

        A later rebuild replaces it, so a caller holding it keeps a consistent view of what
        was known, plus any blocks learned since (whose existing locations never change).
        """
        return self._where

    def duplicated(self) -> list[tuple[bytes, Location]]:
        """Blocks with more than one usable copy, and the copy reads use."""
        with self._lock:
            copies: dict[bytes, int] = {}
            for name, held in self._packs.items():
                for digest, offset, _ in held:
                    if (name, offset) not in self._bad:
                        copies[digest] = copies.get(digest, 0) + 1
            return [(digest, self._where[digest]) for digest, n in copies.items() if n > 1]

    def refresh(self, *, again: bool = False) -> None:
        """Learn the packs added and forget those removed since the last look, by anyone.

        `again` reads every pack anew, as a scrub does: damage done to a pack since this
        process read it shows only then.
        """
        with self._lock:
            if again:
                self._packs.clear()
                self._foreign.clear()
                self._damage.clear()
            with os.scandir(self.directory) as found:
                names = {
                    entry.name[: -len(SUFFIX)]
                    for entry in found
                    if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False)
                }
            gone = self._packs.keys() - names
            for name in gone:
                del self._packs[name]
                self._damage.pop(name, None)
            self._foreign &= names
            newest = max(self._packs, default="")
            added = []
            damaged = False
            for name in sorted(names - self._packs.keys() - self._foreign):
                try:
                    contents = self._read(name)
                except FileNotFoundError:
                    continue  # removed by a gc since the listing
                if contents is None:
                    self._foreign.add(name)
                    continue
                self._packs[name] = contents.entries
                if contents.damage is not None:
                    self._damage[name] = contents.damage
                    damaged = True
                added.append(name)
            # A pack older than one already known changes which copy of a block is oldest; a
            # damaged one adds blocks known lost.
            if self._read_bad() or again or gone or damaged or (added and added[0] < newest):
                self._rebuild()
            else:
                for name in added:
                    self._learn(self._where, name, self._packs[name])

    def add(self, pack: str, entries: list[Entry]) -> None:
        """A pack this process has just committed."""
        with self._lock:
            self._packs[pack] = entries
            self._learn(self._where, pack, entries)

    def reload(self, pack: str) -> None:
        """Read a pack's index again: it was found shorter than its index says (torn)."""
        with self._lock:
            self._damage.pop(pack, None)
            try:
                contents = self._read(pack)
            except FileNotFoundError:
                self._packs.pop(pack, None)
            else:
                self._packs[pack] = [] if contents is None else contents.entries
                if contents is not None and contents.damage is not None:
                    self._damage[pack] = contents.damage
            self._rebuild()

    def forget(self, pack: str) -> None:
        """A pack this process has just deleted."""
        with self._lock:
            self._damage.pop(pack, None)
            if self._packs.pop(pack, None) is not None:
                self._rebuild()

    def mark_bad(self, location: Location) -> bool:
        """Record that the bytes at `location` fail their hash; another copy is used if any.

        Recorded in this process even if the `bad` file cannot be written (a full disk; then
        False is returned): other processes find the block bad on their own next read of it.
        """
        with self._lock:
            self._local_bad.add((location.pack, location.offset))
            self._bad.add((location.pack, location.offset))
            self._rebuild()
        line = f"{location.pack} {location.offset}\n".encode()
        try:
            descriptor = os.open(self._bad_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _write_all(descriptor, [line])
            finally:
                os.close(descriptor)
        except OSError:
            return False
        return True

    def prune_bad(self) -> None:
        """Keep only the bad-location lines naming packs that still exist (gc, locked alone)."""
        with self._lock:
            if self._read_bad():  # a reader elsewhere found a block bad while gc ran
                self._rebuild()
            self._local_bad = {bad for bad in self._local_bad if bad[0] in self._packs}
            kept = "".join(
                f"{pack} {offset}\n" for pack, offset in sorted(self._bad) if pack in self._packs
            )
            if not kept:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._bad_path)
            else:
                temporary = f"{self._bad_path}.{secrets.token_hex(4)}.tmp"
                with open(temporary, "w") as out:
                    out.write(kept)
                os.replace(temporary, self._bad_path)
            if self._read_bad():
                self._rebuild()

    def _read(self, pack: str) -> PackContents | None:
        """A pack's blocks and damage; None for a file that is not ours and not a pack."""
        return inspect_pack(self.path(pack), ours=_OWN_NAME.fullmatch(pack) is not None)

    def _learn(self, where: dict[bytes, Location], pack: str, entries: list[Entry]) -> None:
        for digest, offset, length in entries:
            if (pack, offset) not in self._bad:
                where.setdefault(digest, Location(pack, offset, length))

    def _rebuild(self) -> None:
        """Recompute every location, then swap the maps in: a lookup never sees one half built."""
        where: dict[bytes, Location] = {}
        lost: dict[bytes, list[tuple[str, str]]] = {}
        for name in sorted(self._packs):  # oldest first: names start with the creation time
            self._learn(where, name, self._packs[name])
            for digest, offset, _ in self._packs[name]:
                if (name, offset) in self._bad:
                    lost.setdefault(digest, []).append((name, BAD_HASH))
            damage = self._damage.get(name)
            for digest, why in () if damage is None else damage.lost.items():
                lost.setdefault(digest, []).append((name, why))
        self._where = where
        self._lost = lost

    def _read_bad(self) -> bool:
        """Read the bad-location list again (it is small); True if it changed."""
        listed = set(self._local_bad)
        try:
            with open(self._bad_path, "rb") as log:
                for line in log:
                    pack, _, offset = line.decode("ascii", "replace").strip().partition(" ")
                    if offset.isdigit():
                        listed.add((pack, int(offset)))
        except FileNotFoundError:
            pass
        changed = listed != self._bad
        self._bad = listed
        return changed
