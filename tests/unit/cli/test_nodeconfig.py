"""The node config file: schema, line-numbered errors, FLARE_* overrides, `config check`.

No chain and no torch: a deployment record is written by hand, trainers are never started.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flare.chain.deploy import Deployment
from flare.cli import configcmd
from flare.cli.nodeconfig import (
    ConfigFileError,
    NodeConfig,
    config_json,
    env_overrides,
    load_config,
    parse_config,
)
from flare.protocol.errors import ConfigError

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
TWIN = '[training]\ntrainer = "twin"\ntwin_spec = "spec.json"\n'  # needs no data or policy
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "node.example.toml"


@pytest.fixture(autouse=True)
def _no_flare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`config check` reads os.environ: the developer's own FLARE_* must not leak in."""
    for name in list(os.environ):
        if name.startswith("FLARE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The problems loading `text` as tmp_path/node.toml, with names relative to tmp_path."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ or {})
    assert isinstance(caught.value, ConfigError)
    assert caught.value.exit_code == 2
    return [problem.replace(str(path), "node.toml") for problem in caught.value.problems]


def write_record(path: Path, *, address: str = ADDRESS, block: int = 42) -> Path:
    record = Deployment(
        address=address,
        chain_id=31337,
        block=block,
        tx_hash="0x" + "11" * 32,
        deployer=address,
        owner=address,
        artifact_sha256="00" * 32,
        model_spec_hash="0x" + "22" * 32,
        genesis_model="0x0155",
        allowlist=False,
        config={},
        gas_used=1,
    )
    record.write(path)
    return path


# --- errors: each with its line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[chain]\nrcp = "x"\n', "node.toml:2: unknown key [chain] rcp; did you mean rpc?"),
        ("[chian]\nrpc = 1\n", "node.toml:1: unknown table [chian]; did you mean [chain]?"),
        ('hoem = "x"\n', "node.toml:1: unknown key hoem; did you mean home?"),
        (
            "\n[model]\nsteps = 3\n",
            "node.toml:3: unknown key [model] steps; did you mean [training] steps?",
        ),
        ("chain = 3\n", "node.toml:1: [chain] must be a table, got 3"),
        (
            '[training]\n# steps = 1\n"steps" = "ten"\n',
            'node.toml:3: [training] steps must be an integer, got "ten"',
        ),
        ("training.steps = true\n", "node.toml:1: [training] steps must be an integer, got true"),
        ("[training]\nsteps = 1.5\n", "node.toml:2: [training] steps must be an integer, got 1.5"),
        (
            "training = { seed = 1, steps = 0 }\n",
            "node.toml:1: [training] steps must be at least 1, got 0",
        ),
        (
            "[training]\nbatch_size = 0\n",
            "node.toml:2: [training] batch_size must be at least 1, got 0",
        ),
        (
            "[training]\nheld_out = 1\n",
            "node.toml:2: [training] held_out must be between 0 and 1 (both excluded), got 1",
        ),
        (
            "[training]\nheld_out = 0.0\n",
            "node.toml:2: [training] held_out must be between 0 and 1 (both excluded), got 0.0",
        ),
        ("[training]\nrank = 65\n", "node.toml:2: [training] rank must be from 1 to 64, got 65"),
        (
            "[training]\npower_iterations = 0\n",
            "node.toml:2: [training] power_iterations must be from 1 to 8, got 0",
        ),
        (
            '[training]\ntrainer = "torch"\n',
            'node.toml:2: [training] trainer must be one of lerobot, twin, got "torch"',
        ),
        (
            '[training]\ndevice = "gpu"\n',
            'node.toml:2: [training] device must be cpu, cuda or cuda:N, got "gpu"',
        ),
        ("[training]\nmu = true\n", "node.toml:2: [training] mu must be a number, got true"),
        (
            "[chain]\nconfirmations = -1\n",
            "node.toml:2: [chain] confirmations must be at least 0, got -1",
        ),
        (
            "[chain]\nreceipt_timeout = 0\n",
            "node.toml:2: [chain] receipt_timeout must be greater than 0, got 0",
        ),
        (
            "[chain]\npoll_interval = -0.5\n",
            "node.toml:2: [chain] poll_interval must be greater than 0, got -0.5",
        ),
        (
            '[chain]\nrpc = "ws://127.0.0.1:8546"\n',
            "node.toml:2: [chain] rpc must be eth-tester:// or http(s)://host:port, "
            'got "ws://127.0.0.1:8546"',
        ),
        (
            '[chain]\ncontract = "0x1234"\n',
            'node.toml:2: [chain] contract must be an address (0x and 40 hex digits), got "0x1234"',
        ),
        (
            "[retention]\nkeep_globals = 0\n",
            "node.toml:2: [retention] keep_globals must be at least 1, got 0",
        ),
        (
            "[retention]\nkeep_update_rounds = 0\n",
            "node.toml:2: [retention] keep_update_rounds must be at least 1, got 0",
        ),
        (
            '[retention]\ngc = "yes"\n',
            'node.toml:2: [retention] gc must be true or false, got "yes"',
        ),
        (
            '[log]\nlevel = "warn"\n',
            'node.toml:2: [log] level must be one of debug, info, warning, error, got "warn"; '
            'did you mean "warning"?',
        ),
        (
            '[log]\nformat = "yaml"\n',
            'node.toml:2: [log] format must be one of text, json, got "yaml"',
        ),
        (
            '[store]\nurl = "ipfs://127.0.0.1"\n',
            'node.toml:2: [store] url must be "embedded", ipfs://host:port or http://host:port, '
            'got "ipfs://127.0.0.1"',
        ),
        (
            "[network]\ndeadline = 0\n",
            "node.toml:2: [network] deadline must be a number of seconds above 0, got 0",
        ),
        (
            "[network]\nidle_timeout = inf\n",
            "node.toml:2: [network] idle_timeout must be a number of seconds above 0, got inf",
        ),
        ('[data]\ndataset = ""\n', 'node.toml:2: [data] dataset must be a path, got ""'),
        ("[data]\ndataset = 3\n", "node.toml:2: [data] dataset must be a path, got 3"),
        ('home = ["a"]\n', "node.toml:1: home must be a path, got an array"),
        (
            '[data]\nrename_cameras = { a = "x", "b.c" = 3 }\n',
            'node.toml:2: [data] rename_cameras must map names to strings, got "b.c" = 3',
        ),
        (
            '[data]\n\n[data.rename_cameras]\na = "x"\nb = "x"\n',
            'node.toml:3: [data] rename_cameras maps both "a" and "b" to "x"',
        ),
    ],
)
def test_each_bad_setting_is_named_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    assert problems_of(tmp_path, text) == [message]


def test_a_mixed_case_address_must_pass_its_checksum(tmp_path: Path) -> None:
    typo = ADDRESS[:-1] + ADDRESS[-1].upper()

    (problem,) = problems_of(tmp_path, f'[chain]\ncontract = "{typo}"\n')

    assert problem.startswith(f"node.toml:2: [chain] contract {typo} fails its EIP-55 checksum")
    assert ADDRESS in problem


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, '[chain]\nrcp = "x"\n[training]\nsteps = 0\n[log]\nlevel = 1\n')

    with pytest.raises(ConfigFileError) as caught:
        load_config(path, {})

    assert caught.value.problems == (
        f"{path}:2: unknown key [chain] rcp; did you mean rpc?",
        f"{path}:4: [training] steps must be at least 1, got 0",
        f"{path}:6: [log] level must be a string, got 1",
    )
    assert caught.value.message.startswith(f"{path} has 3 problems:\n  {path}:2: ")
    assert caught.value.hint is not None
    assert "config example" in caught.value.hint


def test_lines_are_not_fooled_by_multiline_strings(tmp_path: Path) -> None:
    text = '[log]\nlevel = """\n[training]\nsteps = 1\n"""\n[training]\nsteps = 0\n'

    assert problems_of(tmp_path, text) == [
        "node.toml:2: [log] level must be one of debug, info, warning, error, "
        'got "[training]\\nsteps = 1\\n"',
        "node.toml:7: [training] steps must be at least 1, got 0",
    ]


def test_toml_syntax_errors_keep_the_line_and_column(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, "[chain]\nrpc = \n")

    assert problem.startswith("node.toml: invalid TOML: ")
    assert "(at line 2, column 7)" in problem


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"no config file at .*absent\.toml") as caught:
        load_config(tmp_path / "absent.toml", {})
    assert caught.value.hint is not None
    assert "config example" in caught.value.hint
    with pytest.raises(ConfigFileError, match="is a directory"):
        load_config(tmp_path, {})
    (tmp_path / "latin1.toml").write_bytes(b'home = "\xe9"\n')
    with pytest.raises(ConfigFileError, match="is not UTF-8 text"):
        load_config(tmp_path / "latin1.toml", {})


# --- values, defaults and paths --------------------------------------------------------------


def test_defaults_and_an_int_where_a_float_is_expected(tmp_path: Path) -> None:
    path = write(tmp_path, TWIN + "mu = 1\n[chain]\nreceipt_timeout = 30\n")

    config = load_config(path, {})

    assert config.source == path.absolute()
    assert config.home == Path("~/.flare").expanduser()
    assert config.training.mu == 1.0
    assert isinstance(config.training.mu, float)
    assert config.chain.receipt_timeout == 30.0
    assert isinstance(config.chain.receipt_timeout, float)
    assert config.chain.rpc == "eth-tester://"
    assert config.chain.contract is None
    assert config.store.url == "embedded"
    assert config.retention.gc is True
    assert config.log.level == "info"
    assert config.data.rename_cameras == {}


def test_relative_paths_resolve_against_the_file_and_tilde_expands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    text = (
        'home = "~/node"\n[data]\ndataset = "data/robot"\n[model]\npolicy = "/models/base"\n'
        '[log]\nfile = "../logs/node.log"\n'
    )
    path = write(tmp_path, text, "etc/node.toml")

    config = load_config(Path("etc/node.toml"), {})

    assert config.home == tmp_path / "user" / "node"
    assert config.data.dataset == path.parent / "data" / "robot"
    assert config.model.policy == Path("/models/base")
    assert config.log.file == path.parent / ".." / "logs" / "node.log"


def test_rename_cameras_as_a_table_or_inline(tmp_path: Path) -> None:
    table = TWIN + '[data.rename_cameras]\n"observation.images.front" = "observation.images.cam1"\n'
    inline = TWIN + '[data]\nrename_cameras = { "a.b" = "c.d" }\n'

    assert load_config(write(tmp_path, table), {}).data.rename_cameras == {
        "observation.images.front": "observation.images.cam1"
    }
    assert load_config(write(tmp_path, inline), {}).data.rename_cameras == {"a.b": "c.d"}


def test_without_a_file_the_defaults_and_environment_are_used() -> None:
    config = load_config(None, {"FLARE_TRAINING_TRAINER": "twin", "FLARE_TRAINING_TWIN_SPEC": "/s"})

    assert config.source is None
    assert config.training.twin_spec == Path("/s")
    assert config == NodeConfig(source=None, home=config.home, training=config.training)


# --- the environment -------------------------------------------------------------------------


def test_environment_overrides_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "etc", TWIN + 'steps = 5\n[log]\nformat = "text"\n')
    environ = {
        "FLARE_TRAINING_STEPS": "10",
        "FLARE_TRAINING_MU": "0.5",
        "FLARE_TRAINING_DEVICE": "cuda:1",
        "FLARE_RETENTION_GC": "false",
        "FLARE_LOG_FORMAT": "json",
        "FLARE_CHAIN_RPC": "http://127.0.0.1:8545",
        "FLARE_CHAIN_CONTRACT": ADDRESS.lower(),  # TOML reads 0x... as an integer
        "FLARE_KEYS_PASSWORD_FILE": "secret",
        "FLARE_HOME": "state",
        "FLARE_DATA_RENAME_CAMERAS": '{ front = "camera1" }',
        "FLARE_STORE_URL": "",  # empty: unset
    }

    config = load_config(path, environ)

    assert config.training.steps == 10
    assert config.training.mu == 0.5
    assert config.training.device == "cuda:1"
    assert config.retention.gc is False
    assert config.log.format == "json"
    assert config.chain.contract == ADDRESS  # checksummed
    assert config.keys.password_file == tmp_path / "secret"  # the current directory's
    assert config.home == tmp_path / "state"
    assert config.data.rename_cameras == {"front": "camera1"}
    assert config.store.url == "embedded"
    assert env_overrides(environ)["training.steps"] == "FLARE_TRAINING_STEPS"
    assert env_overrides(environ)["home"] == "FLARE_HOME"
    assert "store.url" not in env_overrides(environ)


def test_unrelated_flare_variables_are_ignored() -> None:
    environ = {
        name: "whatever"
        for name in (
            "FLARE_PASSWORD",
            "FLARE_CONFIG",
            "FLARE_RPC",
            "FLARE_CRASH_AT",
            "FLARE_TOOLS_HOME",
            "FLARE_STORE",
            "FLARE_DATASET_ROOT",
            "FLARE_POLICY",
            "FLARE_CONTRACT",
        )
    } | {"FLARE_TRAINING_TRAINER": "twin", "FLARE_TRAINING_TWIN_SPEC": "/spec.json"}

    assert load_config(None, environ).training.trainer == "twin"
    assert set(env_overrides(environ)) == {"training.trainer", "training.twin_spec"}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FLARE_TRAINING_STEPS": "x"}, '$FLARE_TRAINING_STEPS must be an integer, got "x"'),
        ({"FLARE_TRAINING_STEPS": "0"}, "$FLARE_TRAINING_STEPS must be at least 1, got 0"),
        ({"FLARE_RETENTION_GC": "yes"}, '$FLARE_RETENTION_GC must be true or false, got "yes"'),
        (
            {"FLARE_LOG_LEVEL": "loud"},
            '$FLARE_LOG_LEVEL must be one of debug, info, warning, error, got "loud"',
        ),
        (
            {"FLARE_CHAIN_RCP": "http://x:1"},
            "unknown variable $FLARE_CHAIN_RCP: [chain] has no key rcp; "
            "did you mean $FLARE_CHAIN_RPC?",
        ),
    ],
)
def test_bad_variables_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_config(
            None, {**environ, "FLARE_TRAINING_TRAINER": "twin", "FLARE_TRAINING_TWIN_SPEC": "/s"}
        )

    assert caught.value.problems == (message,)


# --- settings that only fail together ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            'node.toml: [training] trainer = "lerobot" (the default) needs [data] dataset '
            "and [model] policy",
        ),
        (
            '[data]\ndataset = "d"\n',
            'node.toml: [training] trainer = "lerobot" (the default) needs [model] policy',
        ),
        (
            '\n[training]\ntrainer = "twin"\n',
            'node.toml:3: [training] trainer = "twin" needs [training] twin_spec',
        ),
        (
            TWIN + '[chain]\nrpc = "https://rpc.example.org/v3/key"\n',
            'node.toml:5: [chain] rpc = "https://rpc.example.org/v3/key" needs [chain] contract '
            "or [chain] deployment",
        ),
    ],
)
def test_settings_that_need_each_other(tmp_path: Path, text: str, message: str) -> None:
    assert problems_of(tmp_path, text) == [message]


def test_a_contract_is_enough_for_a_remote_chain(tmp_path: Path) -> None:
    path = write(tmp_path, TWIN + f'[chain]\nrpc = "http://node:8545"\ncontract = "{ADDRESS}"\n')

    config = load_config(path, {})

    assert config.chain.contract == ADDRESS
    assert config.chain.from_block is None


def test_the_deployment_record_fills_contract_and_first_block(tmp_path: Path) -> None:
    write_record(tmp_path / "deploy" / "record.json", block=42)
    chain = '[chain]\nrpc = "http://node:8545"\ndeployment = "deploy/record.json"\n'

    config = load_config(write(tmp_path, TWIN + chain), {})
    kept = load_config(write(tmp_path, TWIN + chain + "from_block = 7\n"), {})
    agreeing = load_config(write(tmp_path, TWIN + chain + f'contract = "{ADDRESS.lower()}"\n'), {})

    assert config.chain.contract == ADDRESS
    assert config.chain.from_block == 42
    assert kept.chain.from_block == 7
    assert agreeing.chain.contract == ADDRESS
    unread = parse_config(write(tmp_path, TWIN + chain), {})
    assert unread.chain.contract is None
    assert unread.chain.from_block is None


def test_a_contract_must_agree_with_the_deployment_record(tmp_path: Path) -> None:
    write_record(tmp_path / "record.json")
    chain = f'[chain]\ndeployment = "record.json"\ncontract = "{OTHER}"\n'

    with pytest.raises(ConfigFileError) as caught:
        load_config(write(tmp_path, TWIN + chain), {})

    assert f"[chain] contract {OTHER} is not the contract of [chain] deployment" in str(
        caught.value
    )
    assert ADDRESS in caught.value.message


def test_a_missing_deployment_record_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"\[chain\] deployment: no deployment record at"):
        load_config(write(tmp_path, TWIN + '[chain]\ndeployment = "gone.json"\n'), {})


def test_config_json_is_plain_json(tmp_path: Path) -> None:
    path = write(tmp_path, TWIN + '[data.rename_cameras]\na = "b"\n')

    data = json.loads(json.dumps(config_json(load_config(path, {}))))

    assert data["source"] == str(path.absolute())
    assert data["training"]["twin_spec"] == str(tmp_path / "spec.json")
    assert data["data"] == {"dataset": None, "rename_cameras": {"a": "b"}}
    assert set(data) == {
        "source",
        "home",
        "chain",
        "keys",
        "store",
        "network",
        "data",
        "model",
        "training",
        "retention",
        "metrics",
        "gossip",
        "log",
    }


# --- the commands ----------------------------------------------------------------------------


def cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(configcmd.app, name="config")

    @root.callback()
    def _root() -> None:
        """A root, so `config` stays a group."""

    return root


def ready_node(tmp_path: Path) -> Path:
    """The example config next to everything it names: a dataset, a policy, a record, a key."""
    path = write(tmp_path, EXAMPLE.read_text())
    (tmp_path / "data" / "my-robot" / "meta").mkdir(parents=True)
    (tmp_path / "data" / "my-robot" / "meta" / "info.json").write_text("{}")
    (tmp_path / "models" / "smolvla-base").mkdir(parents=True)
    write_record(tmp_path / "deployment.json", block=9)
    (tmp_path / "password").write_text("correct horse battery staple\n")
    (tmp_path / "password").chmod(0o600)
    return path


def test_the_example_is_shipped_verbatim_and_loads(tmp_path: Path) -> None:
    assert EXAMPLE.read_text() == configcmd.EXAMPLE_CONFIG
    result = CliRunner().invoke(cli(), ["config", "example"])
    assert result.exit_code == 0
    assert result.stdout == configcmd.EXAMPLE_CONFIG

    config = load_config(ready_node(tmp_path), {})

    assert config.chain.contract == ADDRESS
    assert config.chain.from_block == 9
    assert config.data.dataset == tmp_path / "data" / "my-robot"
    assert config.keys.password_file == tmp_path / "password"


def test_check_prints_the_effective_config(tmp_path: Path) -> None:
    path = ready_node(tmp_path)

    result = CliRunner().invoke(
        cli(), ["config", "check", "--config", str(path)], env={"FLARE_TRAINING_STEPS": "12"}
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: OK"
    assert "training.steps = 12" in result.stdout
    assert "# from $FLARE_TRAINING_STEPS" in result.stdout
    assert any(
        line.startswith(f'chain.contract = "{ADDRESS}"') and "# from [chain] deployment" in line
        for line in lines
    )
    assert "chain.from_block = 9" in result.stdout
    assert "training.lr = (not set)" in lines
    assert 'log.level = "info"' in lines


def test_check_lists_every_missing_file_and_exits_2(tmp_path: Path) -> None:
    path = ready_node(tmp_path)
    (tmp_path / "password").chmod(0o644)
    (tmp_path / "data" / "my-robot" / "meta" / "info.json").unlink()
    (tmp_path / "models" / "smolvla-base").rmdir()
    (tmp_path / "deployment.json").unlink()

    result = CliRunner().invoke(
        cli(),
        ["config", "check"],
        env={"FLARE_CONFIG": str(path), "FLARE_LOG_FILE": "/nowhere/x.log"},
    )

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}: 5 problems",
        f"  [model] policy {tmp_path}/models/smolvla-base does not exist",
        f"  [chain] deployment {tmp_path}/deployment.json does not exist",
        f"  [data] dataset {tmp_path}/data/my-robot is not a LeRobot dataset (no meta/info.json)",
        f"  [keys] password_file {tmp_path}/password is accessible by group or others "
        f"(mode 0644); refusing to use it (run: chmod 600 {tmp_path}/password)",
        "  [log] file /nowhere/x.log: directory /nowhere does not exist",
    ]


def test_check_wants_a_password_source_and_a_matching_record(tmp_path: Path) -> None:
    write_record(tmp_path / "record.json")
    path = write(tmp_path, TWIN + f'[chain]\ndeployment = "record.json"\ncontract = "{OTHER}"\n')
    (tmp_path / "spec.json").write_text("{}")

    result = CliRunner().invoke(cli(), ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert "no key password: set [keys] password_file or $FLARE_PASSWORD" in result.stderr
    assert f"[chain] contract {OTHER} is not the contract of" in result.stderr


def test_check_reports_load_errors_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '[chain]\nrcp = "x"\n')

    text = CliRunner().invoke(cli(), ["config", "check", "--config", str(path)])
    data = CliRunner().invoke(cli(), ["config", "check", "--config", str(path), "--json"])
    missing = CliRunner().invoke(cli(), ["config", "check", "--config", str(tmp_path / "no.toml")])

    assert text.exit_code == data.exit_code == missing.exit_code == 2
    assert f"{path}:2: unknown key [chain] rcp; did you mean rpc?" in text.stderr
    assert json.loads(data.stdout) == {
        "ok": False,
        "problems": [f"{path}:2: unknown key [chain] rcp; did you mean rpc?"],
        "source": str(path),
    }
    assert "no config file at" in missing.stderr
    assert "hint: write one with" in missing.stderr


def test_check_json(tmp_path: Path) -> None:
    path = ready_node(tmp_path)

    good = CliRunner().invoke(
        cli(),
        ["config", "check", "--config", str(path), "--json"],
        env={"FLARE_LOG_FORMAT": "json"},
    )
    (tmp_path / "password").unlink()
    bad = CliRunner().invoke(cli(), ["config", "check", "--config", str(path), "--json"])

    assert good.exit_code == 0, good.output
    data = json.loads(good.stdout)
    assert data["ok"] is True
    assert data["problems"] == []
    assert data["log"]["format"] == "json"
    assert data["chain"]["contract"] == ADDRESS
    assert data["set_by"] == {
        "log.format": "$FLARE_LOG_FORMAT",
        "chain.contract": "[chain] deployment",
        "chain.from_block": "[chain] deployment",
    }
    assert bad.exit_code == 2
    failed = json.loads(bad.stdout)
    assert failed["ok"] is False
    assert failed["problems"] == [f"[keys] password_file {tmp_path}/password does not exist"]
    assert failed["training"]["steps"] == 100
