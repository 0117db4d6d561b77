"""`flare-node` as a real process, for behaviour that belongs to the process, not the command.

What reaches a closed pipe, what Python prints at exit, whether stdin is a terminal: those are
seen only by starting the console script the package installs, in an environment that
inherits no FLARE_* setting.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FlareNode:
    """How to start `flare-node` in a child process: the argv prefix and the environment."""

    argv: list[str]
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]


def flare_node(home: Path) -> FlareNode:
    """The installed console script (else its entry point under this interpreter), with
    `home` as its node home."""
    script = Path(sys.executable).with_name("flare-node")
    argv = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from flare.cli.app import main; main()"]
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLARE_")}
    env["FLARE_HOME"] = str(home)
    return FlareNode(argv, env)
