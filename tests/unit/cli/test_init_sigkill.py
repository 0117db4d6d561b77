"""`flare-node init --force` killed with SIGKILL while it replaces a node's keys.

The kill lands just before a chosen change to the key directory (`cli_process`'s
FLARE_TEST_KILL_AT): the same state on every run, with no timing. Whatever the point, the next
command finds one complete set of keys, the old one or the new one, never a mix and never none,
and a wrong password is still reported as a wrong password.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import cli_process
import pytest
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.node.keys import JOURNAL_NAME, WrongPasswordError, keystore_address

OLD, NEW, WRONG = "old password one", "new password two", "not the password"
IDENTITY = ("address", "bls_public_key", "peer_public_key")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("FLARE_PASSWORD", "FLARE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def flare(runner: CliRunner, password: str | None, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"FLARE_PASSWORD": password} if password else {})


def identity_of(result: Result) -> dict[str, str]:
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return {name: document[name] for name in IDENTITY}


def make_home(runner: CliRunner, home: Path) -> dict[str, str]:
    return identity_of(flare(runner, OLD, "init", "--home", str(home), "--kdf", "light", "--json"))


def kill_init_at(home: Path, point: str) -> None:
    killed = cli_process.run(
        ["init", "--home", str(home), "--kdf", "light", "--force", "--json"],
        cli_process.environment(root=home, kill_at=point, FLARE_PASSWORD=NEW),
    )
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr.decode())


def keys_in_use(runner: CliRunner, home: Path, old: dict[str, str]) -> str:
    """Which complete set the home holds after a kill, "old" or "new"; fails on anything else.

    `keys show` is the first reader after the kill. The set's own password opens all three
    keys to the identity shown; the other password and a wrong one are refused as wrong
    passwords, at the first key they try.
    """
    shown = identity_of(flare(runner, None, "keys", "show", "--home", str(home), "--json"))
    generation = "old" if shown == old else "new"
    if generation == "new":
        assert all(shown[name] != old[name] for name in IDENTITY)  # no old key among them
    right, other = (OLD, NEW) if generation == "old" else (NEW, OLD)
    check = ["keys", "check", "--home", str(home), "--json"]
    assert identity_of(flare(runner, right, *check)) == shown
    for password in (other, WRONG):
        refused = flare(runner, password, *check)
        assert refused.exit_code == WrongPasswordError.exit_code, refused.output
        assert json.loads(refused.stdout)["error"]["type"] == "WrongPasswordError"
        assert "wrong password for keystore" in refused.stderr
    assert not (home / "keys" / JOURNAL_NAME).exists()
    if generation == "new":  # the old keys are kept, whole, as backups
        [backup] = (home / "keys").glob("ethereum.json.*.bak")
        assert keystore_address(backup) == old["address"].lower()
        assert len(list((home / "keys").glob("*.bak"))) == 3
    return generation


def assert_rerun_replaces_them(runner: CliRunner, home: Path) -> None:
    """A second `init --force` succeeds and leaves no staged file or journal behind."""
    rerun = ["init", "--home", str(home), "--kdf", "light", "--force"]
    again = flare(runner, "third password", *rerun)
    assert again.exit_code == 0, again.output
    check = ["keys", "check", "--home", str(home), "--json"]
    identity_of(flare(runner, "third password", *check))
    assert [path.name for path in (home / "keys").iterdir() if path.name.startswith(".")] == []


# The journal is written (renamed into place) before the first key is replaced: from then on
# the replacement is decided. The last three points leave old and new keys side by side on disk.
POINTS = [
    ("rename:keys/.replacing.json:1", "old"),
    ("rename:keys/ethereum.json:1", "new"),
    ("rename:keys/bls.json:1", "new"),
    ("rename:keys/peer.json:1", "new"),
    ("unlink:keys/.replacing.json:1", "new"),
]


@pytest.mark.parametrize(("point", "expected"), POINTS)
def test_init_force_killed_midway_leaves_one_whole_set_of_keys(
    tmp_path: Path, runner: CliRunner, point: str, expected: str
) -> None:
    home = tmp_path / "home"
    old = make_home(runner, home)

    kill_init_at(home, point)

    assert keys_in_use(runner, home, old) == expected
    assert_rerun_replaces_them(runner, home)


@pytest.mark.slow
def test_init_force_killed_at_every_change_never_mixes_keys(
    tmp_path: Path, runner: CliRunner
) -> None:
    """Every change a clean `init --force` makes to the key directory, in order: each kill
    leaves the old set or the new one, and once the new one appears it stays."""
    template = tmp_path / "template"
    old = make_home(runner, template)
    traced, trace = shutil.copytree(template, tmp_path / "traced"), tmp_path / "trace"
    clean = cli_process.run(
        ["init", "--home", str(traced), "--kdf", "light", "--force"],
        cli_process.environment(root=traced, trace=trace, FLARE_PASSWORD=NEW),
    )
    assert clean.returncode == 0, clean.stderr.decode()
    changes = cli_process.trace_points(trace)
    assert len(changes) >= len(POINTS)

    seen = []
    for index, change in enumerate(changes, start=1):
        home = shutil.copytree(template, tmp_path / f"kill-{index}")
        kill_init_at(home, f"*:*:{index}")
        seen.append((change, keys_in_use(runner, home, old)))
    generations = [generation for _, generation in seen]
    assert generations == sorted(generations, key=["old", "new"].index), seen
    assert generations[0] == "old", seen
    assert generations[-1] == "new", seen
