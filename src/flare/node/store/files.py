"""Moving content between ordinary files and a store without holding it in memory.

Reading cuts input into chunk-sized pieces; writing goes through `flare.node.atomic`: a
temporary file beside the target, renamed over it only once every byte has arrived and been
verified, so an interrupted `store get` or a full disk never leaves a half-written file under
the requested name. `entries` and `remove_file` are what garbage collection lists and deletes
with, tolerating files that other processes remove first.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from flare.node import atomic
from flare.protocol.errors import FlareError
from flare.protocol.store import StorageFullError, StoreIOError
from flare.protocol.unixfs import CHUNK_SIZE

__all__ = [
    "entries",
    "io_error",
    "read_chunks",
    "remove_file",
    "remove_path",
    "write_file_atomically",
]

_FULL = (errno.ENOSPC, errno.EDQUOT)


def io_error(error: OSError, location: str, action: str) -> StoreIOError:
    """The FlareError for an OSError met while `action` under `location`."""
    if error.errno in _FULL:
        return StorageFullError(location, action)
    return StoreIOError(
        f"cannot {action} under {location}: {error.strerror or error}",
        hint="check that the directory exists, is writable and is on a healthy disk",
    )


def read_chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Successive reads of up to `size` bytes until end of stream."""
    while data := stream.read(size):
        yield data


def write_file_atomically(path: Path, pieces: Iterable[bytes], *, fsync: bool = True) -> int:
    """Write `pieces` to `path` all or nothing; returns the number of bytes written.

    If `pieces` raises (a block failed verification, the daemon went away) or the disk fills,
    the temporary file is removed and `path` is left as it was. An error of the source keeps
    its own type; only the writing's own OSErrors become `StoreIOError`s naming the directory.
    The file is synced, not its directory: a lost name after a power cut costs a re-fetch.
    """
    path = Path(path)
    try:
        return atomic.write_file_atomically(path, pieces, fsync=fsync, fsync_dir=False)
    except FlareError:
        raise  # the source's error (e.g. StoreUnavailableError, itself an OSError)
    except OSError as error:
        raise io_error(error, str(path.parent), f"write {path.name}") from error


def entries(directory: str, *, directories: bool) -> list[os.DirEntry[str]]:
    """The subdirectories (or the plain files) of `directory`; symlinks count as neither."""
    with os.scandir(directory) as found:
        if directories:
            return [entry for entry in found if entry.is_dir(follow_symlinks=False)]
        return [entry for entry in found if entry.is_file(follow_symlinks=False)]


def remove_file(entry: os.DirEntry[str]) -> int | None:
    """Delete a file and return its size; None when it vanished first (another process)."""
    return remove_path(entry.path)


def remove_path(path: str) -> int | None:
    """Delete the file at `path` and return its size; None when it vanished first."""
    try:
        size = os.stat(path, follow_symlinks=False).st_size
        os.unlink(path)
    except FileNotFoundError:
        return None
    return size
