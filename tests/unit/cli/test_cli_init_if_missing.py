"""`flare-node init --if-missing`: safe to run on every start of a container or a unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.node.keys import KeyFileExistsError, KeyFileMissingError
from flare.protocol.errors import ConfigError

PASSWORD = "correct horse battery staple"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("FLARE_PASSWORD", raising=False)
    monkeypatch.delenv("FLARE_HOME", raising=False)
    return CliRunner()


def init(runner: CliRunner, home: Path, *extra: str, password: str | None = PASSWORD) -> Result:
    env = {"FLARE_PASSWORD": password} if password is not None else {}
    args = ["init", "--home", str(home), "--kdf", "light", "--if-missing", *extra]
    return runner.invoke(app, args, env=env)


def snapshot(home: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the home with its bytes and modification time."""
    return {
        str(path.relative_to(home)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(home.rglob("*"))
        if path.is_file()
    }


def test_if_missing_creates_keys_in_an_empty_home(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = init(runner, home, "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["created"] is True
    assert sorted(p.name for p in (home / "keys").iterdir()) == [
        "bls.json",
        "ethereum.json",
        "peer.json",
    ]


def test_if_missing_keeps_existing_keys_and_needs_no_password(
    runner: CliRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = json.loads(init(runner, home, "--json").stdout)
    before = snapshot(home)

    again = init(runner, home, "--json", password=None)  # no password anywhere: none is asked

    assert again.exit_code == 0, again.output
    reported = json.loads(again.stdout)
    assert reported["created"] is False
    assert reported["backups"] == []
    for name in ("address", "bls_public_key", "peer_public_key", "bls_key_hash"):
        assert reported[name] == first[name]
    assert snapshot(home) == before  # not a byte, not a timestamp changed
    assert not list(home.rglob("*.bak"))


def test_if_missing_says_so_in_text(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    address = json.loads(init(runner, home, "--json").stdout)["address"]
    result = init(runner, home, password=None)
    assert result.exit_code == 0, result.output
    assert "already holds its keys; left as they are" in result.stdout
    assert address in result.stdout


def test_without_if_missing_existing_keys_still_refuse(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    init(runner, home)
    result = runner.invoke(
        app,
        ["init", "--home", str(home), "--kdf", "light"],
        env={"FLARE_PASSWORD": PASSWORD},
    )
    assert result.exit_code == KeyFileExistsError.exit_code
    assert "refusing to overwrite" in result.output


def test_if_missing_and_force_contradict(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = init(runner, home, "--force")
    assert result.exit_code == ConfigError.exit_code
    assert "--if-missing" in result.output
    assert not home.exists()  # refused before anything was written


def test_if_missing_refuses_an_incomplete_home(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    init(runner, home)
    (home / "keys" / "bls.json").unlink()
    before = snapshot(home)

    result = init(runner, home)

    assert result.exit_code == KeyFileExistsError.exit_code
    assert "bls.json" in result.output
    assert "incomplete" in result.output
    assert snapshot(home) == before  # the missing key was not made anew


def test_if_missing_names_a_home_made_before_bls_keys(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    init(runner, home)
    keys = home / "keys"
    (keys / "bls.json").unlink()
    (keys / "peer.json").rename(keys / "vrf.json")  # the layout of an earlier flare-node

    result = init(runner, home)

    assert result.exit_code == KeyFileMissingError.exit_code
    assert "keys add-bls" in result.output
    assert not (keys / "bls.json").exists()
