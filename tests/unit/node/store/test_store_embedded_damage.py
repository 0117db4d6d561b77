"""Damage says damage: a pack whose header is overwritten, that is cut short or that vanished is
reported as corruption naming the pack, found by `verify`, worked around by gc, and repaired by
adding the file again. Every case damages a real pack on disk, as a failing disk or a power cut
would, and reopens the store as a restarted node would."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import pytest

from flare.node.store import embedded
from flare.node.store.embedded import EmbeddedStore
from flare.node.store.verify import pinned_bytes, verify
from flare.protocol.cid import CODEC_RAW, Cid
from flare.protocol.store import (
    BlobStore,
    BlockNotFoundError,
    DamagedBlock,
    DamagedPin,
    GcReport,
    Progress,
    StoreCorruptionError,
    StoreDamagedError,
)
from flare.protocol.unixfs import CHUNK_SIZE


def content(chunks: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(chunks * CHUNK_SIZE)


def leaf(data: bytes, index: int) -> str:
    return Cid.of_block(CODEC_RAW, data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]).text


def pack_of(store: EmbeddedStore, cid: str) -> Path:
    found = store.locate(Cid.parse(cid))
    assert found is not None
    return found[0]


def packs(store: EmbeddedStore) -> list[Path]:
    return sorted((store.root / "packs").iterdir())


def zero_first_sector(pack: Path) -> None:
    """A bad sector at the start: the magic, the first record's header, some of its bytes."""
    with open(pack, "r+b") as file:
        file.write(bytes(4096))


def flip_magic(pack: Path) -> None:
    """One byte of the header flipped: every block is still whole."""
    with open(pack, "r+b") as file:
        first = file.read(1)
        file.seek(0)
        file.write(bytes([first[0] ^ 0xFF]))


def cut_inside(store: EmbeddedStore, block: str, keep: int = 1000) -> Path:
    """Truncate the block's pack `keep` bytes into it: what follows, the index too, is gone."""
    found = store.locate(Cid.parse(block))
    assert found is not None
    os.truncate(found[0], found[1] + keep)
    return found[0]


def reopened(store: EmbeddedStore) -> EmbeddedStore:
    return EmbeddedStore(store.root)


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def test_a_damaged_pack_header_is_reported_as_corruption_naming_the_pack(
    store: EmbeddedStore,
) -> None:
    data = content(3, seed=1)
    cid = store.put(data)
    pack = pack_of(store, cid)
    zero_first_sector(pack)

    with pytest.raises(StoreCorruptionError) as caught:
        reopened(store).get(cid)

    error = caught.value
    assert (error.block, error.root, error.packs) == (leaf(data, 0), cid, (str(pack),))
    assert not isinstance(error, BlockNotFoundError)
    assert error.exit_code == 1
    assert f"block {leaf(data, 0)} of {cid} is corrupt in the store at {store.root}" in str(error)
    assert "its header is damaged" in error.message
    assert error.hint is not None
    assert "flare-node store add FILE" in error.hint


def test_a_pack_with_only_its_header_flipped_still_serves_and_gc_rewrites_it(
    store: EmbeddedStore,
) -> None:
    data = content(2, seed=2)
    cid = store.put(data)
    pack = pack_of(store, cid)
    flip_magic(pack)
    store = reopened(store)

    assert store.get(cid) == data  # every block still hashes: nothing is lost
    report = store.verify()
    assert report.damaged_pins == ()
    assert [(p.path, p.problem, p.pins) for p in report.damaged_packs] == [
        (str(pack), "its header is damaged", ())
    ]

    store.gc()

    assert not pack.exists()
    assert reopened(store).verify().clean
    assert reopened(store).get(cid) == data


def test_a_truncated_pack_is_reported_as_corruption_naming_the_pack(
    store: EmbeddedStore,
) -> None:
    data = content(3, seed=3)
    cid = store.put(data)
    pack = cut_inside(store, leaf(data, 1))  # leaf 1 torn; leaf 2, the root and the index gone
    store = reopened(store)

    with pytest.raises(StoreCorruptionError) as caught:
        store.get(cid)

    assert caught.value.block == cid
    assert caught.value.lost
    assert f"{cid} is corrupt in the store at {store.root}: it is pinned, but missing" in str(
        caught.value
    )
    assert f"{pack} (it is cut short inside a block" in str(caught.value)
    with pytest.raises(StoreCorruptionError, match="cut short"):
        store.size(cid)
    assert not store.has(cid)  # it cannot be served: a node fetches it again
    with pytest.raises(StoreCorruptionError, match=f"pack {pack} is cut short inside it"):
        store.get(leaf(data, 1))  # the torn block itself: its record names it


def test_a_pack_cut_short_under_a_running_store_names_the_pack(store: EmbeddedStore) -> None:
    data = content(3, seed=4)
    cid = store.put(data)
    assert store.has(cid)  # the store has read the pack's index
    pack = cut_inside(store, leaf(data, 2), keep=10)

    with pytest.raises(StoreCorruptionError, match=f"pack {pack} is cut short before it"):
        store.get(cid)  # the root node, written last, is the first block read


def test_a_deleted_pack_of_pinned_content_is_reported_as_lost_not_as_never_stored(
    store: EmbeddedStore,
) -> None:
    pinned = store.put(content(2, seed=5))
    loose = store.put(content(2, seed=6), pin=False)
    pack_of(store, pinned).unlink()
    pack_of(store, loose).unlink()
    store = reopened(store)

    with pytest.raises(StoreCorruptionError) as caught:
        store.get(pinned)

    assert "it is pinned, but missing; no pack is damaged, so a pack file was deleted" in str(
        caught.value
    )
    with pytest.raises(BlockNotFoundError, match="is not in the store"):
        store.get(loose)  # unpinned content may have been collected: no damage to report


def test_a_read_error_of_the_disk_is_corruption_naming_the_pack(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = store.put(content(1, seed=7))
    pack = pack_of(store, cid)

    def failing_read(path: str, offset: int, length: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO), path)

    monkeypatch.setattr(embedded, "read_block", failing_read)

    with pytest.raises(StoreCorruptionError, match=f"reading it from pack {pack} fails"):
        store.get(cid)


def test_verify_finds_exactly_the_damaged_pins_and_packs(store: EmbeddedStore) -> None:
    header, torn, intact = content(3, seed=8), content(3, seed=9), content(2, seed=10)
    header_cid, torn_cid, intact_cid = store.put(header), store.put(torn), store.put(intact)
    loose = store.put(content(2, seed=11), pin=False)
    header_pack = pack_of(store, header_cid)
    zero_first_sector(header_pack)
    torn_pack = cut_inside(store, leaf(torn, 1))
    loose_pack = pack_of(store, loose)
    flip_magic(loose_pack)

    report = reopened(store).verify()

    assert not report.clean
    assert report.pins_checked == 3
    assert {pin.cid: [(b.cid, b.pack) for b in pin.blocks] for pin in report.damaged_pins} == {
        header_cid: [(leaf(header, 0), str(header_pack))],
        torn_cid: [(torn_cid, None)],  # the root is gone: no pack is known to have held it
    }
    assert {pack.path: pack.pins for pack in report.damaged_packs} == {
        str(header_pack): (header_cid,),
        str(torn_pack): (torn_cid,),  # its contents are not all known: it may have held it
        str(loose_pack): (),  # unreferenced, reported all the same
    }
    assert intact_cid not in str(report)


def test_verify_counts_what_it_read_and_reports_progress(store: EmbeddedStore) -> None:
    first, second = content(3, seed=12), content(2, seed=13)
    store.put(first)
    store.put(second)
    heard: list[int] = []
    progress: Progress = heard.append

    report = store.verify(progress=progress)

    assert report.clean
    assert report.blocks_checked == 3 + 1 + 2 + 1  # the leaves and a root node each
    assert sum(heard) == len(first) + len(second) == pinned_bytes(store)
    assert report.bytes_checked > sum(heard)  # the root nodes were read too


def test_verify_reads_past_a_bad_copy_to_an_intact_one(store: EmbeddedStore) -> None:
    data = content(2, seed=14)
    cid = store.put(data)
    older = pack_of(store, cid)
    copy = older.with_name(f"{int(older.name[:16], 16) + 1:016x}-00000000.pack")
    copy.write_bytes(older.read_bytes())  # two adds at once leave two copies
    found = store.locate(Cid.parse(leaf(data, 0)))
    assert found is not None
    with open(older, "r+b") as file:
        file.seek(found[1])
        file.write(bytes(100))

    report = reopened(store).verify()

    assert report.damaged_pins == ()  # the file reads whole, from the other copy
    assert [(p.path, p.problem) for p in report.damaged_packs] == [
        (str(older), "1 block(s) in it fail their hash")
    ]
    assert reopened(store).get(cid) == data


def test_gc_collects_what_is_dead_and_names_the_damaged_pins(store: EmbeddedStore) -> None:
    damaged, intact = content(3, seed=15), content(2, seed=16)
    damaged_cid, intact_cid = store.put(damaged), store.put(intact)
    loose = store.put(content(2, seed=17), pin=False)
    damaged_pack, intact_pack, loose_pack = (
        pack_of(store, cid) for cid in (damaged_cid, intact_cid, loose)
    )
    zero_first_sector(damaged_pack)  # no read has met it yet: gc finds it itself

    with pytest.raises(StoreDamagedError) as caught:
        reopened(store).gc()

    error = caught.value
    assert error.report.removed_blocks == 3  # the unpinned file
    assert not loose_pack.exists()
    assert [(pin.cid, [b.cid for b in pin.blocks]) for pin in error.damaged] == [
        (damaged_cid, [leaf(damaged, 0)])
    ]
    assert error.kept == (str(damaged_pack),)
    assert damaged_pack.exists()
    assert f"1 pinned file(s) in the store at {store.root} are damaged: {damaged_cid}" in str(error)
    assert reopened(store).get(intact_cid) == intact
    assert intact_pack.exists()


def test_gc_keeps_unreferenced_blocks_while_a_pinned_inner_node_is_lost(
    store: EmbeddedStore,
) -> None:
    data = content(3, seed=18)
    cid = store.put(data)
    loose_pack = pack_of(store, store.put(content(2, seed=19), pin=False))
    torn_pack = cut_inside(store, leaf(data, 1))
    leftover = store.root / "tmp" / "0123.pack.part"
    leftover.write_bytes(b"half a pack")

    with pytest.raises(StoreDamagedError) as caught:
        reopened(store).gc()

    assert caught.value.unknown == (cid,)  # the root is lost: what lay under it is unknown
    assert caught.value.kept == (str(torn_pack),)
    assert "nobody can tell which blocks lie under them" in str(caught.value)
    assert loose_pack.exists()  # it might hold blocks of the lost file
    assert not leftover.exists()  # provably dead all the same


def header_damage(store: EmbeddedStore, data: bytes, cid: str) -> None:
    zero_first_sector(pack_of(store, cid))


def magic_flip(store: EmbeddedStore, data: bytes, cid: str) -> None:
    flip_magic(pack_of(store, cid))


def truncation(store: EmbeddedStore, data: bytes, cid: str) -> None:
    cut_inside(store, leaf(data, 1))


def deletion(store: EmbeddedStore, data: bytes, cid: str) -> None:
    pack_of(store, cid).unlink()


@pytest.mark.parametrize("damage", [header_damage, magic_flip, truncation, deletion])
def test_adding_the_file_again_repairs_it_and_verify_is_clean_after(
    store: EmbeddedStore, damage: Any
) -> None:
    data, other = content(3, seed=20), content(2, seed=21)
    cid = store.put(data)
    other_cid = store.put(other)
    damage(store, data, cid)
    store = reopened(store)
    assert not store.verify().clean  # it also sets bad copies aside, as any read would

    assert store.put(data) == cid
    assert store.verify().damaged_pins == ()
    store.gc()  # drops what is left of the damaged pack

    after = reopened(store).verify()
    assert after.clean, after
    assert after.pins_checked == 2
    assert reopened(store).get(cid) == data
    assert reopened(store).get(other_cid) == other


class PortOnly:
    """An embedded store seen only through the BlobStore port, as an IPFS daemon is."""

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self.location = store.location
        self.put, self.put_stream, self.get = store.put, store.put_stream, store.get
        self.get_stream, self.size, self.has = store.get_stream, store.size, store.has
        self.pin, self.unpin, self.pins = store.pin, store.unpin, store.pins
        self.gc, self.close = store.gc, store.close


def test_other_stores_are_verified_by_reading_each_pinned_file(store: EmbeddedStore) -> None:
    damaged, intact = content(2, seed=22), content(1, seed=23)
    damaged_cid = store.put(damaged)
    store.put(intact)
    zero_first_sector(pack_of(store, damaged_cid))
    port = PortOnly(reopened(store))
    assert isinstance(port, BlobStore)

    report = verify(port)

    assert report.blocks_checked is None
    assert [(pin.cid, [b.cid for b in pin.blocks]) for pin in report.damaged_pins] == [
        (damaged_cid, [leaf(damaged, 0)])
    ]
    assert report.damaged_packs == ()
    assert report.bytes_checked == len(intact)  # the damaged file fails at its first leaf


def test_gc_s_error_names_a_few_damaged_pins_and_counts_the_rest() -> None:
    blocks = tuple(DamagedBlock(f"bafkblock{n}", "its bytes do not hash to it") for n in range(7))
    damaged = tuple(DamagedPin(f"bafypin{n}", blocks) for n in range(7))

    error = StoreDamagedError("the store", GcReport(removed_blocks=2, freed_bytes=10), damaged)

    assert "collected 2 block(s) no pin needs (10 bytes freed)" in error.message
    assert "7 pinned file(s) in the store at the store are damaged" in error.message
    assert "bafypin4 (" in error.message
    assert "bafypin5" not in error.message
    assert error.message.endswith("; and 2 more")
    assert "block bafkblock4: its bytes do not hash to it, and 2 more)" in error.message
