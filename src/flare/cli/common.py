"""Options and output shared by every command: the node home, `--json`, the RPC URL.

The CLI is the only layer that reads the environment; these helpers are where it does so.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from flare.protocol.limits import NetworkLimits

DEFAULT_HOME = Path("~/.flare")

# `flare-node --timeout SECONDS` (or $FLARE_TIMEOUT): the deadline for this process's network
# calls. Set once by the root command before any subcommand runs.
_deadline: float | None = None


def set_deadline(seconds: float | None) -> None:
    """Record `--timeout` for `network_limits`."""
    global _deadline
    _deadline = seconds


def network_limits(configured: NetworkLimits | None = None) -> NetworkLimits:
    """The limits for this command's calls to the chain and daemons: the config's (or the
    defaults), with `--timeout` as the deadline when it was given."""
    limits = configured if configured is not None else NetworkLimits()
    return limits if _deadline is None else limits.with_deadline(_deadline)


def default_home() -> Path:
    """`$FLARE_HOME`, else `~/.flare`: where keys, state and the embedded store live."""
    return Path(os.environ.get("FLARE_HOME", str(DEFAULT_HOME))).expanduser()


HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Node home (keys, state, embedded store). Default: $FLARE_HOME or ~/.flare.",
        show_default=False,
    ),
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document for machines instead of text.")
]

RpcOption = Annotated[
    str,
    typer.Option(
        "--rpc",
        envvar="FLARE_RPC",
        help="Chain endpoint: eth-tester:// (in-process EVM, the default) or http(s)://host:port.",
    ),
]


def offline_hub() -> None:
    """flare-node never downloads from the Hugging Face Hub: fail fast instead of retrying.

    Must run before LeRobot or transformers are imported (they read it at import time).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_home(home: Path | None) -> Path:
    """The node home named on the command line, else the default."""
    return (home if home is not None else default_home()).expanduser()


def emit_json(payload: Any) -> None:
    """Print one JSON document on stdout (bytes as 0x-hex, paths as strings)."""

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return "0x" + value.hex()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")

    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=encode))


@contextlib.contextmanager
def progress_bar(
    label: str, total: int, *, enabled: bool, loss: bool = False
) -> Iterator[Callable[[int, float | None], None] | None]:
    """A transient bar on stderr (stdout stays clean for `--json`); None when disabled.

    The callback takes the number of units done and, with `loss=True`, the latest loss.
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn | str] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if loss:
        columns.append(TextColumn("loss {task.fields[loss]:.4f}"))
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total, loss=float("nan"))

        def advance(done: int, latest: float | None = None) -> None:
            if latest is None:
                progress.update(task, completed=done)
            else:
                progress.update(task, completed=done, loss=latest)

        yield advance
