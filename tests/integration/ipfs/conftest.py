"""A real IPFS daemon for the integration tests: js-ipfs from node_modules, on 127.0.0.1.

`tools/ipfs-daemon` initialises a private repository (no bootstrap peers, every listener on a
free loopback port) and runs the daemon; the fixture waits for its "Daemon is ready" line, reads
the RPC address from the repository's `api` file, and stops the daemon after the session.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DAEMON = ROOT / "tools" / "ipfs-daemon"
JSIPFS = ROOT / "node_modules" / ".bin" / "jsipfs"
READY_WITHIN = 120.0  # the first start also initialises the repository: ~5 s on a 2-core CPU


@pytest.fixture(scope="session")
def ipfs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """RPC multiaddr (/ip4/127.0.0.1/tcp/N/http) of a daemon running for this session."""
    if not JSIPFS.exists():
        pytest.fail(f"{JSIPFS.relative_to(ROOT)} is missing: run `make setup` (npm ci) first")
    workdir = tmp_path_factory.mktemp("ipfs-daemon")
    process = subprocess.Popen(
        [str(DAEMON), str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        for raw in process.stdout or ():
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    pumping = threading.Thread(target=pump, name="ipfs-daemon-output", daemon=True)
    pumping.start()
    try:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"the IPFS daemon was not ready in {READY_WITHIN:.0f} s:\n{''.join(log)}"
                )
            if line is None:
                pytest.fail(f"the IPFS daemon exited ({process.wait()}):\n{''.join(log)}")
            log.append(line)
            if "Daemon is ready" in line:
                break
        yield (workdir / "repo" / "api").read_text().strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        pumping.join(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
