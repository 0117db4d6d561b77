"""The embedded store when things go wrong: corrupt blocks, torn packs, a full disk, a source
that dies, a process killed mid-add. Nothing half-written may ever become visible."""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flare.node.store import files, packs
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.cid import CODEC_RAW, Cid, StorageIntegrityError
from flare.protocol.store import (
    BlockNotFoundError,
    StorageFullError,
    StoreDamagedError,
    StoreIOError,
)
from flare.protocol.unixfs import CHUNK_SIZE


def content(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "store") as opened:
        yield opened


def pack_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "packs").iterdir() if path.is_file())


def leaf_of(data: bytes, index: int) -> Cid:
    return Cid.of_block(CODEC_RAW, data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])


def overwrite(store: EmbeddedStore, block: Cid, data: bytes | None = None) -> None:
    """Replace a stored block's bytes in place (zeros by default), as a bad disk would."""
    found = store.locate(block)
    assert found is not None
    pack, offset, length = found
    with open(pack, "r+b") as stored:
        stored.seek(offset)
        stored.write(bytes(length) if data is None else data)


def cut_inside(store: EmbeddedStore, block: Cid, keep: int) -> None:
    """Truncate the block's pack `keep` bytes into the block, as a power loss can."""
    found = store.locate(block)
    assert found is not None
    pack, offset, _ = found
    os.truncate(pack, offset + keep)


def test_a_corrupt_block_is_rejected_listed_as_bad_and_repaired_by_adding_again(
    store: EmbeddedStore,
) -> None:
    data = content(3 * CHUNK_SIZE, seed=7)
    cid = store.put(data)
    leaf = leaf_of(data, 1)
    overwrite(store, leaf)

    with pytest.raises(StorageIntegrityError) as caught:
        store.get(cid)

    assert caught.value.cid == leaf.text
    assert store.locate(leaf) is None  # listed as bad: a missing block until written again
    assert not store.has(cid)
    assert store.put(data) == cid
    assert store.get(cid) == data


def test_blocks_found_bad_stay_bad_for_other_processes(tmp_path: Path) -> None:
    data = content(2 * CHUNK_SIZE, seed=22)
    with EmbeddedStore(tmp_path / "store") as first:
        cid = first.put(data)
        overwrite(first, leaf_of(data, 0))
        with pytest.raises(StorageIntegrityError):
            first.get(cid)

    with EmbeddedStore(tmp_path / "store") as second:
        assert not second.has(cid)
        packs_before = len(pack_files(second.root))
        assert second.put(data) == cid  # the bad block is written again, in a new pack
        assert len(pack_files(second.root)) == packs_before + 1
        assert second.get(cid) == data
        assert second.gc().removed_blocks == 1  # the bad copy
        assert (second.root / "bad").exists() is False
        assert second.get(cid) == data


def test_a_torn_pack_is_rejected_and_rewritten_by_the_next_add(store: EmbeddedStore) -> None:
    data = content(2 * CHUNK_SIZE + 1, seed=8)
    cid = store.put(data)
    leaf = leaf_of(data, 0)
    cut_inside(store, leaf, keep=1000)  # the leaf, the blocks after it and the index are gone

    with pytest.raises(StorageIntegrityError, match=cid):
        store.get(cid)  # the root node, written last, is the first block read
    assert store.locate(leaf) is None  # the pack was read again: nothing of it is whole
    store.put(data)

    assert store.get(cid) == data


def test_a_torn_pack_is_read_up_to_its_last_whole_block_after_a_restart(tmp_path: Path) -> None:
    data = content(3 * CHUNK_SIZE, seed=23)
    with EmbeddedStore(tmp_path / "store") as first:
        cid = first.put(data)
        cut_inside(first, leaf_of(data, 2), keep=10)

    with EmbeddedStore(tmp_path / "store") as second:
        assert second.locate(leaf_of(data, 1)) is not None  # whole: found by walking records
        assert second.locate(leaf_of(data, 2)) is None
        assert not second.has(cid)
        assert second.put(data) == cid
        assert second.get(cid) == data


def test_a_truncated_inner_node_is_reported_by_has(store: EmbeddedStore) -> None:
    cid = store.put(content(2 * CHUNK_SIZE, seed=9))
    root = Cid.parse(cid)
    found = store.locate(root)
    assert found is not None
    cut_inside(store, root, keep=found[2] - 3)

    with pytest.raises(StorageIntegrityError, match=cid):
        store.has(cid)


class FullDisk:
    """The `os` module, except that writes fail with ENOSPC after `allowed` of them."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    def writev(self, descriptor: int, buffers: Any) -> int:
        if self.allowed == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.allowed -= 1
        return os.writev(descriptor, buffers)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_a_full_disk_fails_cleanly_and_gc_reclaims_the_finished_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Packs of two blocks: the first is complete when the disk fills in the second.
    store = EmbeddedStore(tmp_path / "store", segment_bytes=2 * CHUNK_SIZE)
    data = content(6 * CHUNK_SIZE, seed=10)
    monkeypatch.setattr(packs, "os", FullDisk(allowed=5))  # magic, 2 blocks, index; magic, 1

    with pytest.raises(StorageFullError) as caught:
        store.put(data)
    monkeypatch.undo()

    assert str(store.root) in str(caught.value)
    assert list((store.root / "tmp").iterdir()) == []
    assert store.pins() == []
    [finished] = pack_files(store.root)
    assert packs.read_pack_index(str(finished)) == [
        packs.Entry(leaf_of(data, index).digest, 44 + index * (CHUNK_SIZE + 36), CHUNK_SIZE)
        for index in range(2)
    ]
    assert store.gc().removed_blocks == 2
    assert pack_files(store.root) == []


def test_gc_on_a_full_disk_frees_dead_packs_first_and_leaves_no_copy_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EmbeddedStore(tmp_path / "store")
    pinned = store.put(content(2 * CHUNK_SIZE, seed=28))
    store.put(content(3 * CHUNK_SIZE, seed=29), pin=False)  # a pack with nothing live
    shared = content(CHUNK_SIZE, seed=30)
    partly = store.put(shared + b"tail")  # a pack that gc must copy a block out of
    store.pin(leaf_of(shared, 0).text)
    store.unpin(partly)
    before = pack_files(store.root)
    monkeypatch.setattr(packs, "os", FullDisk(allowed=0))  # not even a new pack can start

    with pytest.raises(StorageFullError):
        store.gc()
    monkeypatch.undo()

    assert len(pack_files(store.root)) == len(before) - 1  # the dead pack went first
    assert list((store.root / "tmp").iterdir()) == []
    report = store.gc()  # with space again, the rest
    assert report.removed_blocks == 2  # the tail leaf and the root node of `partly`
    assert store.get(pinned) == content(2 * CHUNK_SIZE, seed=28)
    assert store.get(leaf_of(shared, 0).text) == shared


def test_a_full_disk_while_a_pack_is_committed_is_still_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EmbeddedStore(tmp_path / "store", segment_bytes=2 * CHUNK_SIZE)
    monkeypatch.setattr(packs, "os", FullDisk(allowed=3))  # magic, 2 blocks; not the index

    with pytest.raises(StorageFullError, match="no space left"):
        store.put(content(6 * CHUNK_SIZE, seed=25))
    monkeypatch.undo()

    assert list((store.root / "tmp").iterdir()) == []
    assert pack_files(store.root) == []


def test_a_block_found_bad_by_one_process_stops_another_process_s_gc(tmp_path: Path) -> None:
    data = content(2 * CHUNK_SIZE, seed=26)
    reader, collector = EmbeddedStore(tmp_path / "store"), EmbeddedStore(tmp_path / "store")
    cid = reader.put(data)
    reader.put(b"unpinned", pin=False)
    assert collector.has(cid)  # the collector knows both packs by heart
    reader.gc()  # ... and one of them is gone, which it learns on its next look
    overwrite(reader, leaf_of(data, 0))
    with pytest.raises(StorageIntegrityError):
        reader.get(cid)

    with pytest.raises(StoreDamagedError, match=cid):
        collector.gc()  # the pinned file misses a block: its pack is kept, the damage named

    assert (tmp_path / "store" / "bad").read_text().count("\n") == 1
    assert reader.put(data) == cid
    assert collector.get(cid) == data


def test_a_pin_on_content_another_process_collected_is_refused(tmp_path: Path) -> None:
    adder, collector = EmbeddedStore(tmp_path / "store"), EmbeddedStore(tmp_path / "store")
    cid = adder.put(b"small model delta", pin=False)
    assert adder.has(cid)

    collector.gc()

    assert not adder.has(cid)
    with pytest.raises(BlockNotFoundError, match=cid):
        adder.pin(cid)
    assert adder.pins() == []
    assert collector.gc().removed_blocks == 0


class Failing(io.RawIOBase):
    """A source that dies after `good` bytes, like a network stream cut mid-transfer."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise ConnectionResetError("source went away")
        take = min(size, self._left)
        self._left -= take
        return b"\x07" * take


def test_an_interrupted_source_leaves_no_partial_pack_and_no_pin(store: EmbeddedStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put_stream(Failing(CHUNK_SIZE * 2 + 100))  # type: ignore[arg-type]

    assert list((store.root / "tmp").iterdir()) == []
    assert store.pins() == []
    assert pack_files(store.root) == []


def test_gc_removes_leftovers_of_a_crashed_write(store: EmbeddedStore) -> None:
    leftover = store.root / "tmp" / "0123.pack.part"
    leftover.write_bytes(b"half a pack")

    report = store.gc()

    assert not leftover.exists()
    assert report.freed_bytes == len(b"half a pack")


def test_gc_collects_around_pinned_content_with_a_bad_block_and_names_it(
    store: EmbeddedStore,
) -> None:
    data = content(2 * CHUNK_SIZE, seed=11)
    cid = store.put(data)
    store.put(b"unpinned", pin=False)
    leaf = leaf_of(data, 1)
    overwrite(store, leaf)
    with pytest.raises(StorageIntegrityError):
        store.get(cid)  # now listed as bad: the pinned file misses a block
    [damaged, _] = pack_files(store.root)

    with pytest.raises(StoreDamagedError, match=cid) as caught:
        store.gc()

    assert caught.value.report.removed_blocks == 1  # the unpinned one
    assert [pin.cid for pin in caught.value.damaged] == [cid]
    assert [block.cid for block in caught.value.damaged[0].blocks] == [leaf.text]
    assert caught.value.kept == (str(damaged),)
    assert pack_files(store.root) == [damaged]  # untouched: it shows where the block was


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(OSError, match="cannot create the store directories"):
        EmbeddedStore(blocker / "store")


_CRASHING_ADD = """
import sys
from pathlib import Path
from flare.node.store.embedded import EmbeddedStore

class Source:
    # 40 chunks (written while later ones are read), a signal to the test, then a read that
    # never returns: killed mid-add.
    def __init__(self):
        self.sent = 0
    def read(self, size=-1):
        if self.sent == 40:
            print("adding", flush=True)
            sys.stdin.read()
        self.sent += 1
        return bytes([self.sent]) * size

EmbeddedStore(Path(sys.argv[1])).put_stream(Source())
"""


def test_a_killed_add_leaves_no_pack_and_no_pin(tmp_path: Path) -> None:
    root = tmp_path / "store"
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_ADD, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"adding\n"
    finally:
        child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()

    with EmbeddedStore(root) as store:
        assert store.pins() == []
        assert pack_files(root) == []
        assert [path.suffix for path in (root / "tmp").iterdir()] == [".part"]
        store.gc()
        assert list((root / "tmp").iterdir()) == []


def test_an_add_keeps_a_torn_block_until_a_read_finds_it_bad(store: EmbeddedStore) -> None:
    data = content(2 * CHUNK_SIZE, seed=18)
    cid = store.put(data)
    leaf = leaf_of(data, 0)
    overwrite(store, leaf)  # what a power loss can leave: right size, wrong bytes

    store.put(data)  # the block is listed: the add does not re-read it
    found = store.locate(leaf)
    assert found is not None
    assert packs.read_block(str(found[0]), found[1], found[2]) == bytes(CHUNK_SIZE)
    with pytest.raises(StorageIntegrityError):
        store.get(cid)  # the read lists it as bad ...
    store.put(data)  # ... and the next add writes it again

    assert store.get(cid) == data


def test_a_reader_follows_blocks_that_gc_moved_to_a_new_pack(tmp_path: Path) -> None:
    data = content(3 * CHUNK_SIZE, seed=19)
    with EmbeddedStore(tmp_path / "store") as writer, EmbeddedStore(tmp_path / "store") as reader:
        whole = writer.put(data)
        leaf = leaf_of(data, 1)
        writer.pin(leaf.text)  # one leaf is content of its own
        assert reader.has(whole)  # the reader now knows the pack by heart
        [before] = pack_files(writer.root)

        writer.unpin(whole)
        report = writer.gc()

        [after] = pack_files(writer.root)
        assert after != before
        assert report.removed_blocks == 3
        assert reader.get(leaf.text) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
        assert not reader.has(whole)


def stored_twice(store: EmbeddedStore, data: bytes) -> tuple[str, Path]:
    """Put `data`, then copy its pack under a later name: what two adds at once can leave."""
    cid = store.put(data)
    [original] = pack_files(store.root)
    shutil.copyfile(original, original.with_name(f"{time.time_ns() + 1:016x}-copy.pack"))
    return cid, original


def test_gc_removes_copies_stored_twice(store: EmbeddedStore) -> None:
    data = content(2 * CHUNK_SIZE + 1, seed=24)
    cid, original = stored_twice(store, data)

    report = store.gc()

    assert report.removed_blocks == 4
    assert pack_files(store.root) == [original]
    assert store.get(cid) == data


def test_gc_keeps_the_intact_copy_when_the_older_one_went_bad(store: EmbeddedStore) -> None:
    data = content(2 * CHUNK_SIZE + 1, seed=27)
    cid, _ = stored_twice(store, data)
    overwrite(store, leaf_of(data, 0))  # in the older pack, the copy reads use

    report = store.gc()

    assert report.removed_blocks == 4  # one bad copy, and the three blocks stored twice
    assert store.get(cid) == data


def test_gc_leaves_files_in_packs_that_are_not_packs_alone(store: EmbeddedStore) -> None:
    kept = store.put(content(CHUNK_SIZE + 1, seed=20))
    store.put(content(CHUNK_SIZE + 2, seed=21), pin=False)
    stray = store.root / "packs" / "NOTES.txt"
    stray.write_text("not a pack")
    foreign = store.root / "packs" / "foreign.pack"
    foreign.write_bytes(b"no magic, no index")
    (store.root / "packs" / "link.pack").symlink_to(store.root / "pins")

    report = store.gc()

    assert report.removed_blocks == 3
    assert stray.read_text() == "not a pack"
    assert foreign.read_bytes() == b"no magic, no index"
    assert store.has(kept)


def test_gc_turns_other_os_errors_into_a_store_error(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(b"garbage", pin=False)

    class ReadOnly:
        def unlink(self, path: str) -> None:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

    monkeypatch.setattr(files, "os", ReadOnly())

    with pytest.raises(StoreIOError, match="cannot collect garbage") as caught:
        store.gc()

    assert str(store.root) in str(caught.value)


def test_gc_removes_a_pin_write_cut_short_and_keeps_the_pins(store: EmbeddedStore) -> None:
    cid = store.put(b"pinned")
    leftover = store.root / "pins" / f".{cid}.0123abcd.tmp"
    leftover.write_bytes(b"")

    store.gc()

    assert not leftover.exists()
    assert store.pins() == [cid]
    assert store.get(cid) == b"pinned"


def test_an_empty_block_stored_twice_keeps_one_copy(store: EmbeddedStore) -> None:
    cid, original = stored_twice(store, b"")

    report = store.gc()

    assert report.removed_blocks == 1
    assert pack_files(store.root) == [original]
    assert store.get(cid) == b""
