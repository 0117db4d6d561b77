"""`--json` holds on errors too: every command that takes it fails with one JSON document.

The document is `{"error": {"type", "message", "hint", "exit_code"}}` on stdout, with the same
exit code as without `--json` (1 integrity or not found, 2 usage, 3 unavailable).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flare.cli.app import FlareGroup, app
from flare.protocol.errors import UnavailableError

DEAD_RPC = "http://127.0.0.1:1"
ADDRESS = "0x" + "11" * 20
# A well-formed CID whose block no test store holds.
ABSENT_CID = "bafkreig6bn4axiikwk5u3qmdug3flvsvxrdaoqaolac7u6mjmtszbhqery"
CHAIN_DOWN = (3, "RpcUnavailableError")


def _failures(tmp: Path) -> dict[str, tuple[list[str], int, str]]:
    """For each command path: arguments (after `--json`) that fail, the exit code, the type."""
    missing_config = ["--config", str(tmp / "missing.toml")]
    dead_chain = ["--rpc", DEAD_RPC, "--address", ADDRESS]
    empty_home = ["--home", str(tmp / "empty")]
    return {
        "init": (
            [*empty_home, "--password-file", str(tmp / "missing.txt")],
            2,
            "KeyFileMissingError",
        ),
        "register": (missing_config, 2, "ConfigFileError"),
        "run": (missing_config, 2, "ConfigFileError"),
        "status": (missing_config, 2, "ConfigFileError"),
        "train": (["--steps", "many"], 2, "BadParameter"),
        "demo": (
            ["--nodes", "2", "--committee", "5", "--run-dir", str(tmp / "demo")],
            2,
            "BadParameter",
        ),
        "contract compile": (["--root", str(tmp)], 2, "CompilerUnavailableError"),
        "contract deploy": (["--rpc", DEAD_RPC], 2, "MissingParameter"),
        "contract info": (dead_chain, *CHAIN_DOWN),
        "contract start": (dead_chain, *CHAIN_DOWN),
        "contract allow": ([*dead_chain, ADDRESS], *CHAIN_DOWN),
        "contract disallow": ([*dead_chain, ADDRESS], *CHAIN_DOWN),
        "contract allowlist": ([*dead_chain, "maybe"], 2, "ConfigError"),
        "contract set-config": (dead_chain, *CHAIN_DOWN),
        "contract pause": (dead_chain, *CHAIN_DOWN),
        "contract unpause": (dead_chain, *CHAIN_DOWN),
        "contract transfer-ownership": ([*dead_chain, ADDRESS], *CHAIN_DOWN),
        "contract accept-ownership": (dead_chain, *CHAIN_DOWN),
        "contract close-round": ([*dead_chain, "soon"], 2, "BadParameter"),
        "store add": ([*empty_home, str(tmp / "missing.bin")], 2, "ConfigError"),
        "store get": (
            [*empty_home, "-o", str(tmp / "out"), ABSENT_CID],
            1,
            "BlockNotFoundError",
        ),
        "store pin": ([*empty_home, "not-a-cid"], 2, "CidError"),
        "store unpin": ([*empty_home, "not-a-cid"], 2, "CidError"),
        "store ls": ([*empty_home, "--store", "bogus://x"], 2, "ConfigError"),
        "store gc": (
            [*empty_home, "--store", "ipfs://127.0.0.1:1"],
            3,
            "StoreUnavailableError",
        ),
        "store verify": (
            [*empty_home, "--store", "ipfs://127.0.0.1:1"],
            3,
            "StoreUnavailableError",
        ),
        "keys show": (empty_home, 2, "KeyFileMissingError"),
        "keys check": (empty_home, 2, "PasswordError"),
        "keys add-bls": (empty_home, 2, "PasswordError"),
        "vrf verify": (["--public-key", "0x00", "--proof", "0x00"], 2, "ConfigError"),
        "vrf prove": ([*empty_home, "--round", "1", "--seed", "0x00"], 2, "ConfigError"),
        "vrf threshold": (["--committee-size", "0", "--eligible", "0"], 2, "BadParameter"),
        "policy new": (
            ["--rule", "bogus", "--out", str(tmp / "policy.json")],
            2,
            "InvalidRuleError",
        ),
        "policy show": ([*empty_home, str(tmp / "missing.json")], 2, "CidError"),
        "data synth": (["--episodes", "zero", str(tmp / "data")], 2, "BadParameter"),
        "model genesis": (
            [*empty_home, "--policy", str(tmp / "missing")],
            2,
            "ConfigError",
        ),
        "model info": ([*empty_home, ABSENT_CID], 1, "BlockNotFoundError"),
        "config check": (["--config"], 2, "BadOptionUsage"),
    }


def _json_commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every leaf command under `command` that takes `--json`, as its space-joined path."""
    if isinstance(command, typer.core.TyperGroup):
        for name, sub in command.commands.items():
            yield from _json_commands(sub, (*path, name))
    elif any("--json" in getattr(param, "opts", ()) for param in command.params):
        yield " ".join(path)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLARE_CONFIG", "FLARE_RPC", "FLARE_PASSWORD", "FLARE_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLARE_HOME", str(tmp_path / "home"))


def _error_of(stdout: str) -> dict[str, Any]:
    document = json.loads(stdout)  # the whole of stdout is one JSON document
    assert set(document) == {"error"}
    error: dict[str, Any] = document["error"]
    assert set(error) == {"type", "message", "hint", "exit_code"}
    return error


def test_every_json_command_has_a_failure_case(tmp_path: Path) -> None:
    commands = set(_json_commands(typer.main.get_command(app)))

    assert commands, "the walk found no command with --json"
    assert set(_failures(tmp_path)) == commands


@pytest.mark.parametrize("command", sorted(_failures(Path("/unused"))))
def test_failures_under_json_print_one_error_document(tmp_path: Path, command: str) -> None:
    args, code, kind = _failures(tmp_path)[command]

    result = CliRunner().invoke(app, [*command.split(), "--json", *args])

    assert result.exit_code == code, result.output
    error = _error_of(result.stdout)
    assert error["type"] == kind
    assert error["exit_code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["hint"] is None or isinstance(error["hint"], str)
    assert "Traceback" not in result.output


def _app_raising(error: Exception) -> typer.Typer:
    test_app = typer.Typer(cls=FlareGroup)

    @test_app.command()
    def fail(
        json_output: bool = typer.Option(False, "--json"),
        rest: list[str] | None = typer.Argument(None),
    ) -> None:
        raise error

    @test_app.command()
    def plain() -> None:
        raise error

    return test_app


def test_os_errors_under_json_exit_1_with_the_file_named() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/data/out.json")

    result = CliRunner().invoke(_app_raising(error), ["fail", "--json"])

    assert result.exit_code == 1
    assert _error_of(result.stdout) == {
        "type": "OSError",
        "message": "No space left on device (/data/out.json)",
        "hint": "check the path, its permissions and free space",
        "exit_code": 1,
    }
    assert "Error: No space left on device" in result.stderr


def test_flare_errors_under_json_keep_the_human_message_on_stderr() -> None:
    result = CliRunner().invoke(
        _app_raising(UnavailableError("no RPC", hint="start one")), ["fail", "--json"]
    )

    assert result.exit_code == 3
    assert _error_of(result.stdout)["hint"] == "start one"
    assert "Error: no RPC" in result.stderr
    assert "hint: start one" in result.stderr


def test_json_after_a_double_dash_is_an_argument_not_the_flag() -> None:
    result = CliRunner().invoke(_app_raising(UnavailableError("no RPC")), ["fail", "--", "--json"])

    assert result.exit_code == 3
    assert result.stdout == ""
    assert "Error: no RPC" in result.stderr


def test_usage_errors_without_json_keep_click_text() -> None:
    result = CliRunner().invoke(app, ["vrf", "threshold", "--committee-size", "zero"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--committee-size" in result.stderr
