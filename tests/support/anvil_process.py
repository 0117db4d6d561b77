"""A real anvil for the suites that need one: started on 127.0.0.1, stopped after.

`AnvilProcess` starts node_modules' anvil with an OS-chosen port (read back from its banner), a
project-local HOME (anvil keeps state under $HOME/.foundry) and `--prune-history`.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
STARTUP_SECONDS = 30.0


def tools_home() -> Path:
    """Where anvil may keep its state: the project's tool home, as the Makefile sets it."""
    return Path(os.environ.get("FLARE_TOOLS_HOME", ROOT / ".tools" / "home"))


class AnvilProcess:
    """One anvil child process; its stdout is drained so it never blocks on a full pipe."""

    def __init__(self, home: Path, *, kept_states: int | None = None) -> None:
        """`kept_states`: past states anvil keeps (`anvil_reorg` needs some; bare
        `--prune-history` keeps none and reorgs fail with "Required data unavailable")."""
        home.mkdir(parents=True, exist_ok=True)
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._listening = threading.Event()
        self.url = ""
        self.process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", "0", "--prune-history"]
            + ([] if kept_states is None else [str(kept_states)]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "HOME": str(home)},
        )
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        if not self._listening.wait(STARTUP_SECONDS):
            self.stop()
            raise RuntimeError("anvil did not start:\n" + "\n".join(self.lines))

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            match = re.search(r"Listening on (\S+)", line)
            if match and not self._listening.is_set():
                self.url = f"http://{match[1]}"
                self._listening.set()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._drainer.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
