"""A daemon that crashes mid-transfer and restarts.

The daemon is SIGKILLed from the transfer's own progress callback once a set number of bytes
has passed, so the crash always lands in the middle of the add or the read, whatever the
machine's speed. The client must fail with `StoreUnavailableError` naming the daemon; the
daemon must restart at once on the same repository, keep what was pinned before, and take the
interrupted content again under the same CID.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from flare_testing import cid_of
from ipfs_process import IpfsDaemon, StartDaemon

from flare.node.store.ipfs import IpfsStore
from flare.protocol.store import StoreUnavailableError
from flare.protocol.unixfs import CHUNK_SIZE

pytestmark = pytest.mark.ipfs
LARGE = 48 * CHUNK_SIZE  # 12 MiB: far more than the read-ahead window (16 blocks) in flight
KILL_AT = 4 * CHUNK_SIZE
RETRIES = 3


def content(label: str, size: int) -> bytes:
    return hashlib.shake_128(label.encode()).digest(size)


class KillAt:
    """A progress callback that SIGKILLs the daemon once `at` bytes have passed (once)."""

    def __init__(self, daemon: IpfsDaemon, at: int) -> None:
        self._daemon = daemon
        self._at = at
        self.seen = 0
        self.killed_at: int | None = None

    def __call__(self, count: int) -> None:
        self.seen += count
        if self.killed_at is None and self.seen >= self._at:
            self.killed_at = self.seen
            self._daemon.kill()  # returns once the process is gone


def client(api: str, backoff: list[float]) -> IpfsStore:
    """A store that records its retry delays instead of sleeping through them."""
    return IpfsStore(api, retries=RETRIES, fetch_timeout=5.0, sleep=backoff.append)


def assert_unavailable(error: StoreUnavailableError, api: str) -> None:
    assert error.address == api
    assert api in error.message
    assert error.attempts == RETRIES  # every retry met the dead daemon, none hung
    assert error.hint is not None
    assert "start it" in error.hint


def test_a_daemon_killed_during_an_add_restarts_and_takes_the_content_again(
    ipfs_workdir: Path, ipfs_daemons: StartDaemon
) -> None:
    earlier, large = content("pinned earlier", 3 * CHUNK_SIZE // 2), content("large", LARGE)
    daemon = ipfs_daemons(ipfs_workdir)
    backoff: list[float] = []
    kill = KillAt(daemon, KILL_AT)
    with client(daemon.api, backoff) as store:
        earlier_cid = store.put(earlier)

        with pytest.raises(StoreUnavailableError) as raised:
            store.put_stream(io.BytesIO(large), progress=kill)

    assert kill.killed_at is not None
    assert kill.killed_at < LARGE  # it died mid-add
    assert_unavailable(raised.value, daemon.api)
    assert len(backoff) == RETRIES - 1

    restarted = ipfs_daemons(ipfs_workdir)
    with client(restarted.api, []) as store:
        assert earlier_cid in store.pins()
        assert store.get(earlier_cid) == earlier
        assert cid_of(large) not in store.pins()  # the interrupted add pinned nothing

        assert store.put_stream(io.BytesIO(large)) == cid_of(large)
        assert set(store.pins()) >= {earlier_cid, cid_of(large)}


def test_a_daemon_killed_during_a_read_restarts_with_the_content_pinned(
    ipfs_workdir: Path, ipfs_daemons: StartDaemon
) -> None:
    large = content("large", LARGE)
    daemon = ipfs_daemons(ipfs_workdir)
    backoff: list[float] = []
    kill = KillAt(daemon, KILL_AT)
    with client(daemon.api, backoff) as store:
        cid = store.put(large)

        with pytest.raises(StoreUnavailableError) as raised:
            b"".join(store.get_stream(cid, progress=kill))

    assert kill.killed_at is not None
    assert kill.seen < LARGE  # it died mid-read: not every byte came out
    assert_unavailable(raised.value, daemon.api)

    restarted = ipfs_daemons(ipfs_workdir)
    with client(restarted.api, []) as store:
        assert cid in store.pins()
        assert store.get(cid) == large
