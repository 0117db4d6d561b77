"""Pack files, the embedded store's on-disk unit: format, recovery without an index, segments."""

from __future__ import annotations

import errno
import hashlib
import os
import random
from pathlib import Path

import pytest

from flare.node.store import packs
from flare.node.store.embedded import EmbeddedStore
from flare.node.store.packs import (
    CUT_SHORT,
    Entry,
    PackIndex,
    PackWriter,
    inspect_pack,
    read_block,
    read_pack_index,
)
from flare.protocol.unixfs import CHUNK_SIZE


def blocks(count: int, seed: int) -> list[bytes]:
    generator = random.Random(seed)
    return [generator.randbytes(generator.randrange(0, 3000)) for _ in range(count)]


def written_pack(tmp_path: Path, data: list[bytes]) -> tuple[Path, list[Entry]]:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "packs").mkdir()
    writer = PackWriter(str(tmp_path / "tmp"), str(tmp_path / "packs"), fsync=False)
    for piece in data:
        writer.append(hashlib.sha256(piece).digest(), piece)
    held = writer.commit()
    return tmp_path / "packs" / f"{writer.name}.pack", held


def test_a_committed_pack_lists_and_serves_every_block(tmp_path: Path) -> None:
    data = [*blocks(20, seed=1), b""]
    path, held = written_pack(tmp_path, data)

    assert read_pack_index(str(path)) == held
    assert [read_block(str(path), entry.offset, entry.length) for entry in held] == data
    assert [entry.digest for entry in held] == [hashlib.sha256(piece).digest() for piece in data]
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("damage", ["footer", "index", "magic of the footer"])
def test_a_pack_whose_index_is_damaged_is_read_by_walking_its_records(
    tmp_path: Path, damage: str
) -> None:
    path, held = written_pack(tmp_path, blocks(12, seed=2))
    size = path.stat().st_size
    where = {"footer": size - 30, "index": size - 40 - 44 * 3, "magic of the footer": size - 1}
    with open(path, "r+b") as pack:
        pack.seek(where[damage])
        pack.write(b"\xff")

    assert read_pack_index(str(path)) == held
    contents = inspect_pack(str(path), ours=True)
    assert contents is not None
    assert contents.damage is not None
    assert contents.damage.lost == {}  # the index's entries are not taken for torn records
    assert "fail their hash" not in contents.damage.problem


def test_a_pack_cut_short_keeps_its_whole_records(tmp_path: Path) -> None:
    path, held = written_pack(tmp_path, [bytes([n]) * 1000 for n in range(1, 6)])
    os.truncate(path, held[3].offset + 10)

    assert read_pack_index(str(path)) == held[:3]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("magic", "its header is damaged"),
        ("index", "its index is damaged"),
        ("both", "its header is damaged; its index is damaged"),
    ],
)
def test_a_damaged_pack_of_ours_is_read_and_its_damage_named(
    tmp_path: Path, damage: str, problem: str
) -> None:
    path, held = written_pack(tmp_path, blocks(6, seed=9))
    with open(path, "r+b") as pack:
        if damage in ("magic", "both"):
            pack.write(b"X")
        if damage in ("index", "both"):
            pack.seek(held[-1].offset + held[-1].length + 3)
            pack.write(b"\xff")

    contents = inspect_pack(str(path), ours=True)

    assert contents is not None
    assert contents.entries == held  # from the index, or from the records, each one hashed
    assert contents.damage is not None
    assert contents.damage.problem == problem
    assert contents.damage.complete == (damage == "magic")
    assert contents.damage.lost == {}
    assert (read_pack_index(str(path)) is None) == (damage != "index")  # not ours: foreign


def test_a_pack_cut_short_names_the_block_it_ends_in(tmp_path: Path) -> None:
    path, held = written_pack(tmp_path, [bytes([n]) * 1000 for n in range(1, 6)])
    os.truncate(path, held[3].offset + 10)

    contents = inspect_pack(str(path), ours=True)

    assert contents is not None
    assert contents.entries == held[:3]
    assert contents.damage is not None
    assert contents.damage.lost == {held[3].digest: CUT_SHORT}
    assert not contents.damage.complete  # the fifth block left no trace
    assert contents.damage.problem == (
        "it is cut short inside a block: the blocks after it and its index are gone"
    )


def test_a_block_cut_short_reads_short(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1024
    path, [entry] = written_pack(tmp_path, [data])
    os.truncate(path, entry.offset + 3 * len(data) // 4)

    assert read_block(str(path), entry.offset, entry.length) == data[: 3 * len(data) // 4]


def test_a_file_without_the_pack_magic_is_not_a_pack(tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.pack"
    stranger.write_bytes(os.urandom(500))

    assert read_pack_index(str(stranger)) is None


def test_gc_removes_a_pack_with_no_whole_block_left(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as first:
        first.put(b"abcdef" * 10, pin=False)
        [pack] = (first.root / "packs").iterdir()
        os.truncate(pack, 40)  # the magic and part of the first record's header

    with EmbeddedStore(tmp_path / "store") as second:
        report = second.gc()

        assert (report.removed_blocks, report.freed_bytes) == (0, 40)
        assert list((second.root / "packs").iterdir()) == []


def test_an_aborted_pack_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "packs").mkdir()
    writer = PackWriter(str(tmp_path / "tmp"), str(tmp_path / "packs"), fsync=False)
    writer.append(hashlib.sha256(b"x").digest(), b"x")

    writer.abort()

    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "packs").iterdir()) == []


def test_the_index_prefers_the_oldest_copy_and_learns_of_new_and_removed_packs(
    tmp_path: Path,
) -> None:
    data = blocks(3, seed=3)
    first, _ = written_pack(tmp_path, data)
    index = PackIndex(str(tmp_path / "packs"), str(tmp_path / "bad"))
    digest = hashlib.sha256(data[0]).digest()
    index.refresh()
    found = index.lookup(digest)
    assert found is not None
    assert found.pack == first.name.removesuffix(".pack")

    writer = PackWriter(str(tmp_path / "tmp"), str(tmp_path / "packs"), fsync=True)
    writer.append(digest, data[0])
    writer.commit()
    index.refresh()
    assert index.lookup(digest) == found  # the older copy still wins

    first.unlink()
    index.refresh()
    moved = index.lookup(digest)
    assert moved is not None
    assert moved.pack == writer.name
    assert index.lookup(hashlib.sha256(data[1]).digest()) is None


def test_a_large_put_is_stored_in_segments_that_gc_removes_together(tmp_path: Path) -> None:
    data = random.Random(4).randbytes(7 * CHUNK_SIZE + 3)
    with EmbeddedStore(tmp_path / "store", segment_bytes=2 * CHUNK_SIZE) as store:
        cid = store.put(data)
        segments = sorted((store.root / "packs").iterdir())
        sizes = sum(path.stat().st_size for path in segments)
        assert len(segments) == 4  # 8 leaves, two to a pack, and the root node in the last
        assert sum(len(read_pack_index(str(path))) for path in segments) == 9
        assert store.get(cid) == data

        store.unpin(cid)
        report = store.gc()

        assert report.removed_blocks == 9
        assert report.freed_bytes == sizes > len(data)
        assert list((store.root / "packs").iterdir()) == []


def test_reads_survive_the_store_directory_listing_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        cid = store.put(b"content")
        fresh = EmbeddedStore(tmp_path / "store")

        def refuse(path: str) -> object:
            raise PermissionError(13, "Permission denied", path)

        monkeypatch.setattr(packs.os, "scandir", refuse)
        with pytest.raises(OSError, match="cannot list the packs"):
            fresh.get(cid)
        monkeypatch.undo()
        assert fresh.get(cid) == b"content"


def test_a_pack_found_later_but_older_by_name_serves_its_copy(tmp_path: Path) -> None:
    data = blocks(2, seed=5)
    newer, _ = written_pack(tmp_path, data)
    index = PackIndex(str(tmp_path / "packs"), str(tmp_path / "bad"))
    index.refresh()
    older = newer.with_name("0" * 16 + "-00000000.pack")
    older.write_bytes(newer.read_bytes())  # e.g. restored from a backup

    index.refresh()

    found = index.lookup(hashlib.sha256(data[0]).digest())
    assert found is not None
    assert found.pack == "0" * 16 + "-00000000"


def test_bad_marks_written_by_others_during_gc_are_taken_in(tmp_path: Path) -> None:
    data = blocks(2, seed=6)
    path, held = written_pack(tmp_path, data)
    index = PackIndex(str(tmp_path / "packs"), str(tmp_path / "bad"))
    index.refresh()
    name = path.name.removesuffix(".pack")
    # A reader in another process found the first block bad while gc held the lock.
    (tmp_path / "bad").write_text(f"{name} {held[0].offset}\n")

    index.prune_bad()

    assert index.lookup(held[0].digest) is None
    assert index.lookup(held[1].digest) is not None
    assert (tmp_path / "bad").read_text() == f"{name} {held[0].offset}\n"


class FullDisk:
    """The `os` module, except that every write fails with ENOSPC."""

    def writev(self, descriptor: int, buffers: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


def test_a_bad_mark_holds_in_this_process_when_it_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = blocks(1, seed=7)
    _, [entry] = written_pack(tmp_path, data)
    index = PackIndex(str(tmp_path / "packs"), str(tmp_path / "bad"))
    index.refresh()
    found = index.lookup(entry.digest)
    assert found is not None
    monkeypatch.setattr(packs, "os", FullDisk())

    assert index.mark_bad(found) is False
    monkeypatch.undo()

    assert index.lookup(entry.digest) is None
    index.refresh()
    assert index.lookup(entry.digest) is None


def test_an_empty_or_headless_pack_of_ours_is_collected_and_a_foreign_one_kept(
    tmp_path: Path,
) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        kept = store.put(b"kept")
        emptied = store.root / "packs" / "18000000000000ab-0123abcd.pack"
        emptied.write_bytes(b"")  # what a power cut leaves of a pack never synced
        headless = store.root / "packs" / "18000000000000ac-0123abcd.pack"
        headless.write_bytes(bytes(4096) + b"rest of a pack")
        foreign = store.root / "packs" / "backup.pack"
        foreign.write_bytes(b"")

        report = store.gc()

        assert report.freed_bytes == 4096 + len(b"rest of a pack")
        assert not emptied.exists()
        assert not headless.exists()
        assert foreign.exists()
        assert store.get(kept) == b"kept"
