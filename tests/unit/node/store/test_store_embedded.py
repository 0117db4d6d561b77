"""The embedded block store: round trips, pins across restarts, gc, streaming, concurrency.

Failure paths (corruption, full disk, crashes) are in test_store_embedded_faults.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import random
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flare_testing import cid_of

from flare.node.store.embedded import EmbeddedStore
from flare.protocol.cid import (
    UnsupportedCidError,
    encode_cid,
)
from flare.protocol.store import BlobStore, BlockNotFoundError, ContentTooLargeError, GcReport
from flare.protocol.unixfs import CHUNK_SIZE

MIB = 1 << 20


def content(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "store") as opened:
        yield opened


def test_it_is_a_blob_store(store: EmbeddedStore) -> None:
    assert isinstance(store, BlobStore)


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5])
def test_put_returns_the_ipfs_cid_and_get_returns_the_bytes(
    store: EmbeddedStore, size: int
) -> None:
    data = content(size, seed=size)

    cid = store.put(data)

    assert cid == cid_of(data)
    assert store.get(cid) == data
    assert store.size(cid) == size
    assert store.has(cid)


class ShortReads(io.RawIOBase):
    """A pipe-like stream: every read returns a few bytes fewer than asked."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        take = max(1, min(size, 1000 + len(self._data) % 7919)) if size > 0 else len(self._data)
        piece, self._data = bytes(self._data[:take]), self._data[take:]
        return piece


def test_short_reads_give_the_same_cid_and_report_progress(store: EmbeddedStore) -> None:
    data = content(2 * CHUNK_SIZE + 999, seed=1)
    seen: list[int] = []

    cid = store.put_stream(ShortReads(data), progress=seen.append)  # type: ignore[arg-type]

    assert cid == cid_of(data)
    assert sum(seen) == len(data)
    assert store.get(cid) == data


def test_pins_and_content_survive_reopening(tmp_path: Path) -> None:
    data = content(CHUNK_SIZE * 2, seed=2)
    with EmbeddedStore(tmp_path / "store") as first:
        cid = first.put(data)

    with EmbeddedStore(tmp_path / "store") as second:
        assert second.pins() == [cid]
        assert second.get(cid) == data


def test_gc_drops_unpinned_content_and_keeps_pinned(store: EmbeddedStore) -> None:
    kept = store.put(content(CHUNK_SIZE + 10, seed=3))
    dropped = store.put(content(CHUNK_SIZE * 2 + 10, seed=4), pin=False)

    report = store.gc()

    assert report.removed_blocks == 4  # three leaves and the root node of `dropped`
    assert report.freed_bytes is not None
    assert report.freed_bytes > 2 * CHUNK_SIZE
    assert store.has(kept)
    assert not store.has(dropped)
    assert store.gc().removed_blocks == 0


def test_blocks_shared_with_pinned_content_survive_gc(store: EmbeddedStore) -> None:
    shared = content(CHUNK_SIZE, seed=5)
    first = store.put(shared + b"first")
    second = store.put(shared + b"second")

    assert store.unpin(first)
    store.gc()

    assert not store.has(first)
    assert store.get(second) == shared + b"second"


def test_unpin_reports_whether_there_was_a_pin(store: EmbeddedStore) -> None:
    cid = store.put(b"pinned once")

    assert store.unpin(cid) is True
    assert store.unpin(cid) is False
    assert store.pins() == []


def test_pin_after_an_unpinned_put_protects_the_content(store: EmbeddedStore) -> None:
    cid = store.put(content(CHUNK_SIZE + 1, seed=6), pin=False)

    store.pin(cid)
    store.gc()

    assert store.pins() == [cid]
    assert store.has(cid)


def test_unknown_content_is_not_found_naming_cid_and_store(store: EmbeddedStore) -> None:
    unknown = cid_of(b"never added")

    assert not store.has(unknown)
    with pytest.raises(BlockNotFoundError) as caught:
        store.get(unknown)
    with pytest.raises(BlockNotFoundError):
        store.pin(unknown)

    assert caught.value.cid == unknown
    assert unknown in str(caught.value)
    assert str(store.root) in str(caught.value)


def test_unsupported_and_malformed_cids_are_refused(store: EmbeddedStore) -> None:
    dag_cbor = encode_cid(bytes([1, 0x71, 0x12, 0x20]) + hashlib.sha256(b"x").digest())

    with pytest.raises(UnsupportedCidError):
        store.get(dag_cbor)
    with pytest.raises(ValueError, match="not CID text"):
        store.get("not-a-cid")


class Generated(io.RawIOBase):
    """`size` deterministic bytes produced on demand, never all in memory."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._counter = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        take = min(size if size > 0 else CHUNK_SIZE, self._left)
        self._left -= take
        self._counter += 1
        return hashlib.sha256(self._counter.to_bytes(8, "big")).digest() * (take // 32) + bytes(
            take % 32
        )


def test_streaming_memory_stays_bounded(store: EmbeddedStore) -> None:
    size = 40 * MIB
    tracemalloc.start()
    try:
        cid = store.put_stream(Generated(size))  # type: ignore[arg-type]
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = sum(len(piece) for piece in store.get_stream(cid))
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total == size
    assert put_peak < 8 * MIB
    assert get_peak < 8 * MIB


def test_concurrent_adds_of_the_same_content_agree(store: EmbeddedStore) -> None:
    data = content(4 * CHUNK_SIZE + 3, seed=12)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.put(data))) for _ in range(3)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [cid_of(data)] * 3
    assert store.get(results[0]) == data


def test_fsync_mode_round_trips(tmp_path: Path) -> None:
    data = content(CHUNK_SIZE + 7, seed=13)
    with EmbeddedStore(tmp_path / "durable", fsync=True) as durable:
        cid = durable.put(data)

        assert durable.get(cid) == data


class PausingSource(io.RawIOBase):
    """Serves `data` a chunk per read and calls `pause()` once, before the chunk `at`."""

    def __init__(self, data: bytes, at: int, pause: Callable[[], None]) -> None:
        self._data = memoryview(data)
        self._reads = 0
        self._at = at
        self._pause = pause

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._reads == self._at:
            self._pause()
        self._reads += 1
        piece, self._data = bytes(self._data[:CHUNK_SIZE]), self._data[CHUNK_SIZE:]
        return piece


def test_gc_in_another_thread_waits_for_a_running_put(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = content(4 * CHUNK_SIZE, seed=14)
    real_flock = fcntl.flock
    exclusive: list[str] = []
    asked = threading.Event()

    def flock(descriptor: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX:  # gc: find out whether a running put holds it off
            try:
                real_flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                exclusive.append("granted at once")
            except BlockingIOError:
                exclusive.append("waited")
                asked.set()
                real_flock(descriptor, fcntl.LOCK_EX)
            asked.set()
            return
        real_flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", flock)  # as the store lock calls it
    reports: list[object] = []
    collector = threading.Thread(target=lambda: reports.append(store.gc()))

    def start_gc() -> None:
        collector.start()
        assert asked.wait(timeout=30)

    cid = store.put_stream(PausingSource(data, at=2, pause=start_gc))  # type: ignore[arg-type]
    collector.join()

    assert exclusive == ["waited"]
    assert reports == [GcReport(removed_blocks=0, freed_bytes=0)]
    assert store.get(cid) == data


def test_a_finished_put_leaves_other_running_puts_locked(store: EmbeddedStore) -> None:
    paused, resume = threading.Event(), threading.Event()
    results: list[str] = []

    def pause() -> None:
        paused.set()
        resume.wait(timeout=30)

    slow = PausingSource(content(3 * CHUNK_SIZE, seed=15), at=1, pause=pause)
    adder = threading.Thread(target=lambda: results.append(store.put_stream(slow)))  # type: ignore[arg-type]
    adder.start()
    try:
        assert paused.wait(timeout=30)
        store.put(content(CHUNK_SIZE + 1, seed=16))  # takes and releases the shared lock

        # What another process's gc does: open the lock file and ask for it exclusively.
        with open(store.root / "lock", "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        resume.set()
        adder.join()

    assert results == [cid_of(content(3 * CHUNK_SIZE, seed=15))]


def test_reads_over_max_bytes_are_refused_from_the_root_alone(store: EmbeddedStore) -> None:
    data = content(3 * CHUNK_SIZE, seed=17)
    cid = store.put(data)
    assert store.get(cid, max_bytes=len(data)) == data
    for leaf in (store.root / "blocks").rglob("*"):  # only the root node is left to read
        if leaf.is_file() and leaf.stat().st_size == CHUNK_SIZE:
            leaf.unlink()

    with pytest.raises(ContentTooLargeError) as caught:
        store.get(cid, max_bytes=len(data) - 1)
    with pytest.raises(ContentTooLargeError):
        next(store.get_stream(cid, max_bytes=10))

    assert (caught.value.cid, caught.value.size, caught.value.limit) == (
        cid,
        len(data),
        len(data) - 1,
    )
    assert cid in str(caught.value)
    assert str(len(data) - 1) in str(caught.value)


def test_a_single_block_over_max_bytes_is_refused(store: EmbeddedStore) -> None:
    cid = store.put(b"eleven byte")

    assert store.get(cid, max_bytes=11) == b"eleven byte"
    with pytest.raises(ContentTooLargeError, match="11 bytes"):
        store.get(cid, max_bytes=10)
