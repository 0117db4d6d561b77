"""`flare-node init`."""

from __future__ import annotations

import typer


def init() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=1)
