"""The `flare-node` root command: wires every command group and turns domain errors into exits.

Each group lives in its own module and keeps heavy imports (torch, lerobot, web3) inside its
command functions, so `flare-node --help` stays fast.
"""

from __future__ import annotations

import errno
import os
import select
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn

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

# When the reader of the output leaves early (`flare-node ... | head`), git and coreutils die
# of SIGPIPE, which a shell reports as 128 + 13. flare-node exits with that same status, quietly:
# the output was cut short, so not 0, but nothing went wrong that anyone needs to read about.
# It exits rather than dying of the signal so that cleanups (locks, temporary files) still run.
EXIT_BROKEN_PIPE = 141


class FlareGroup(TyperGroup):
    """Root group: the single place where domain errors become messages and exit codes.

    A `FlareError` exits with its `exit_code` (1 integrity or not found, 2 usage, 3 unavailable),
    an `OSError` with 1. When the command line asks for `--json` (before any `--`) and the
    command takes it, a failure also prints one JSON document on stdout,
    `{"error": {"type", "message", "hint", "exit_code"}}`, with the same exit code; this covers
    usage errors (bad or missing options, exit 2) too. The human message still goes to stderr,
    so stdout holds only that document and a person watching still reads the error.

    Output whose reader has gone (`| head`) ends the command quietly with `EXIT_BROKEN_PIPE`.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        # Remember the whole command line: the group's parser splits it before `invoke`.
        ctx.meta[_ARGV_KEY] = list(args)
        with _quiet_when_the_reader_leaves():  # `--help` and `--version` print from here
            return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        with _quiet_when_the_reader_leaves():
            try:
                result = super().invoke(ctx)
                sys.stdout.flush()  # so a closed pipe shows here, not in Python's flush at exit
                return result
            except FlareError as error:
                self._fail(ctx, error, error.message, error.hint, error.exit_code)
            except OSError as error:
                if _reader_left(error):
                    raise
                # A file or device the command needed failed (disk full, permissions, a
                # vanished directory): say which and why instead of a traceback.
                where = f" ({error.filename})" if error.filename else ""
                message = f"{error.strerror or error}{where}"
                self._fail(ctx, error, message, _os_hint(error), 1)
            except typer.TyperException as error:
                # Click's usage errors (a bad or missing option, exit 2) keep their usual text
                # unless the caller asked for JSON.
                if not self._wants_json(ctx):
                    raise
                usage_ctx = getattr(error, "ctx", None)
                hint = f"try '{usage_ctx.command_path} --help'" if usage_ctx else None
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


def _os_hint(error: OSError) -> str:
    if error.errno == errno.EPIPE:  # not our stdout (see _reader_left): a child or a socket
        return "a program or connection the command was writing to closed early"
    return "check the path, its permissions and free space"


@contextmanager
def _quiet_when_the_reader_leaves() -> Iterator[None]:
    """Turn a write to a closed stdout or stderr into a quiet `EXIT_BROKEN_PIPE`.

    The closed stream is pointed at /dev/null first (the recipe in Python's signal docs), so
    the rest of the command's output and Python's own flush at exit go nowhere instead of
    ending in "Exception ignored ... BrokenPipeError".
    """
    stdout_was_devnull = _is_devnull(sys.stdout)
    try:
        yield
    except OSError as error:
        if not _reader_left(error):
            raise
        for stream in (sys.stdout, sys.stderr):
            if _pipe_closed(stream):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except SystemExit as exit_:
        # rich, which prints help and tables, meets a closed stdout on its own: it points
        # stdout at /dev/null and exits 1. Give that the same status as every other case.
        if exit_.code == 1 and not stdout_was_devnull and _is_devnull(sys.stdout):
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        raise


def _reader_left(error: OSError) -> bool:
    """Whether `error` is this process writing to a stdout or stderr nobody reads any more.

    A broken pipe to anything else (a child process, a socket) is a failure to report. The
    error does not say which descriptor failed, so the standard streams are asked directly.
    """
    return error.errno == errno.EPIPE and (_pipe_closed(sys.stdout) or _pipe_closed(sys.stderr))


def _is_devnull(stream: IO[Any] | None) -> bool:
    """Whether `stream` writes to /dev/null (how rich leaves stdout after a broken pipe)."""
    try:
        fd = stream.fileno() if stream is not None else -1
        if fd < 0:
            return False
        here, null = os.fstat(fd), os.stat(os.devnull)
    except (OSError, ValueError):  # closed, or a stream in memory (click's test runner)
        return False
    return (here.st_dev, here.st_ino) == (null.st_dev, null.st_ino)


def _pipe_closed(stream: IO[Any] | None) -> bool:
    """Whether `stream` is a pipe or socket whose reading end is closed."""
    try:
        fd = stream.fileno() if stream is not None else -1
    except (OSError, ValueError):  # closed, or a stream in memory (click's test runner)
        return False
    if fd < 0 or not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    # Linux reports a pipe without readers as POLLERR, macOS as POLLHUP.
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


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
