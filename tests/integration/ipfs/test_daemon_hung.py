"""A hung daemon: a real js-ipfs daemon stopped with SIGSTOP accepts connections (the kernel
completes the handshake) and answers nothing. Calls end at their limits, naming the daemon and
the limit; once it runs again (SIGCONT) the same client carries on, nothing lost."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import pytest
from ipfs_process import StartDaemon

from flare.node.store.ipfs import IpfsStore
from flare.protocol.limits import NetworkLimits, TimeLimitError

pytestmark = [
    pytest.mark.ipfs,
    pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning"),
]


def test_a_stopped_daemon_fails_calls_at_their_limits_and_is_used_again_once_resumed(
    ipfs_workdir: Path, ipfs_daemons: StartDaemon
) -> None:
    daemon = ipfs_daemons(ipfs_workdir)
    limits = NetworkLimits(connect=1.0, idle=0.5, deadline=1.2)
    with IpfsStore(daemon.api, limits=limits, backoff=0.05) as store:
        before = store.put(b"pinned before the daemon hung")
        os.kill(daemon.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeLimitError) as reading:
                store.get(before)
            with pytest.raises(TimeLimitError) as adding:
                store.put_stream(io.BytesIO(b"x" * 300_000))
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        for error in (reading.value, adding.value):
            assert daemon.api in error.message
            assert error.limit in ("idle", "deadline")
        assert store.get(before) == b"pinned before the daemon hung"
        after = store.put(b"added once it runs again")
        assert set(store.pins()) >= {before, after}
