"""Overlapping block I/O with hashing: write-behind for adds, read-ahead for gets.

Hashing (in hashlib) and file or socket I/O release the GIL, so on two cores one thread can
hash while another reads or writes. `WriteBehind` writes the blocks an import produces on a
background thread; `ReadAhead` fetches the blocks a walk will need next. Both keep a small,
fixed number of blocks in flight, which bounds memory to a few MiB whatever the file size.

`iter_file` tells its `hint` callback which blocks a node links to as soon as it decodes the
node; `ReadAhead` starts fetching the leaves among them on a small thread pool and hands each
back when the walk asks for it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from flare.protocol.cid import CODEC_RAW, Cid
from flare.protocol.unixfs import Block

__all__ = ["ReadAhead", "WriteBehind"]


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


class WriteBehind:
    """Hands blocks to `write` on a background thread, at most `depth` of them waiting.

    The first error from `write` is raised in the producing thread: at its next `submit`, or
    when the `with` block ends.
    """

    def __init__(self, write: Callable[[Block], None], *, depth: int = 16) -> None:
        self._write = write
        self._queue: queue.Queue[Block | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="flare-block-writer", daemon=True)

    def __enter__(self) -> WriteBehind:
        self._thread.start()
        return self

    def submit(self, block: Block) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(block)
                except BaseException as error:  # handed to the producing thread
                    self._error = error
