"""Atomic writes: the old version or the new one under the name, never half, never a leftover."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flare.node import atomic
from flare.node.atomic import (
    DirectoryNotReplaceableError,
    replace_directory,
    staged_file,
    write_file_atomically,
)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- files -------------------------------------------------------------------------------


def test_write_replaces_the_file_and_returns_the_size(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")

    written = write_file_atomically(target, [b"new ", b"content"])

    assert written == len(b"new content")
    assert target.read_bytes() == b"new content"
    assert names(tmp_path) == ["state.bin"]


def test_a_failing_source_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")

    def pieces() -> Iterator[bytes]:
        yield b"half of it"
        raise ValueError("a block failed verification")

    with pytest.raises(ValueError, match="verification"):
        write_file_atomically(target, pieces())

    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["state.bin"]


def test_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_file_atomically(tmp_path / "secret", b"s", mode=0o600)
        write_file_atomically(tmp_path / "open", b"o")
    finally:
        os.umask(old)
    os.umask(0o077)
    try:
        write_file_atomically(tmp_path / "shared", b"x", mode=0o644)
    finally:
        os.umask(old)

    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "open").stat().st_mode & 0o777 == 0o666  # no mode: the umask decides
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o644


def test_exclusive_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_file_atomically(target, b"first", exclusive=True)

    with pytest.raises(FileExistsError):
        write_file_atomically(target, b"second", exclusive=True)

    assert target.read_bytes() == b"first"
    assert names(tmp_path) == ["key"]


def test_exclusive_works_where_hard_links_are_not_supported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "key"

    write_file_atomically(target, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_file_atomically(target, b"second", exclusive=True)

    assert target.read_bytes() == b"first"
    assert names(tmp_path) == ["key"]


def test_fsync_of_file_and_directory_is_chosen_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append("fsync") or real_fsync(fd))
    directories: list[Path] = []
    monkeypatch.setattr(atomic, "fsync_directory", lambda d: directories.append(Path(d)))

    write_file_atomically(tmp_path / "cache", b"c", fsync=False)
    assert (synced, directories) == ([], [])
    write_file_atomically(tmp_path / "durable", b"d")
    assert (synced, directories) == (["fsync"], [tmp_path])
    write_file_atomically(tmp_path / "file-only", b"f", fsync_dir=False)
    assert (synced, directories) == (["fsync", "fsync"], [tmp_path])


def test_two_staged_files_are_committed_together(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"

    with staged_file(first, b"A") as one, staged_file(second, b"B") as two:
        assert names(tmp_path) == sorted([one.temporary.name, two.temporary.name])
        one.commit()
        two.commit()

    assert (first.read_bytes(), second.read_bytes()) == (b"A", b"B")
    assert names(tmp_path) == ["a", "b"]


def test_an_uncommitted_staged_file_disappears(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_file(tmp_path / "a", b"A"):
        raise RuntimeError("the second file failed")

    assert names(tmp_path) == []


# --- directories -------------------------------------------------------------------------


def is_checkpoint(directory: Path) -> bool:
    return (directory / "manifest").is_file()


def build_checkpoint(content: str) -> Callable[[Path], None]:
    def build(staging: Path) -> None:
        (staging / "manifest").write_text(content)
        (staging / "sub").mkdir()
        (staging / "sub" / "weights").write_text(content * 3)

    return build


def test_replace_directory_builds_a_new_one(tmp_path: Path) -> None:
    target = tmp_path / "out" / "checkpoint"

    result = replace_directory(
        target, build_checkpoint("v1"), replaceable=is_checkpoint, what="checkpoint"
    )

    assert result == target
    assert (target / "sub" / "weights").read_text() == "v1v1v1"
    assert names(target.parent) == ["checkpoint"]


def test_replace_directory_swaps_an_old_checkpoint_and_leaves_nothing_beside(
    tmp_path: Path,
) -> None:
    target = tmp_path / "checkpoint"
    replace_directory(target, build_checkpoint("v1"), replaceable=is_checkpoint, what="checkpoint")

    replace_directory(target, build_checkpoint("v2"), replaceable=is_checkpoint, what="checkpoint")

    assert (target / "manifest").read_text() == "v2"
    assert names(target) == ["manifest", "sub"]
    assert names(tmp_path) == ["checkpoint"]


def test_replace_directory_takes_an_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()

    replace_directory(target, build_checkpoint("v1"), replaceable=is_checkpoint, what="checkpoint")

    assert (target / "manifest").read_text() == "v1"


def test_a_directory_of_another_kind_is_never_touched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "robot.parquet").write_text("precious")
    built: list[Path] = []

    with pytest.raises(DirectoryNotReplaceableError, match="not a checkpoint") as caught:
        replace_directory(data, built.append, replaceable=is_checkpoint, what="checkpoint")

    assert built == []  # refused before any work
    assert caught.value.hint is not None
    assert names(data) == ["robot.parquet"]
    assert names(tmp_path) == ["data"]


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("a file")

    with pytest.raises(DirectoryNotReplaceableError, match="not a directory"):
        replace_directory(target, build_checkpoint("v"), replaceable=is_checkpoint, what="x")

    assert target.read_text() == "a file"


def test_a_failed_build_keeps_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint"
    replace_directory(target, build_checkpoint("v1"), replaceable=is_checkpoint, what="checkpoint")

    def crash(staging: Path) -> None:
        (staging / "manifest").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        replace_directory(target, crash, replaceable=is_checkpoint, what="checkpoint")

    assert (target / "manifest").read_text() == "v1"
    assert names(tmp_path) == ["checkpoint"]


def test_a_failed_final_rename_puts_the_old_directory_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "checkpoint"
    replace_directory(target, build_checkpoint("v1"), replaceable=is_checkpoint, what="checkpoint")
    real_rename = os.rename

    def rename(source: str | Path, destination: str | Path) -> None:
        if Path(source).name.endswith(".new"):
            raise OSError(errno.EIO, "Input/output error")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)

    with pytest.raises(OSError, match="Input/output"):
        replace_directory(
            target, build_checkpoint("v2"), replaceable=is_checkpoint, what="checkpoint"
        )

    assert (target / "manifest").read_text() == "v1"
    assert names(tmp_path) == ["checkpoint"]
