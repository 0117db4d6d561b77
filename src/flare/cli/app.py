"""The `flare-node` root command: wires every command group and turns domain errors into exits.

Each group lives in its own module and keeps heavy imports (torch, lerobot, web3) inside its
command functions, so `flare-node --help` stays fast.
"""

from __future__ import annotations

from typing import Any, NoReturn

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
from flare.cli.common import emit_json, set_deadline
from flare.protocol.errors import FlareError

_ARGV_KEY = "flare.argv"


class FlareGroup(TyperGroup):
    """Root group: the single place where domain errors become messages and exit codes.

    A `FlareError` exits with its `exit_code` (1 integrity or not found, 2 usage, 3 unavailable),
    an `OSError` with 1. When the command line asks for `--json` (before any `--`) and the
    command takes it, a failure also prints one JSON document on stdout,
    `{"error": {"type", "message", "hint", "exit_code"}}`, with the same exit code; this covers
    usage errors (bad or missing options, exit 2) too. The human message still goes to stderr,
    so stdout holds only that document and a person watching still reads the error.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        # Remember the whole command line: the group's parser splits it before `invoke`.
        ctx.meta[_ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except FlareError as error:
            self._fail(ctx, error, error.message, error.hint, error.exit_code)
        except OSError as error:
            # A file or device the command needed failed (disk full, permissions, a vanished
            # directory): say which and why instead of a traceback.
            where = f" ({error.filename})" if error.filename else ""
            message = f"{error.strerror or error}{where}"
            self._fail(ctx, error, message, "check the path, its permissions and free space", 1)
        except typer.TyperException as error:
            # Click's usage errors (a bad or missing option, exit 2) keep their usual text
            # unless the caller asked for JSON.
            if not self._wants_json(ctx):
                raise
            usage_ctx = getattr(error, "ctx", None)
            hint = f"try '{usage_ctx.command_path} --help'" if usage_ctx is not None else None
            self._fail(ctx, error, error.format_message(), hint, error.exit_code)

    def _fail(
        self, ctx: typer.Context, error: Exception, message: str, hint: str | None, code: int
    ) -> NoReturn:
        typer.echo(f"Error: {message}", err=True)
        if hint:
            typer.echo(f"  hint: {hint}", err=True)
        if self._wants_json(ctx):
            emit_json(
                {
                    "error": {
                        "type": type(error).__name__,
                        "message": message,
                        "hint": hint,
                        "exit_code": code,
                    }
                }
            )
        raise typer.Exit(code) from error

    def _wants_json(self, ctx: typer.Context) -> bool:
        """Whether `--json` comes before any `--` and the command it names takes it."""
        args: list[str] = ctx.meta.get(_ARGV_KEY, [])
        command: Any = self
        while args and isinstance(command, TyperGroup) and args[0] in command.commands:
            command, args = command.commands[args[0]], args[1:]
        if "--" in args:
            args = args[: args.index("--")]
        if "--json" not in args:
            return False
        if isinstance(command, TyperGroup):
            return True  # an unknown subcommand: answer in the form the caller asked for
        return any("--json" in getattr(param, "opts", ()) for param in command.params)


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
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        envvar="FLARE_TIMEOUT",
        min=0.001,
        metavar="SECONDS",
        help="The most one call to the chain or an IPFS daemon may take, retries included "
        "(default 300; `run` reads [network] in its config).",
        show_default=False,
    ),
) -> None:
    """flare-node: train locally, share compressed updates, aggregate by VRF committee."""
    set_deadline(timeout)
    ctx.call_on_close(lambda: set_deadline(None))  # in-process callers (tests) start afresh


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
