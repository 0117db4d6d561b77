"""The embedded store when things go wrong: corrupt or truncated blocks, a full disk, a source
that dies, a process killed mid-add. Nothing half-written may ever become visible."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flare.node.store import embedded, files
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.cid import CODEC_RAW, Cid, StorageIntegrityError
from flare.protocol.store import BlockNotFoundError, StorageFullError, StoreIOError
from flare.protocol.unixfs import CHUNK_SIZE


def content(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "store") as opened:
        yield opened


def block_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "blocks").rglob("*") if path.is_file())


def leaf_path(store: EmbeddedStore, data: bytes, index: int) -> tuple[Cid, Path]:
    leaf = Cid.of_block(CODEC_RAW, data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])
    return leaf, store.block_path(leaf)


def test_a_corrupt_block_is_rejected_moved_aside_and_repaired_by_adding_again(
    store: EmbeddedStore,
) -> None:
    data = content(3 * CHUNK_SIZE, seed=7)
    cid = store.put(data)
    leaf, path = leaf_path(store, data, 1)
    path.write_bytes(b"\0" * CHUNK_SIZE)

    with pytest.raises(StorageIntegrityError) as caught:
        store.get(cid)

    assert caught.value.cid == leaf.text
    assert not path.exists()
    assert [entry.name.split(".")[0] for entry in (store.root / "corrupt").iterdir()] == [leaf.text]
    assert store.put(data) == cid
    assert store.get(cid) == data


def test_a_truncated_block_is_rejected_and_rewritten_by_the_next_add(
    store: EmbeddedStore,
) -> None:
    data = content(2 * CHUNK_SIZE + 1, seed=8)
    cid = store.put(data)
    leaf, path = leaf_path(store, data, 0)
    path.write_bytes(path.read_bytes()[:1000])

    with pytest.raises(StorageIntegrityError, match=leaf.text):
        store.get(cid)
    store.put(data)

    assert store.get(cid) == data


def test_a_truncated_inner_node_is_reported_by_has(store: EmbeddedStore) -> None:
    cid = store.put(content(2 * CHUNK_SIZE, seed=9))
    path = store.block_path(Cid.parse(cid))
    path.write_bytes(path.read_bytes()[:-3])

    with pytest.raises(StorageIntegrityError, match=cid):
        store.has(cid)


class FullDisk:
    """The `os` module, except that writes fail with ENOSPC after `allowed` of them."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    def write(self, descriptor: int, data: Any) -> int:
        if self.allowed == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.allowed -= 1
        return os.write(descriptor, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_a_full_disk_fails_cleanly_and_gc_reclaims_the_rest(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = content(6 * CHUNK_SIZE, seed=10)
    monkeypatch.setattr(embedded, "os", FullDisk(allowed=3))

    with pytest.raises(StorageFullError) as caught:
        store.put(data)
    monkeypatch.undo()

    assert str(store.root) in str(caught.value)
    assert isinstance(caught.value, OSError)
    assert list((store.root / "tmp").iterdir()) == []
    assert store.pins() == []
    written = block_files(store.root)
    assert len(written) == 3
    for path in written:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    assert store.gc().removed_blocks == 3


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


def test_an_interrupted_source_leaves_no_partial_block_and_no_pin(store: EmbeddedStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put_stream(Failing(CHUNK_SIZE * 2 + 100))  # type: ignore[arg-type]

    assert list((store.root / "tmp").iterdir()) == []
    assert store.pins() == []
    assert all(path.stat().st_size == CHUNK_SIZE for path in block_files(store.root))


def test_gc_removes_leftovers_of_a_crashed_write(store: EmbeddedStore) -> None:
    leftover = store.root / "tmp" / "bafkreiabc.0123.part"
    leftover.write_bytes(b"half a block")

    report = store.gc()

    assert not leftover.exists()
    assert report.freed_bytes == len(b"half a block")


def test_gc_refuses_to_run_when_pinned_content_is_incomplete(store: EmbeddedStore) -> None:
    data = content(2 * CHUNK_SIZE, seed=11)
    cid = store.put(data)
    store.put(b"unpinned", pin=False)
    _, path = leaf_path(store, data, 1)
    path.unlink()
    before = block_files(store.root)

    with pytest.raises(BlockNotFoundError, match=cid):
        store.gc()

    assert block_files(store.root) == before


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
    # 3 chunks, then a signal to the test, then a read that never returns: killed mid-add.
    def __init__(self):
        self.sent = 0
    def read(self, size=-1):
        if self.sent == 3:
            print("adding", flush=True)
            sys.stdin.read()
        self.sent += 1
        return bytes([self.sent]) * size

EmbeddedStore(Path(sys.argv[1])).put_stream(Source())
"""


def test_a_killed_add_leaves_only_whole_blocks_and_no_pin(tmp_path: Path) -> None:
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
        for path in block_files(root):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
        store.gc()
        assert block_files(root) == []
        assert list((root / "tmp").iterdir()) == []


def test_an_add_keeps_a_same_size_torn_block_until_a_read_moves_it_aside(
    store: EmbeddedStore,
) -> None:
    data = content(2 * CHUNK_SIZE, seed=18)
    cid = store.put(data)
    _, path = leaf_path(store, data, 0)
    path.write_bytes(b"\0" * CHUNK_SIZE)  # what a power loss can leave: right size, wrong bytes

    store.put(data)  # sizes match: the add does not re-read the block
    assert path.read_bytes() == b"\0" * CHUNK_SIZE
    with pytest.raises(StorageIntegrityError):
        store.get(cid)  # the read moves it to corrupt/ ...
    store.put(data)  # ... and the next add rewrites it

    assert store.get(cid) == data


class VanishingBlocks:
    """The `os` module, except that the first block gc unlinks was just moved away by a reader."""

    def __init__(self, corrupt: Path) -> None:
        self.corrupt = corrupt
        self.moved: list[str] = []

    def unlink(self, path: str) -> None:
        if not self.moved and "/blocks/" in path:
            self.moved.append(path)
            os.replace(path, self.corrupt / "moved-aside")
        os.unlink(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_gc_skips_a_block_that_vanishes_under_it(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(content(CHUNK_SIZE * 2 + 5, seed=19), pin=False)  # 3 leaves and a root node
    vanishing = VanishingBlocks(store.root / "corrupt")
    monkeypatch.setattr(files, "os", vanishing)  # where gc deletes files

    report = store.gc()

    assert len(vanishing.moved) == 1
    assert report.removed_blocks == 3
    assert block_files(store.root) == []


def test_gc_leaves_what_is_not_a_shard_of_blocks_alone(store: EmbeddedStore) -> None:
    kept = store.put(content(CHUNK_SIZE + 1, seed=20))
    store.put(content(CHUNK_SIZE + 2, seed=21), pin=False)
    stray = store.root / "blocks" / "NOTES.txt"
    stray.write_text("not a block")
    (store.root / "blocks" / "link").symlink_to(store.root / "pins")

    report = store.gc()

    assert report.removed_blocks == 3
    assert stray.read_text() == "not a block"
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
