"""The embedded store's lock: shared for adds and pins, exclusive for garbage collection.

It is an `flock` on the store's `lock` file, which works between processes on one machine. A
flock belongs to an open file description, not to a process or a thread, so every acquisition
opens the file anew: with one descriptor shared by the threads of a process, a gc in one thread
would convert another thread's shared lock and run through its add, and the first add to finish
would release the lock for every other add in the process.

A crash never leaves the store locked: the kernel drops a flock when the last descriptor of its
open file description closes, which a process's death does however it dies, and the descriptor
is close-on-exec, so no child process can carry it past its parent's death. A live holder is
never overridden, as there is no staleness to guess: gc waits for the adds in flight, and what
a killed add left in tmp/ is the next gc's to remove.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from flare.node.store.files import io_error

__all__ = ["StoreLock"]


class StoreLock:
    """`with lock.held(exclusive=...)`: the store lock for the duration of one call."""

    def __init__(self, path: str, location: str) -> None:
        self._path = path
        self._location = location
        try:  # create it now, so that a store that cannot be locked fails when opened
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as error:
            raise io_error(error, location, "create the store lock") from error

    @contextlib.contextmanager
    def held(self, *, exclusive: bool) -> Iterator[None]:
        try:
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise io_error(error, self._location, "open the store lock") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(descriptor)  # releases the flock with the last reference to it
