"""The embedded store's flock across processes: an add in flight holds gc off for as long as it
lives, and an add killed with SIGKILL never keeps the store locked.

The child is a real process adding from a pipe: once the test's write of more than a pipe's
worth returns, the child has read from it, so it is inside `put_stream`, holding the shared
lock, with the rest of its input still to come. With more input written than the import's
queue holds (16 chunks), part of it has reached the pack in tmp/. No timing is involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cli_process
import pytest
from flare_testing import cid_of
from kernel_locks import WAIT, wait_until_blocked

from flare.node.store.embedded import EmbeddedStore
from flare.protocol.store import GcReport
from flare.protocol.unixfs import CHUNK_SIZE

ADDER = """
import sys
from pathlib import Path
from flare.node.store.embedded import EmbeddedStore
with EmbeddedStore(Path(sys.argv[1])) as store:
    print(store.put_stream(sys.stdin.buffer), flush=True)
"""
WRITTEN = 32 * CHUNK_SIZE  # 8 MiB: the import queue (4 MiB) and the pipe cannot hold it all


def content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def adder(store_root: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child adding from its stdin, stopped in the middle: the store lock is held now."""
    child = subprocess.Popen(
        [sys.executable, "-c", ADDER, str(store_root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_process.environment(),
    )
    assert child.stdin is not None
    child.stdin.write(content(WRITTEN, seed=7))
    child.stdin.flush()  # returns only once the child has read most of it
    try:
        yield child
    finally:
        child.kill()  # also when an assertion failed: never leave it waiting
        child.wait(timeout=WAIT)
        for pipe in filter(None, (child.stdin, child.stdout, child.stderr)):
            with contextlib.suppress(OSError):  # the killed child's end of stdin is gone
                pipe.close()


def kill(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=WAIT)
    assert child.returncode == -signal.SIGKILL


def partial_packs(root: Path) -> list[Path]:
    return list((root / "tmp").iterdir())


def exclusive_lock_is_free(root: Path) -> bool:
    """What gc would get right now: the exclusive flock, asked for without waiting."""
    with open(root / "lock", "rb") as other:
        try:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


def test_an_add_killed_while_holding_the_lock_never_blocks_gc_or_the_next_add(
    store_root: Path, adder: subprocess.Popen[bytes]
) -> None:
    earlier = content(3 * CHUNK_SIZE + 5, seed=1)
    assert adder.poll() is None
    assert not exclusive_lock_is_free(store_root)  # the add in flight holds it
    with EmbeddedStore(store_root) as store:
        earlier_cid = store.put(earlier)  # adds share the lock: not held off by the other
    assert partial_packs(store_root), "the child has written part of a pack"

    kill(adder)

    assert exclusive_lock_is_free(store_root)
    left = sum(path.stat().st_size for path in partial_packs(store_root))
    with EmbeddedStore(store_root) as store:  # a restarted node opening its store
        report = store.gc()
        assert report.freed_bytes is not None
        assert report.freed_bytes >= left > 0
        assert partial_packs(store_root) == []
        assert store.pins() == [earlier_cid]
        assert store.get(earlier_cid) == earlier
        data = content(WRITTEN, seed=7)  # what the killed add was adding
        assert store.put(data) == cid_of(data)
        assert store.get(cid_of(data)) == data


def test_gc_waits_for_a_live_add_and_the_add_keeps_its_content(
    store_root: Path, adder: subprocess.Popen[bytes]
) -> None:
    reports: list[GcReport] = []
    with EmbeddedStore(store_root) as store:
        gc = threading.Thread(target=lambda: reports.append(store.gc()), name="gc", daemon=True)
        gc.start()
        wait_until_blocked(store_root / "lock", gc)
        # gc is blocked in the kernel behind the live add, which keeps its partial pack.
        assert partial_packs(store_root)
        assert adder.poll() is None

        assert adder.stdin is not None
        adder.stdin.write(b"end")
        out, err = adder.communicate(timeout=WAIT)  # the add completes, then gc runs
        gc.join(timeout=WAIT)

        assert adder.returncode == 0, err.decode()
        assert not gc.is_alive()
        assert len(reports) == 1
        data = content(WRITTEN, seed=7) + b"end"
        assert out.decode().strip() == cid_of(data)
        assert store.pins() == [cid_of(data)]
        assert store.get(cid_of(data)) == data
        assert partial_packs(store_root) == []
