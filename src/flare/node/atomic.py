"""Atomic file and directory writes: a crash leaves the old version or the new one, never half.

Files are written under a unique temporary name in the target's own directory (a rename is
only atomic within one file system) and renamed over the target once complete. Durability is
chosen per call: `fsync=True` syncs the file before the rename and the directory after it, so
the new name survives a power cut; caches that can be rebuilt skip both.

Directories cannot be swapped in one step with the calls Python offers, so `replace_directory`
builds the new one beside the target, renames the old one aside, renames the new one in and
only then deletes the old one: until the last step the old content exists under one of two
names. It refuses to replace a non-empty directory that is not the kind the caller expects
(`train --out ~/data` must not wipe `~/data`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flare.protocol.errors import ConfigError

__all__ = [
    "NO_HARD_LINKS",
    "DirectoryNotReplaceableError",
    "StagedFile",
    "check_replaceable",
    "fsync_directory",
    "replace_directory",
    "staged_file",
    "write_file_atomically",
]

# errno values of file systems without hard links (FAT, some network and FUSE mounts)
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


class DirectoryNotReplaceableError(ConfigError, FileExistsError):
    """The target exists and is not something the caller may replace."""


def fsync_directory(directory: Path | str) -> None:
    """Make the names in `directory` durable (a rename is not until its directory is synced)."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _temporary_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")


@dataclass
class StagedFile:
    """A complete temporary file beside `target`, not yet visible under the target's name."""

    temporary: Path
    target: Path
    size: int

    def commit(self, *, exclusive: bool = False) -> None:
        """Rename the temporary file onto the target.

        With `exclusive`, an existing target is never replaced: `FileExistsError` instead. The
        final step is then a hard link, which fails atomically when the name exists; on file
        systems without hard links an existence check and a rename stand in (a small window).
        """
        if not exclusive:
            os.replace(self.temporary, self.target)
            return
        try:
            os.link(self.temporary, self.target)
        except FileExistsError:
            raise
        except OSError as error:
            if error.errno not in NO_HARD_LINKS:
                raise
            if self.target.exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(self.target)) from None
            os.rename(self.temporary, self.target)
        else:
            self.temporary.unlink()


@contextlib.contextmanager
def staged_file(
    path: Path, data: bytes | Iterable[bytes], *, mode: int | None = None, fsync: bool = True
) -> Iterator[StagedFile]:
    """Write `data` (bytes, or pieces of them) to a temporary file beside `path`.

    The caller commits it inside the block; whatever is left uncommitted is removed on exit,
    also when writing or the caller fails. `mode` sets exact permission bits (0o600 for
    secrets), whatever the umask; without it the umask applies as for any new file.
    """
    path = Path(path)
    temporary = _temporary_name(path, ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        descriptor = os.open(temporary, flags, 0o600 if mode is not None else 0o666)
        with open(descriptor, "wb") as out:
            if mode is not None:
                os.fchmod(out.fileno(), mode)
            size = 0
            for piece in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                out.write(piece)
                size += len(piece)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        yield StagedFile(temporary, path, size)
    finally:
        temporary.unlink(missing_ok=True)


def write_file_atomically(
    path: Path,
    data: bytes | Iterable[bytes],
    *,
    mode: int | None = None,
    fsync: bool = True,
    fsync_dir: bool | None = None,
    exclusive: bool = False,
) -> int:
    """Write `data` to `path` all or nothing; returns the number of bytes written.

    If `data` raises (a piece failed verification) or the disk fills, the temporary file is
    removed and `path` is left as it was. `fsync_dir` defaults to `fsync`. With `exclusive`,
    an existing `path` raises `FileExistsError` and is left untouched. OSErrors propagate:
    each caller knows what to call the failure.
    """
    path = Path(path)
    with staged_file(path, data, mode=mode, fsync=fsync) as staged:
        staged.commit(exclusive=exclusive)
    if fsync if fsync_dir is None else fsync_dir:
        fsync_directory(path.parent)
    return staged.size


def replace_directory(
    directory: Path,
    build: Callable[[Path], None],
    *,
    replaceable: Callable[[Path], bool],
    what: str,
    fsync: bool = True,
) -> Path:
    """Build a directory with `build(staging)` and put it at `directory`, replacing the old one.

    An existing `directory` is replaced only if it is empty or `replaceable(directory)` holds;
    otherwise `DirectoryNotReplaceableError`, checked before `build` runs and again before the
    swap. `what` names the expected kind in that error ("flare checkpoint"). With `fsync`,
    every file built is synced before it becomes visible. A crash before the final rename
    leaves the old directory in place, or (between the two renames) beside it as
    `.<name>.<hex>.old`; the staging directory is `.<name>.<hex>.new`.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(directory, replaceable, what)
    staging = _temporary_name(directory, ".new")
    staging.mkdir()
    aside: Path | None = None
    try:
        build(staging)
        if fsync:
            _fsync_tree(staging)
        check_replaceable(directory, replaceable, what)
        if directory.exists():
            aside = _temporary_name(directory, ".old")
            os.rename(directory, aside)
        try:
            os.rename(staging, directory)
        except OSError:
            if aside is not None:
                os.rename(aside, directory)
                aside = None
            raise
        if fsync:
            fsync_directory(directory.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return directory


def check_replaceable(directory: Path, replaceable: Callable[[Path], bool], what: str) -> None:
    """Raise `DirectoryNotReplaceableError` unless `replace_directory` may take `directory`.

    Callers with long work before the write (training) call it first, to fail in seconds.
    """
    if not directory.exists() and not directory.is_symlink():
        return
    if directory.is_symlink() or not directory.is_dir():
        raise DirectoryNotReplaceableError(
            f"{directory} exists and is not a directory; refusing to replace it",
            hint="choose another output path",
        )
    if any(directory.iterdir()) and not replaceable(directory):
        raise DirectoryNotReplaceableError(
            f"{directory} is not empty and is not a {what}; refusing to replace it",
            hint=f"choose a new or empty directory, or an existing {what} to overwrite",
        )


def _fsync_tree(root: Path) -> None:
    """Sync every file and directory under `root` (directories after their contents)."""
    for current, _, files in os.walk(root, topdown=False):
        for name in files:
            descriptor = os.open(os.path.join(current, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        fsync_directory(current)
