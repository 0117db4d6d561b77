"""A real js-ipfs daemon for the suites that need one: `tools/ipfs-daemon` on a directory.

`IpfsDaemon` starts the script (or, for the lock tests, a bare `jsipfs daemon` on the same
layout), waits for its "Daemon is ready" line and reads the RPC address from the repository's
`api` file; `kill` is the crash (SIGKILL, then reaped), `stop` the clean shutdown.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAEMON = ROOT / "tools" / "ipfs-daemon"
JSIPFS = ROOT / "node_modules" / ".bin" / "jsipfs"
READY_WITHIN = 120.0  # the first start also initialises the repository: ~5 s on a 2-core CPU
STOP_WITHIN = 30.0


class IpfsDaemon:
    """One daemon process, its output drained into `log` so it never blocks on a full pipe.

    The constructor returns once the daemon is ready, and fails the test with the daemon's
    output if it exits first or stays silent for `READY_WITHIN` seconds.
    """

    def __init__(self, workdir: Path, *, bare: bool = False) -> None:
        """`bare`: run `jsipfs daemon` on `workdir`'s repository without the script (and so
        without the flock the script leaves the daemon holding)."""
        if not JSIPFS.exists():
            pytest.fail(f"{JSIPFS.relative_to(ROOT)} is missing: run `make setup` (npm ci) first")
        self.workdir = workdir
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        command = [str(DAEMON), str(workdir)]
        if bare:
            environment = [f"IPFS_PATH={workdir / 'repo'}", f"HOME={workdir / 'home'}"]
            command = ["env", *environment, str(JSIPFS), "daemon", "--enable-preload=false"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._pump = threading.Thread(target=self._drain, name="ipfs-daemon-output", daemon=True)
        self._pump.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.api = (workdir / "repo" / "api").read_text().strip()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        return "".join(self.log)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would, then reap it: once this returns the
        process is gone and the kernel has dropped every lock it held."""
        self.process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM: the daemon shuts down cleanly (and removes its repo.lock)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reap()

    def _drain(self) -> None:
        for raw in self.process.stdout or ():
            self._lines.put(raw.decode(errors="replace"))
        self._lines.put(None)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"the IPFS daemon was not ready in {READY_WITHIN:.0f} s:\n{self.output}"
                )
            if line is None:
                pytest.fail(f"the IPFS daemon exited ({self.process.wait()}):\n{self.output}")
            self.log.append(line)
            if "Daemon is ready" in line:
                return

    def _reap(self) -> None:
        self.process.wait()
        self._pump.join(timeout=STOP_WITHIN)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_again(workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run tools/ipfs-daemon on `workdir` where it is expected to refuse (and so return)."""
    return subprocess.run(
        [str(DAEMON), str(workdir)], capture_output=True, text=True, timeout=60, check=False
    )


StartDaemon = Callable[..., IpfsDaemon]  # the `ipfs_daemons` fixture: (workdir, *, bare=False)
