"""Overlapping block I/O with hashing: background reads and writes for adds, read-ahead for gets.

Hashing (in hashlib) and file or socket I/O release the GIL, so with two or more cores one
thread can hash while another reads or writes. `ImportIO` reads an import's input and writes
the blocks it produces on a background thread, leaving the caller's thread nothing but hashing;
`ReadAhead` fetches the blocks a walk will need next. Both keep a small, fixed number of blocks
in flight, which bounds memory to a few MiB whatever the file size.

`iter_file` tells its `hint` callback which blocks a node links to as soon as it decodes the
node; `ReadAhead` starts fetching the leaves among them on a small thread pool and hands each
back when the walk asks for it.
"""

from __future__ import annotations

import io
import mmap
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from flare.protocol.cid import CODEC_RAW, Cid, StorageIntegrityError
from flare.protocol.store import Progress
from flare.protocol.unixfs import CHUNK_SIZE, Block, file_size, iter_file

__all__ = ["FileReads", "ImportIO", "ReadAhead", "stream_file"]

# Buffers of finished imports, kept for the next one: faulting 4 MiB of fresh pages in costs
# about as much as hashing 3 MiB. A few are kept, for imports running side by side.
_IDLE_ARENAS: list[mmap.mmap] = []
_IDLE_LOCK = threading.Lock()
_KEEP_IDLE = 2


class ReadAhead:
    """A `fetch` wrapper that prefetches hinted blocks in order."""

    def __init__(self, fetch: Callable[[Cid], bytes], *, workers: int = 1, window: int = 8) -> None:
        self._fetch = fetch
        self._window = window
        self._planned: deque[Cid] = deque()
        self._running: deque[tuple[Cid, Future[bytes]]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flare-readahead")

    def hint(self, cids: Sequence[Cid]) -> None:
        """Children of the node just decoded; the walk reads them next, depth first.

        Only the leading raw leaves are planned: an inner node's own children come before its
        later siblings, so planning inner nodes would put the queue out of walk order.
        """
        leaves = []
        for cid in cids:
            if cid.codec != CODEC_RAW:
                break
            leaves.append(cid)
        self._planned.extendleft(reversed(leaves))
        self._fill()

    def fetch(self, cid: Cid) -> bytes:
        """The bytes of `cid`, from the prefetched queue when it is next in line."""
        if self._running and self._running[0][0] == cid:
            _, future = self._running.popleft()
            self._fill()
            return future.result()
        self._drop()
        return self._fetch(cid)

    def close(self) -> None:
        self._drop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        while self._planned and len(self._running) < self._window:
            cid = self._planned.popleft()
            self._running.append((cid, self._pool.submit(self._fetch, cid)))

    def _drop(self) -> None:
        """Forget every plan: the walk went somewhere unexpected (it never should)."""
        for _, future in self._running:
            future.cancel()
        self._running.clear()
        self._planned.clear()


def stream_file(
    root: Cid,
    fetch: Callable[[Cid], bytes],
    *,
    progress: Progress | None = None,
    max_bytes: int | None = None,
    workers: int = 1,
    window: int = 8,
) -> Generator[bytes, None, None]:
    """The verified pieces of the file under `root`, its blocks fetched ahead by `fetch`.

    The one read path of every store: they differ only in how a block is fetched.
    """
    reader = ReadAhead(fetch, workers=workers, window=window)
    try:
        for piece in iter_file(root, reader.fetch, hint=reader.hint, max_bytes=max_bytes):
            if progress is not None:
                progress(len(piece))
            yield piece
    finally:
        reader.close()


class FileReads:
    """`get`, `get_stream` and `size` of a store, from how it streams a file and fetches a block.

    A store defines `_fetch` (one block's stored bytes, unverified) and `_stream` (usually
    `stream_file` over `_fetch`, plus whatever the store does about a bad block), and may
    define `_explain`, which turns a block that failed verification into the store's own
    account of it (which file on disk, and why).
    """

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        return b"".join(self.get_stream(cid, max_bytes=max_bytes))

    def get_stream(
        self, cid: str, *, progress: Progress | None = None, max_bytes: int | None = None
    ) -> Generator[bytes, None, None]:
        return self._stream(Cid.parse(cid), progress, max_bytes)

    def size(self, cid: str) -> int:
        root = Cid.parse(cid)
        try:
            return file_size(root, self._fetch(root, root))
        except StorageIntegrityError as error:
            better = self._explain(root, error)
            if better is error:
                raise
            raise better from error

    def _explain(self, root: Cid, error: StorageIntegrityError) -> StorageIntegrityError:
        """What to raise for `error`, met reading `root`: the error itself unless the store
        knows more."""
        return error

    def _stream(
        self, root: Cid, progress: Progress | None, max_bytes: int | None
    ) -> Generator[bytes, None, None]:
        raise NotImplementedError

    def _fetch(self, root: Cid, cid: Cid) -> bytes:
        """The bytes stored for block `cid` of the file `root` (BlockNotFoundError if none)."""
        raise NotImplementedError


class ImportIO:
    """The I/O side of an import on one background thread: reads chunks ahead, writes blocks.

        with ImportIO(stream, write) as spool:
            hasher = FileHasher(spool.submit, copy_chunks=False)
            for chunk in spool.chunks():
                hasher.update(chunk)

    The caller's thread only hashes; the background thread runs, in order, the reads and the
    writes that thread asks for. Chunks are read into `depth` page-aligned buffers carved from
    one anonymous mapping, and each full chunk must reach `submit` as a block's data (a
    `FileHasher` built with `copy_chunks=False` does that): once the block is written, the same
    buffer takes the next chunk. So memory stays at `depth` chunks and no chunk is copied or
    allocated afresh. A fresh 256 KiB `bytes` per chunk page-faults on every chunk whenever
    malloc has trimmed its heap (the writer lagging under load made it do so), and a copy from
    the page cache into a buffer 16 bytes past a page boundary, where malloc puts large blocks,
    runs ~5x slower than into an aligned one on CPUs whose `rep movsb` dislikes that offset.

    `write` must be done with a block's data when it returns: the buffer is read into again.
    The first error from reading or writing is raised in the caller's thread: from `chunks`,
    at the next `submit`, or when the `with` block ends. Nothing is read or written after it.
    """

    def __init__(
        self,
        stream: BinaryIO,
        write: Callable[[Block], None],
        *,
        depth: int = 16,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, not {depth}")
        self._stream = stream
        self._write = write
        self._chunk_size = chunk_size
        self._arena = _take_arena(depth * chunk_size)
        # Tasks in the order the background thread runs them: a Block to write, a buffer to
        # read the next chunk into, or None to stop.
        self._tasks: queue.SimpleQueue[Block | memoryview | None] = queue.SimpleQueue()
        self._chunks: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._reading = 0  # buffers handed to the background thread and not yet read back
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="flare-block-io", daemon=True)
        whole = memoryview(self._arena)
        for start in range(0, depth * chunk_size, chunk_size):
            self._read_into(whole[start : start + chunk_size])

    def __enter__(self) -> ImportIO:
        self._thread.start()
        return self

    def chunks(self) -> Iterator[memoryview]:
        """Successive full chunks of the stream (the last one may be short), in lent buffers."""
        while True:
            if not self._reading:  # every buffer is out and none will come back: do not hang
                raise RuntimeError("a lent chunk was not submitted as a block's data")
            chunk = self._chunks.get()
            self._reading -= 1
            if chunk is None:
                raise self._failure()
            if chunk:
                yield chunk
            if len(chunk) < self._chunk_size:
                return

    def submit(self, block: Block) -> None:
        """Write `block`; a block holding a lent chunk gives its buffer back for the next one."""
        if self._error is not None:
            raise self._error
        self._tasks.put(block)
        data = block.data
        if isinstance(data, memoryview) and data.obj is self._arena:
            self._read_into(data)

    def __exit__(self, *exc_info: object) -> None:
        self._tasks.put(None)
        self._thread.join()
        _give_arena(self._arena)
        if self._error is not None and exc_info[0] is None:
            raise self._error

    def _read_into(self, buffer: memoryview) -> None:
        self._reading += 1
        self._tasks.put(buffer)

    def _failure(self) -> BaseException:
        if self._error is None:  # cannot happen: None is queued only after an error
            return RuntimeError("the block I/O thread stopped without an error")
        return self._error

    def _run(self) -> None:
        ended = False
        while (task := self._tasks.get()) is not None:
            if self._error is not None:
                continue  # drain: the caller is on its way out
            try:
                if isinstance(task, memoryview):
                    if not ended:
                        size = _read_full(self._stream, task)
                        ended = size < len(task)
                        self._chunks.put(task[:size])
                else:
                    self._write(task)
            except BaseException as error:  # handed to the caller's thread
                self._error = error
                self._chunks.put(None)  # wakes the caller if it waits for a chunk


def _take_arena(size: int) -> mmap.mmap:
    with _IDLE_LOCK:
        for index, arena in enumerate(_IDLE_ARENAS):
            if len(arena) == size:
                return _IDLE_ARENAS.pop(index)
    return mmap.mmap(-1, size)


def _give_arena(arena: mmap.mmap) -> None:
    with _IDLE_LOCK:
        if len(_IDLE_ARENAS) < _KEEP_IDLE:
            _IDLE_ARENAS.append(arena)


def _read_full(stream: BinaryIO, buffer: memoryview) -> int:
    """Read into `buffer` until it is full or `stream` ends; the number of bytes read.

    Uses `readinto` where the stream has one (files do, and read straight into the buffer),
    else `read` and a copy.
    """
    filled = 0
    readinto: Callable[[memoryview], int | None] | None = getattr(stream, "readinto", None)
    while filled < len(buffer):
        if readinto is not None:
            try:
                count = readinto(buffer[filled:]) or 0
            except (NotImplementedError, io.UnsupportedOperation):
                readinto = None
                continue
        else:
            data = stream.read(len(buffer) - filled)
            count = len(data) if data else 0
            buffer[filled : filled + count] = data
        if not count:
            break
        filled += count
    return filled
