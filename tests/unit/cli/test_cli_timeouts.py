"""`--timeout` and [network]: a command against a hung service ends, saying which limit it hit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_http import silent_listener
from typer.testing import CliRunner

from flare.cli.app import app
from flare.cli.nodeconfig import load_config
from flare.cli.nodesetup import open_node_store
from flare.protocol.limits import NetworkLimits

pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'strict' parameter is no longer needed:FutureWarning"
)


def test_store_commands_end_at_the_deadline_given_on_the_command_line() -> None:
    with silent_listener() as port:
        result = CliRunner().invoke(
            app, ["--timeout", "0.4", "store", "ls", "--store", f"ipfs://127.0.0.1:{port}"]
        )
    assert result.exit_code == 3, result.output
    assert f"/tcp/{port}/" in result.output
    assert "within 0.4 s (the deadline limit)" in result.output


def test_the_json_error_names_the_limit(tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(b"x" * 1000)
    with silent_listener() as port:
        result = CliRunner().invoke(
            app,
            [
                "--timeout",
                "0.4",
                "store",
                "add",
                str(source),
                "--store",
                f"ipfs://127.0.0.1:{port}",
                "--json",
            ],
        )
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "TimeLimitError"
    assert error["exit_code"] == 3
    assert "deadline" in error["message"]
    assert "--timeout" in error["hint"]


def test_the_environment_sets_the_deadline_for_chain_commands() -> None:
    with silent_listener() as port:
        url = f"http://127.0.0.1:{port}"
        result = CliRunner().invoke(
            app,
            ["contract", "info", "--rpc", url, "--address", "0x" + "11" * 20],
            env={"FLARE_TIMEOUT": "0.4"},
        )
    assert result.exit_code == 3, result.output
    assert url in result.output
    assert "(the deadline limit)" in result.output


def test_a_nonpositive_timeout_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["--timeout", "0", "store", "ls"])
    assert result.exit_code == 2


def test_the_node_config_limits_reach_the_store(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        '[training]\ntrainer = "twin"\ntwin_spec = "spec.json"\n\n[store]\nurl = "ipfs://127.0.0.1:5001"\n\n'
        "[network]\nconnect_timeout = 2.5\nidle_timeout = 7\ndeadline = 40\n"
    )
    store = open_node_store(load_config(config, {}))
    try:
        assert store._limits == NetworkLimits(connect=2.5, idle=7, deadline=40)  # type: ignore[attr-defined]
    finally:
        store.close()
