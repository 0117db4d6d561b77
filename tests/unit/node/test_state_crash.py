"""The node state's locks across processes: a live node's are respected, a killed one's are gone.

The child is a real process that begins a run (taking run.lock), records a step, and stops in the
middle of a write transaction (holding SQLite's write lock, its insert not committed). It says
so on stdout and waits on its stdin, so the test acts while both locks are held, with no timing.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cli_process
import pytest
from kernel_locks import WAIT

from flare.node.state import STATE_FILE, NodeState, StateStoreError

NODE = """
import sqlite3, sys
from pathlib import Path
from flare.node.state import NodeState
state = NodeState(Path(sys.argv[1]))
state.begin_run()
state.put(7, "train", {"cid": "committed"})
writer = sqlite3.connect(state.path, isolation_level=None)
writer.execute("BEGIN IMMEDIATE")
writer.execute("INSERT INTO steps VALUES (7, 'submit', '{}', 0)")
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A node process in the middle of a write, holding run.lock and SQLite's write lock."""
    child = subprocess.Popen(
        [sys.executable, "-c", NODE, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_process.environment(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # "" if it died first
        assert line == "holding\n", child.communicate(timeout=WAIT)[1]
        yield child
    finally:
        child.kill()
        child.communicate(timeout=WAIT)


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=WAIT)
    assert child.returncode == -signal.SIGKILL


def write_lock_is_free(directory: Path) -> bool:
    """Whether a writer would get SQLite's write lock right now, without waiting for it."""
    probe = sqlite3.connect(directory / STATE_FILE, isolation_level=None, timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return False
    finally:
        probe.close()  # rolls back the empty transaction if it began
    return True


def test_a_live_node_keeps_its_locks_while_others_read(
    tmp_path: Path, node: subprocess.Popen[str]
) -> None:
    assert not write_lock_is_free(tmp_path)
    with NodeState(tmp_path) as state:  # what `flare-node status` opens beside a running node
        assert state.get(7, "train") == {"cid": "committed"}
        assert state.get(7, "submit") is None  # not committed: not visible

        with pytest.raises(StateStoreError) as raised:
            state.begin_run()  # a second `flare-node run` on the same home

        assert f"pid {node.pid}" in raised.value.message
        assert str(tmp_path) in raised.value.message
        assert raised.value.hint is not None
        assert f"kill {node.pid}" in raised.value.hint
        assert node.poll() is None  # refused, not broken: the node runs on
        assert not write_lock_is_free(tmp_path)


def test_a_killed_node_leaves_no_lock_and_its_committed_steps(
    tmp_path: Path, node: subprocess.Popen[str]
) -> None:
    kill(node)

    assert write_lock_is_free(tmp_path)
    with NodeState(tmp_path) as state:
        assert state.begin_run() == 7  # its run never ended: resume the round it was in
        assert state.get(7, "train") == {"cid": "committed"}
        assert state.get(7, "submit") is None  # the transaction it died in is rolled back
        state.put(7, "submit", {"tx": "0x01"})
        state.end_run()
    with NodeState(tmp_path) as state:
        assert state.get(7, "submit") == {"tx": "0x01"}
        assert state.begin_run() is None  # that run ended cleanly


def test_a_run_holds_the_node_until_it_ends_is_closed_or_is_dropped(tmp_path: Path) -> None:
    """The same rule inside one process (the CLI tests run nodes in-process, one after the
    other): whichever way a run lets go of its state, the next one may begin."""
    first, second = NodeState(tmp_path), NodeState(tmp_path)
    try:
        first.begin_run()
        with pytest.raises(StateStoreError, match="another flare-node process"):
            second.begin_run()
        first.end_run()
        assert second.begin_run() is None  # the first ended cleanly
        second.close()  # closed without end_run: stopped uncleanly, but gone
        assert first.begin_run() is None  # nothing was recorded in a round yet
        del first  # dropped without closing
        with NodeState(tmp_path) as third:
            assert third.begin_run() is None
            assert (tmp_path / "run.lock").read_text() == f"{os.getpid()}\n"
        assert (tmp_path / "run.lock").read_text() == ""  # nobody runs the node now
    finally:
        second.close()
