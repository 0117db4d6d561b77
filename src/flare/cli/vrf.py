"""`flare-node vrf` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="vrf commands.", no_args_is_help=True)
