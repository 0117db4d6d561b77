"""`flare-node config`: check the node's config file, or print a commented one to start from.

`check` is what an operator runs before leaving a node alone next to a robot: where
`flare-node run` stops at the first problem, it lists them all at once, the files the config
names included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flare.cli.common import JsonOption, emit_json

if TYPE_CHECKING:
    from flare.cli.nodeconfig import NodeConfig

app = typer.Typer(
    help="Check the node's config file (node.toml), or print a commented example.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", envvar="FLARE_CONFIG", help="The node's config file (TOML).", show_envvar=True
    ),
]


@app.command("check")
def check(config: ConfigOption = Path("node.toml"), json_output: JsonOption = False) -> None:
    """Load the config as `flare-node run` would, then look for every file it names.

    Exits 2 listing every problem; otherwise prints the effective settings, marking those
    that FLARE_* variables or the deployment record set.
    """
    from flare.cli.nodeconfig import (
        ConfigFileError,
        config_json,
        env_overrides,
        parse_config,
        resolve_deployment,
        settings_of,
    )
    from flare.protocol.errors import ConfigError

    try:
        parsed = parse_config(config, os.environ)
    except ConfigFileError as error:
        _fail(config, list(error.problems), None, json_output=json_output, hint=error.hint)
    problems = missing_files(parsed, os.environ)
    loaded = parsed
    if parsed.chain.deployment is not None and parsed.chain.deployment.is_file():
        try:
            loaded = resolve_deployment(parsed)
        except ConfigError as error:
            problems.append(error.message)
    if problems:
        _fail(config, problems, loaded, json_output=json_output)

    marks = {key: f"${name}" for key, name in env_overrides(os.environ).items()}
    if parsed.chain.contract is None and loaded.chain.contract is not None:
        marks["chain.contract"] = "[chain] deployment"
    if parsed.chain.from_block is None and loaded.chain.from_block is not None:
        marks["chain.from_block"] = "[chain] deployment"
    if json_output:
        emit_json({**config_json(loaded), "ok": True, "problems": [], "set_by": marks})
        return
    typer.echo(f"{config}: OK")
    lines = {key: f"{key} = {render_value(value)}" for key, value in settings_of(loaded).items()}
    width = max(len(line) for line in lines.values())
    for key, line in lines.items():
        typer.echo(f"{line:<{width}}  # from {marks[key]}" if key in marks else line)


@app.command("example")
def example() -> None:
    """Print a fully commented config to start from: `flare-node config example > node.toml`."""
    typer.echo(EXAMPLE_CONFIG, nl=False)


def missing_files(config: NodeConfig, environ: Mapping[str, str]) -> list[str]:
    """Every file or directory the config names that is not there or not usable.

    The loader leaves this out (a config is often written before the data arrives); a node
    about to be left alone must not find out in its first round.
    """
    from flare.cli.password import PASSWORD_ENV
    from flare.node.keys import read_private_file
    from flare.protocol.errors import FlareError

    problems = [
        problem
        for problem in (
            _expect(config.data.dataset, "[data] dataset", directory=True),
            _expect(config.model.policy, "[model] policy", directory=True),
            _expect(config.model.backbone, "[model] backbone", directory=True),
            _expect(config.training.twin_spec, "[training] twin_spec", directory=False),
            _expect(config.chain.deployment, "[chain] deployment", directory=False),
        )
        if problem is not None
    ]
    dataset = config.data.dataset
    if dataset is not None and dataset.is_dir() and not (dataset / "meta" / "info.json").is_file():
        problems.append(f"[data] dataset {dataset} is not a LeRobot dataset (no meta/info.json)")
    password_file = config.keys.password_file
    if password_file is not None:
        try:
            data = read_private_file(password_file, what="[keys] password_file")
        except FlareError as error:
            problems.append(error.message + (f" ({error.hint})" if error.hint else ""))
        else:
            if not data.decode("utf-8", "replace").partition("\n")[0].strip():
                problems.append(f"[keys] password_file {password_file} has an empty first line")
    elif not environ.get(PASSWORD_ENV):
        problems.append(
            f"no key password: set [keys] password_file or ${PASSWORD_ENV} "
            "(an unattended node cannot be asked for it)"
        )
    log_file = config.log.file
    if log_file is not None and not log_file.parent.is_dir():
        problems.append(f"[log] file {log_file}: directory {log_file.parent} does not exist")
    return problems


def render_value(value: Any) -> str:
    """A setting as TOML spells it; `(not set)` for None (TOML has no null)."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    return str(value)


def _expect(path: Path | None, name: str, *, directory: bool) -> str | None:
    if path is None:
        return None
    if not path.exists():
        return f"{name} {path} does not exist"
    if directory and not path.is_dir():
        return f"{name} {path} is not a directory"
    if not directory and not path.is_file():
        return f"{name} {path} is not a file"
    return None


def _fail(
    source: Path,
    problems: list[str],
    config: NodeConfig | None,
    *,
    json_output: bool,
    hint: str | None = None,
) -> NoReturn:
    """Report every problem (on stdout as JSON, else on stderr) and exit 2 (ConfigError's)."""
    if json_output:
        from flare.cli.nodeconfig import config_json

        payload = config_json(config) if config is not None else {"source": str(source)}
        emit_json({**payload, "ok": False, "problems": problems})
    else:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        typer.echo(f"{source}: {count}", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        if hint:
            typer.echo(f"  hint: {hint}", err=True)
    raise typer.Exit(2)


# docs/node.example.toml holds the same text (a test keeps them equal); a constant, so an
# installed package can print it without package data.
EXAMPLE_CONFIG = """\
# flare-node configuration: `flare-node run --config node.toml`.
#
# Check it with `flare-node config check --config node.toml` before leaving the node alone:
# it lists every problem at once (unknown keys, wrong types, missing files).
#
# Relative paths are resolved against this file's directory; `~` means your home directory.
# Every setting can be overridden by an environment variable FLARE_<TABLE>_<KEY>
# (e.g. FLARE_CHAIN_RPC, FLARE_TRAINING_STEPS, FLARE_LOG_FORMAT); FLARE_HOME sets `home`.
# Variables win over this file; an empty one counts as unset. Commented-out settings show
# their default or an example.

# Keys, the state database, trainer state and the embedded store live here.
home = "~/.flare"

[chain]
# The chain's JSON-RPC endpoint: http(s)://host:port, or eth-tester:// for the in-process
# development chain (which lives only as long as one process).
rpc = "http://127.0.0.1:8545"
# The deployment record `flare-node contract deploy` wrote: gives the FlareRounds address
# and the block where event scans start.
deployment = "deployment.json"
# Or name the contract directly (0x + 40 hex digits); with a record too, they must agree.
# contract = "0x0000000000000000000000000000000000000000"
# Where event scans start. Default: the record's deployment block, else 0.
# from_block = 0
# Blocks to wait on top of a transaction's receipt (0 is fine on development chains).
confirmations = 0
# Seconds to wait for a transaction's receipt.
receipt_timeout = 120.0
# Seconds between looks at the chain while waiting.
poll_interval = 2.0

[keys]
# A file whose first line is the key password; it must be readable by you alone
# (chmod 600). Without it the node reads $FLARE_PASSWORD.
password_file = "password"

[store]
# Where models and updates are kept: "embedded" (blocks on disk, no daemon) or
# ipfs://host:port (an IPFS daemon's RPC API, e.g. ipfs://127.0.0.1:5001).
url = "embedded"
# The embedded store's directory. Default: <home>/store.
# path = "store"

[network]
# Limits on every call to the chain's RPC endpoint and the IPFS daemon, in seconds. A service
# that accepts connections but never answers fails the call within these, naming the limit.
# Seconds to open a connection.
connect_timeout = 10.0
# The longest silence while sending or waiting for an answer.
idle_timeout = 60.0
# The most one call may take in all, retries included (`flare-node --timeout` for commands).
deadline = 300.0

[data]
# The robot's LeRobot v3 dataset directory. It never leaves this machine.
dataset = "data/my-robot"

# Cameras whose dataset key differs from the key the policy expects: dataset key = policy key.
[data.rename_cameras]
# "observation.images.front" = "observation.images.camera1"

[model]
# The deployment's base SmolVLA checkpoint directory (the same for every node).
policy = "models/smolvla-base"
# The backbone directory. Default: <policy>/backbone.
# backbone = "models/smolvla-base/backbone"

[training]
# "lerobot" trains SmolVLA; "twin" is a torch-free stand-in for tests and benchmarks.
trainer = "lerobot"
# Optimizer steps per round, and frames per step.
steps = 100
batch_size = 8
# FedProx strength: how hard local training is pulled towards the global model (0 = FedAvg).
mu = 0.0
# Peak learning rate. Default: the policy preset's.
# lr = 1e-4
# Fraction of each task's episodes held out for the acceptance test (between 0 and 1).
held_out = 0.25
# Held-out frames evaluated per acceptance test.
eval_samples = 64
# Length of the learning-rate schedule across rounds, in steps. Default: the preset's.
# schedule_steps = 3000
# PowerSGD compression of the update: rank (1..64) and power iterations (1..8).
rank = 4
power_iterations = 1
# cpu, cuda or cuda:N. Default: CUDA if present, else the CPU.
# device = "cuda"
# Torch CPU threads. Default: torch's choice.
# threads = 4
# Seed of data order and noise.
seed = 0
# trainer = "twin" only: the model spec JSON file, and which node's data the twin pretends
# to hold.
# twin_spec = "twin-spec.json"
# twin_index = 0

[retention]
# Global models kept pinned in the store (the last N, at least 1).
keep_globals = 5
# Rounds whose updates stay pinned (at least 1).
keep_update_rounds = 2
# Run the embedded store's garbage collection after unpinning.
gc = true

[metrics]
# Serve Prometheus metrics at http://HOST:PORT/metrics and a health check at /healthz
# (`flare-node run --metrics-addr` wins). Keep it on a private interface.
# addr = "127.0.0.1:9464"
# Seconds of steps failing without a success before /healthz answers 503.
stale_after = 300.0

[gossip]
# Announce update CIDs, proposals and liveness to the deployment's other nodes over libp2p
# gossipsub. Optional: a node without gossip fetches everything by the chain's events.
enabled = false
# The multiaddr to listen on (tcp/0: any free port).
listen = "/ip4/0.0.0.0/tcp/4001"
# The multiaddr other nodes dial, when it is not the listen address (NAT, containers).
# announce = "/dns4/node-0.example.org/tcp/4001"
# Peers to join through, each ending in /p2p/<peer id> (`flare-node status` shows a node's id).
bootstrap = []
# A directory nodes on one host share: each writes its own address there and dials the others'.
# peers_dir = "/var/lib/flare/peers"

[log]
# debug, info, warning or error.
level = "info"
# text, or json (one JSON object per line, for log collectors).
format = "text"
# Log file. Default: standard error.
# file = "flare-node.log"
"""
