"""The key directory's flock across processes: a replacement in progress is waited for, never
read half done, and one killed with SIGKILL never keeps the directory locked.

The child replaces two key files (`write_private_files`, as `flare-node init --force` does) and
stops just before renaming the second, with the first already renamed and the journal written:
the directory holds a mix of old and new keys, and the lock. It says so on stdout and waits on
its stdin, so the test acts at exactly that point, with no timing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cli_process
import pytest
from kernel_locks import WAIT, wait_until_blocked

from flare.node import keys

WRITER = """
import os, sys
from pathlib import Path
from flare.node import keys
directory = Path(sys.argv[1])
rename = os.replace
def replace(source, target):
    if Path(target).name == "b.json":  # a.json is renamed already
        print("holding", flush=True)
        sys.stdin.read()
    rename(source, target)
os.replace = replace
keys.write_private_files(
    [(directory / "a.json", b"new a"), (directory / "b.json", b"new b")], force=True
)
"""


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A replacement of a.json and b.json stopped halfway, holding the directory lock."""
    for name in ("a.json", "b.json"):
        keys.write_private_file(tmp_path / name, b"old " + name.encode())
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_process.environment(),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "holding\n", child.communicate(timeout=WAIT)[1]
        assert (tmp_path / "a.json").read_bytes() == b"new a"  # the mix on disk
        assert (tmp_path / "b.json").read_bytes() == b"old b.json"
        yield child
    finally:
        child.kill()
        child.communicate(timeout=WAIT)


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=WAIT)
    assert child.returncode == -signal.SIGKILL


def leftovers(directory: Path) -> list[str]:
    """Journal and staged files: whatever is neither a key nor a backup of one."""
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


def test_a_reader_waits_for_a_live_replacement_and_never_sees_it_half_done(
    tmp_path: Path, writer: subprocess.Popen[str]
) -> None:
    read: list[bytes] = []
    reader = threading.Thread(
        target=lambda: read.append(keys.read_private_file(tmp_path / "b.json", what="key")),
        name="reader",
        daemon=True,
    )
    reader.start()
    wait_until_blocked(tmp_path, reader)  # on the directory's flock, behind the writer
    assert writer.poll() is None
    assert (tmp_path / keys.JOURNAL_NAME).exists()  # the live writer's change is left alone

    kill(writer)
    reader.join(timeout=WAIT)

    assert not reader.is_alive()
    assert read == [b"new b"]  # the killed writer's decided change, finished by the reader
    assert (tmp_path / "a.json").read_bytes() == b"new a"
    assert leftovers(tmp_path) == []


def test_a_replacement_killed_while_holding_the_lock_never_blocks_the_next_writer(
    tmp_path: Path, writer: subprocess.Popen[str]
) -> None:
    kill(writer)

    keys.write_private_file(tmp_path / "c.json", b"c")  # takes the lock at once

    assert (tmp_path / "a.json").read_bytes() == b"new a"
    assert (tmp_path / "b.json").read_bytes() == b"new b"
    assert (tmp_path / "c.json").read_bytes() == b"c"
    assert leftovers(tmp_path) == []
