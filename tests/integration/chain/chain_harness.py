"""The chains the ledger conformance suite runs on: the in-process EVM and a real anvil.

`AnvilProcess` starts node_modules' anvil on 127.0.0.1 with an OS-chosen port (read back from
its banner), a project-local HOME (anvil keeps state under $HOME/.foundry) and
`--prune-history`, and stops it. Kept out of conftest.py so test modules can import it by a
unique name.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from flare.chain.connect import connect
from flare.chain.deploy import Deployment
from flare.chain.devchain import advance_time, dev_account_key
from flare.chain.ledger import Web3Ledger, open_ledger

ROOT = Path(__file__).resolve().parents[3]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
STARTUP_SECONDS = 30.0

SPEC_HASH = bytes.fromhex("5e" * 32)
GENESIS_CID = bytes.fromhex("01551220") + bytes(range(32))


class AnvilProcess:
    """One anvil child process; its stdout is drained so it never blocks on a full pipe."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._listening = threading.Event()
        self.url = ""
        self.process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", "0", "--prune-history"],
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


@dataclass
class Chain:
    """A chain under test: its URL, its dev keys and its clock."""

    kind: str
    url: str
    w3: Web3 = field(init=False)

    def __post_init__(self) -> None:
        self.w3 = connect(self.url)

    def key(self, index: int) -> bytes:
        return dev_account_key(self.w3.eth.chain_id, index)

    def advance(self, seconds: int) -> int:
        return advance_time(self.w3, seconds)


@dataclass
class Deployed:
    """A fresh FlareRounds: the owner's ledger and one ledger per dev account."""

    chain: Chain
    record: Deployment
    owner: Web3Ledger
    ledgers: dict[int, Web3Ledger] = field(default_factory=dict)

    def node(self, index: int) -> Web3Ledger:
        """The ledger of dev account `index` (0 is the owner)."""
        if index not in self.ledgers:
            self.ledgers[index] = open_ledger(
                self.chain.w3, self.record.address, private_key=self.chain.key(index)
            )
        return self.ledgers[index]


DeployFactory = Callable[..., Deployed]
