"""The `flare-node` root command: wires every command group and turns domain errors into exits.

Each group lives in its own module and keeps heavy imports (torch, lerobot, web3) inside its
command functions, so `flare-node --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from flare import __version__
from flare.cli import (
    configcmd,
    contract,
    data,
    demo,
    init,
    keys,
    model,
    policy,
    register,
    run,
    status,
    store,
    train,
    vrf,
)
from flare.protocol.errors import FlareError


class FlareGroup(TyperGroup):
    """Root group: the single place where domain errors become messages and exit codes."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except FlareError as error:
            typer.echo(f"Error: {error.message}", err=True)
            if error.hint:
                typer.echo(f"  hint: {error.hint}", err=True)
            raise typer.Exit(error.exit_code) from error
        except OSError as error:
            # A file or device the command needed failed (disk full, permissions, a vanished
            # directory): say which and why instead of a traceback.
            where = f" ({error.filename})" if error.filename else ""
            typer.echo(f"Error: {error.strerror or error}{where}", err=True)
            typer.echo("  hint: check the path, its permissions and free space", err=True)
            raise typer.Exit(1) from error


app = typer.Typer(
    name="flare-node",
    cls=FlareGroup,
    help="Decentralized federated learning node for SmolVLA robot policies.",
    no_args_is_help=True,
    # Locals can hold passwords and keys: never print them in a traceback.
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flare-node {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """flare-node: train locally, share compressed updates, aggregate by VRF committee."""


app.add_typer(contract.app, name="contract")
app.add_typer(store.app, name="store")
app.add_typer(keys.app, name="keys")
app.add_typer(vrf.app, name="vrf")
app.add_typer(policy.app, name="policy")
app.add_typer(data.app, name="data")
app.add_typer(model.app, name="model")
app.add_typer(configcmd.app, name="config")
app.command("init")(init.init)
app.command("register")(register.register)
app.command("run")(run.run)
app.command("status")(status.status)
app.command("train")(train.train)
app.command("demo")(demo.demo)


def main() -> None:
    """Console-script entry point."""
    app()
