"""`flare-node contract` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="contract commands.", no_args_is_help=True)
