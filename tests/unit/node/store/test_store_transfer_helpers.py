"""All-or-nothing file writes, the read-ahead used by both backends, and store-to-store copies."""

from __future__ import annotations

import errno
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from flare.node.store.files import read_chunks, write_file_atomically
from flare.node.store.pipeline import ReadAhead
from flare.node.store.transfer import transfer
from flare.protocol.cid import CODEC_DAG_PB, CODEC_RAW, Cid
from flare.protocol.store import StorageFullError, StoreIOError, StoreUnavailableError


def test_atomic_write_replaces_the_target_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous")

    written = write_file_atomically(target, [b"new ", b"content"])

    assert written == len(b"new content")
    assert target.read_bytes() == b"new content"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_failing_source_leaves_the_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous")

    def pieces() -> Iterator[bytes]:
        yield b"partial"
        raise ValueError("block failed verification")

    with pytest.raises(ValueError, match="verification"):
        write_file_atomically(target, pieces())

    assert target.read_bytes() == b"previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_full_disk_becomes_storage_full_and_leaves_nothing(tmp_path: Path) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"some"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageFullError, match=str(tmp_path)):
        write_file_atomically(tmp_path / "out", pieces())

    assert list(tmp_path.iterdir()) == []


def test_other_os_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreIOError, match="missing"):
        write_file_atomically(tmp_path / "missing" / "out", [b"x"])


def test_read_chunks_reads_to_the_end(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(bytes(range(256)) * 10)

    with open(source, "rb") as stream:
        chunks = list(read_chunks(stream, 1000))

    assert [len(chunk) for chunk in chunks] == [1000, 1000, 560]
    assert b"".join(chunks) == source.read_bytes()


def _leaves(count: int) -> list[Cid]:
    return [Cid.of_block(CODEC_RAW, bytes([index])) for index in range(count)]


def test_readahead_serves_hinted_blocks_in_order_from_the_pool() -> None:
    leaves = _leaves(20)
    callers: list[str] = []

    def fetch(cid: Cid) -> bytes:
        callers.append(threading.current_thread().name)
        return cid.digest

    reader = ReadAhead(fetch, workers=2, window=4)
    reader.hint(leaves)
    got = [reader.fetch(cid) for cid in leaves]
    reader.close()

    assert got == [cid.digest for cid in leaves]
    assert all(name.startswith("flare-readahead") for name in callers)


def test_readahead_falls_back_when_the_walk_goes_elsewhere() -> None:
    leaves = _leaves(6)
    reader = ReadAhead(lambda cid: cid.digest, window=3)
    reader.hint(leaves)

    assert reader.fetch(leaves[4]) == leaves[4].digest  # out of order: fetched directly
    assert reader.fetch(leaves[0]) == leaves[0].digest
    reader.close()


def test_readahead_plans_only_leading_leaves() -> None:
    node = Cid.of_block(CODEC_DAG_PB, b"node")
    leaves = _leaves(2)
    fetched: list[Cid] = []

    def fetch(cid: Cid) -> bytes:
        fetched.append(cid)
        return b""

    reader = ReadAhead(fetch, workers=1)
    reader.hint([node, *leaves])
    reader.close()

    assert fetched == []


def test_readahead_hands_errors_to_the_reader() -> None:
    leaves = _leaves(3)

    def fetch(cid: Cid) -> bytes:
        if cid == leaves[1]:
            raise LookupError(cid.text)
        return b"ok"

    reader = ReadAhead(fetch)
    reader.hint(leaves)

    assert reader.fetch(leaves[0]) == b"ok"
    with pytest.raises(LookupError, match=leaves[1].text):
        reader.fetch(leaves[1])
    reader.close()


class _Source:
    """A source store whose stream records whether it was closed."""

    location = "source"

    def __init__(self) -> None:
        self.closed = False

    def get_stream(self, cid: str, **_: object) -> Generator[bytes, None, None]:
        try:
            while True:
                yield b"x" * 1000
        finally:
            self.closed = True


class _BrokenTarget:
    location = "target"

    def put_stream(self, stream: BinaryIO, **_: object) -> str:
        stream.read(10)
        raise StoreIOError("cannot write block under target: disk went away")


def test_transfer_closes_the_source_stream_when_the_target_fails() -> None:
    source = _Source()

    with pytest.raises(StoreIOError, match="disk went away") as caught:
        transfer(Cid.of_block(CODEC_RAW, b"x").text, source, _BrokenTarget())  # type: ignore[arg-type]

    # Closed by transfer itself, not by collection: the traceback held here keeps its frame.
    assert source.closed
    assert caught.value.__traceback__ is not None


def test_a_source_error_keeps_its_type_even_when_it_is_an_os_error(tmp_path: Path) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"some"
        raise StoreUnavailableError("/ip4/127.0.0.1/tcp/5001/http", 3, "Connection refused")

    with pytest.raises(StoreUnavailableError) as caught:
        write_file_atomically(tmp_path / "out", pieces())

    assert caught.value.exit_code == 3
    assert list(tmp_path.iterdir()) == []
