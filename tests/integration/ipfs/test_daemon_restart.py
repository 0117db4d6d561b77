"""`tools/ipfs-daemon` after a crash: a dead daemon's repo.lock never blocks a restart, a live
daemon's lock is never broken.

js-ipfs would refuse to start for up to 20 s after a SIGKILL (its repo.lock counts as stale only
once its mtime is 20 s old); the script decides from the flock the daemon holds on
DIR/daemon.lock instead, which the kernel drops the moment the process dies.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ipfs_process import StartDaemon, start_again

from flare.node.store.ipfs import IpfsStore

pytestmark = pytest.mark.ipfs

JSIPFS_STALE_SECONDS = 20.0  # ipfs-repo's STALE_TIME for repo.lock
REFUSED = 4  # tools/ipfs-daemon's exit code for a directory in use


def test_a_sigkilled_daemon_restarts_at_once_with_its_content(
    ipfs_workdir: Path, ipfs_daemons: StartDaemon
) -> None:
    daemon = ipfs_daemons(ipfs_workdir)
    with IpfsStore(daemon.api) as store:
        cid = store.put(b"pinned before the crash")
    daemon.kill()
    lock = ipfs_workdir / "repo" / "repo.lock"
    # The crash left js-ipfs's lock behind, fresh enough that js-ipfs alone would refuse.
    assert lock.is_dir()
    assert time.time() - lock.stat().st_mtime < JSIPFS_STALE_SECONDS

    restarted = ipfs_daemons(ipfs_workdir)
    assert "removed the stale" in restarted.output
    with IpfsStore(restarted.api) as store:
        assert cid in store.pins()
        assert store.get(cid) == b"pinned before the crash"
    assert (ipfs_workdir / "daemon.lock").read_text().strip() == str(restarted.pid)
    restarted.stop()
    assert not lock.exists()  # a clean stop releases it; nothing of ours is left behind


def test_a_second_start_beside_a_live_daemon_is_refused_and_breaks_nothing(
    ipfs_workdir: Path, ipfs_daemons: StartDaemon
) -> None:
    daemon = ipfs_daemons(ipfs_workdir)

    second = start_again(ipfs_workdir)

    assert second.returncode == REFUSED
    assert f"pid {daemon.pid}" in second.stderr
    assert str(ipfs_workdir) in second.stderr
    assert "already running" in second.stderr
    # The live daemon keeps its lock and its address file, and still serves.
    assert (ipfs_workdir / "repo" / "repo.lock").is_dir()
    assert (ipfs_workdir / "repo" / "api").read_text().strip() == daemon.api
    assert daemon.process.poll() is None
    with IpfsStore(daemon.api) as store:
        cid = store.put(b"still serving")
        assert store.get(cid) == b"still serving"


def test_a_live_daemon_started_without_the_script_is_not_broken_either(
    ipfs_workdir: Path, ipfs_daemons: StartDaemon
) -> None:
    # No flock on daemon.lock here: only the repository's own locks say it is in use.
    daemon = ipfs_daemons(ipfs_workdir, bare=True)

    second = start_again(ipfs_workdir)

    assert second.returncode == REFUSED
    assert f"process {daemon.pid}" in second.stderr
    assert str(ipfs_workdir / "repo") in second.stderr
    assert (ipfs_workdir / "repo" / "repo.lock").is_dir()
    with IpfsStore(daemon.api) as store:
        cid = store.put(b"still serving")
        assert store.get(cid) == b"still serving"
