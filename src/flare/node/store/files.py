"""Moving content between ordinary files and a store without holding it in memory.

Reading cuts input into chunk-sized pieces; writing goes to a temporary file beside the target
that is renamed over it only once every byte has arrived and been verified, so an interrupted
`store get` or a full disk never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from flare.protocol.store import StorageFullError, StoreIOError
from flare.protocol.unixfs import CHUNK_SIZE

__all__ = ["io_error", "read_chunks", "write_file_atomically"]

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
    the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    written = 0
    try:
        with open(temporary, "xb") as out:
            for piece in pieces:
                out.write(piece)
                written += len(piece)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise io_error(error, str(path.parent), f"write {path.name}") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return written
