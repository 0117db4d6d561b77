"""The root group turns domain and file-system errors into a message and an exit code."""

from __future__ import annotations

import errno

import pytest
import typer
from typer.testing import CliRunner

from flare.cli.app import FlareGroup
from flare.protocol.errors import ConfigError, UnavailableError


def _app_raising(error: Exception) -> typer.Typer:
    app = typer.Typer(cls=FlareGroup)

    @app.command()
    def fail() -> None:
        raise error

    @app.command()
    def other() -> None:
        """A second command, so typer keeps `fail` as a subcommand."""

    return app


@pytest.mark.parametrize(
    ("error", "code"),
    [(ConfigError("bad option", hint="use another"), 2), (UnavailableError("no RPC"), 3)],
)
def test_flare_errors_print_message_hint_and_their_exit_code(error: Exception, code: int) -> None:
    result = CliRunner().invoke(_app_raising(error), ["fail"])

    assert result.exit_code == code
    assert f"Error: {error.args[0]}" in result.stderr
    assert "Traceback" not in result.output
    if code == 2:
        assert "hint: use another" in result.stderr


def test_os_errors_name_the_file_instead_of_a_traceback() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/data/out.json")

    result = CliRunner().invoke(_app_raising(error), ["fail"])

    assert result.exit_code == 1
    assert "Error: No space left on device (/data/out.json)" in result.stderr
    assert "Traceback" not in result.output


def test_unexpected_errors_are_not_swallowed() -> None:
    result = CliRunner().invoke(_app_raising(RuntimeError("bug")), ["fail"])

    assert isinstance(result.exception, RuntimeError)
