"""The journal that makes a replacement of several key files all or nothing across a crash.

The crashes themselves are made in tests/unit/cli/test_init_sigkill.py (a real `init --force`
killed at each change); these check what is left to the next process: a half-done replacement
is finished by the first reader, leftovers of an undecided one are swept by the next writer,
and a journal that is not one is refused rather than obeyed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from flare.node import keys


def staged(directory: Path, target: str, data: bytes) -> str:
    """A complete staged file, named as `atomic.staged_file` names them."""
    name = f".{target}.{uuid.uuid4().hex}.tmp"
    (directory / name).write_bytes(data)
    (directory / name).chmod(0o600)
    return name


def half_done(directory: Path) -> None:
    """What a writer killed after renaming the first of two files leaves."""
    for target in ("a.json", "b.json"):
        keys.write_private_file(directory / target, b"old " + target.encode())
    first, second = (
        staged(directory, "a.json", b"new a.json"),
        staged(directory, "b.json", b"new b.json"),
    )
    journal = {"format": keys.JOURNAL_FORMAT, "staged": [first, second]}
    (directory / keys.JOURNAL_NAME).write_text(json.dumps(journal))
    (directory / first).replace(directory / "a.json")


def test_the_first_reader_finishes_a_half_done_replacement(tmp_path: Path) -> None:
    half_done(tmp_path)

    assert keys.read_private_file(tmp_path / "b.json", what="key") == b"new b.json"

    assert (tmp_path / "a.json").read_bytes() == b"new a.json"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_a_writer_finishes_a_half_done_replacement_before_its_own(tmp_path: Path) -> None:
    half_done(tmp_path)

    keys.write_private_files([(tmp_path / "c.json", b"c")])

    assert (tmp_path / "b.json").read_bytes() == b"new b.json"
    assert not (tmp_path / keys.JOURNAL_NAME).exists()


def test_leftovers_of_an_undecided_replacement_are_swept_by_the_next_write(
    tmp_path: Path,
) -> None:
    """Staged copies without a journal belong to a writer killed before it decided: the old
    files stand, and the next write of those files removes the copies."""
    keys.write_private_files([(tmp_path / "a.json", b"old a"), (tmp_path / "b.json", b"old b")])
    staged(tmp_path, "a.json", b"never used")
    staged(tmp_path, keys.JOURNAL_NAME, b"a journal cut short")
    unrelated = staged(tmp_path, "other.json", b"not ours to remove")

    assert keys.read_private_file(tmp_path / "a.json", what="key") == b"old a"
    keys.write_private_files(
        [(tmp_path / "a.json", b"new a"), (tmp_path / "b.json", b"new b")], force=True
    )

    hidden = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("."))
    assert hidden == [unrelated]
    assert (tmp_path / "a.json").read_bytes() == b"new a"


@pytest.mark.parametrize(
    "journal",
    [
        b"{cut short",
        json.dumps({"format": "something-else/1", "staged": []}).encode(),
        json.dumps(
            {"format": keys.JOURNAL_FORMAT, "staged": ["../../elsewhere/key.json"]}
        ).encode(),
        json.dumps({"format": keys.JOURNAL_FORMAT, "staged": [".a.json.tmp"]}).encode(),
    ],
)
def test_a_journal_that_is_not_one_is_refused_and_nothing_moves(
    tmp_path: Path, journal: bytes
) -> None:
    keys.write_private_file(tmp_path / "a.json", b"old")
    (tmp_path / keys.JOURNAL_NAME).write_bytes(journal)

    with pytest.raises(keys.KeyFileError, match="refusing to guess"):
        keys.read_private_file(tmp_path / "a.json", what="key")

    assert (tmp_path / "a.json").read_bytes() == b"old"
    assert (tmp_path / keys.JOURNAL_NAME).read_bytes() == journal
