"""ImportIO: the background reads and writes of an add, with recycled chunk buffers.

Small chunk sizes and depths make every buffer go round many times, so a buffer read into
again before its block was written would show up as a wrong block.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.node.store.pipeline import ImportIO
from flare.protocol.unixfs import Block, FileHasher


class Trickle(io.RawIOBase):
    """A read-only stream without `readinto`, returning at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        take = min(size if size >= 0 else len(self._data), self._step)
        piece, self._data = bytes(self._data[:take]), self._data[take:]
        return piece


def run_import(
    stream: object, write: Callable[[Block], None], *, depth: int, chunk_size: int
) -> str:
    """The root CID of `stream` imported through ImportIO, every block handed to `write`."""
    with ImportIO(stream, write, depth=depth, chunk_size=chunk_size) as spool:  # type: ignore[arg-type]
        hasher = FileHasher(spool.submit, chunk_size=chunk_size, max_links=3, copy_chunks=False)
        for chunk in spool.chunks():
            hasher.update(chunk)
        return hasher.finish().text


def import_with(stream: object, *, depth: int, chunk_size: int) -> tuple[str, dict[str, bytes]]:
    """(root CID, {CID: bytes written}) of an import through ImportIO."""
    written: dict[str, bytes] = {}

    def write(block: Block) -> None:
        written[block.cid.text] = bytes(block.data)  # copied: the buffer is read into again

    return run_import(stream, write, depth=depth, chunk_size=chunk_size), written


def reference(data: bytes, *, chunk_size: int) -> tuple[str, dict[str, bytes]]:
    blocks: dict[str, bytes] = {}
    hasher = FileHasher(
        lambda block: blocks.__setitem__(block.cid.text, bytes(block.data)),
        chunk_size=chunk_size,
        max_links=3,
    )
    hasher.update(data)
    return hasher.finish().text, blocks


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=600),
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=1, max_value=4),
    st.one_of(st.none(), st.integers(min_value=1, max_value=50)),
)
def test_imports_match_the_plain_importer(
    data: bytes, chunk_size: int, depth: int, step: int | None
) -> None:
    stream = io.BytesIO(data) if step is None else Trickle(data, step)

    got = import_with(stream, depth=depth, chunk_size=chunk_size)

    assert got == reference(data, chunk_size=chunk_size)


class Broken(io.RawIOBase):
    """Serves `good` bytes, then fails like a connection cut mid-transfer."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            raise ConnectionResetError("source went away")
        take = min(len(buffer), self._left)
        buffer[:take] = b"\x01" * take
        self._left -= take
        return take


def test_a_read_error_reaches_the_caller_with_its_own_type() -> None:
    written: list[Block] = []

    with pytest.raises(ConnectionResetError, match="went away"):
        run_import(Broken(good=50), written.append, depth=2, chunk_size=16)

    assert 1 <= len(written) <= 3  # the whole chunks before the failure, at most


def test_a_write_error_stops_the_import_and_nothing_is_written_after_it() -> None:
    attempts: list[int] = []

    def write(block: Block) -> None:
        attempts.append(len(block.data))
        if len(attempts) == 2:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        run_import(io.BytesIO(bytes(16 * 20)), write, depth=3, chunk_size=16)

    assert len(attempts) == 2


def test_chunks_not_submitted_fail_instead_of_hanging() -> None:
    taken: list[int] = []
    finished = threading.Event()

    def consume() -> None:
        try:
            with ImportIO(io.BytesIO(bytes(100)), lambda _: None, depth=2, chunk_size=10) as spool:
                for chunk in spool.chunks():  # never submitted: the buffers never come back
                    taken.append(len(chunk))
        except RuntimeError as error:
            taken.append(-1 if "not submitted" in str(error) else -2)
        finally:
            finished.set()

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()

    assert finished.wait(timeout=30)
    assert taken == [10, 10, -1]


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        ImportIO(io.BytesIO(b""), lambda _: None, depth=0)
