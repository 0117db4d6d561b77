"""What the kernel says about file locks, for tests that must see a process blocked on one.

`/proc/locks` lists every lock held and every process waiting for one, so a test can wait for
the real condition ("this pid is blocked on that file") instead of sleeping and hoping.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

WAIT = 30.0  # bound on waiting for a condition that holds at once when things work


def waiting_for_flock(path: Path, pid: int) -> bool:
    """Whether `pid` is blocked waiting for an flock on `path` (a waiter's line reads
    `N: -> FLOCK ADVISORY WRITE PID MAJOR:MINOR:INODE START END`)."""
    stat = path.stat()
    file = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1:3] == ["->", "FLOCK"] and fields[5] == str(pid) and fields[6] == file:
            return True
    return False


def wait_until_blocked(path: Path, waiter: threading.Thread) -> None:
    """Return once the thread `waiter` (of this process) waits for an flock on `path`; fail
    if it finishes first, as it would if nothing held the lock, or after `WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while not waiting_for_flock(path, os.getpid()):
        if not waiter.is_alive():
            raise AssertionError(f"{waiter.name} went ahead: nothing held the lock on {path}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiter.name} never asked for the lock on {path}")
        time.sleep(0.01)  # a bounded poll of the kernel's own list, not a guess at timing
