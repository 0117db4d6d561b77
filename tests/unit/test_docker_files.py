"""The docker files: two images, a local federation in compose, and what they ask of flare-node.

No docker engine is needed. The files are read and held against the real CLI, the real config
loader and the project's own constants, so a renamed command, a dropped option, a config key
the loader refuses, a node sharing another's volume or a Kubo importer setting that drifts
from the embedded store fails here rather than at `docker compose up`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, get_args

import pytest
import typer
import yaml

from flare.cli.app import app
from flare.cli.nodeconfig import NodeConfig, load_config, parse_config
from flare.protocol.unixfs import CHUNK_SIZE, MAX_LINKS

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
GPU_COMPOSE = DOCKER / "compose.gpu.yaml"
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore"))
SCRIPTS = sorted(DOCKER.rglob("*.sh"))
FLARE_IMAGE = "flare-node:"  # images built from docker/Dockerfile* are tagged flare-node:...

# The commands the federation depends on: if the parser below stopped finding them, every
# other check of the invocations would pass on nothing.
EXPECTED_COMMANDS = {
    ("init",),
    ("keys", "show"),
    ("data", "synth"),
    ("model", "genesis"),
    ("policy", "new"),
    ("contract", "deploy"),
    ("contract", "info"),
    ("contract", "start"),
    ("config", "check"),
    ("register",),
    ("run",),
}


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def cli() -> Any:
    root = typer.main.get_command(app)
    assert _is_group(root)
    return root


# --- shell: the simple commands of a script or a compose command --------------------------

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_REDIRECTS = {">", ">>", "<", ">&", "<&", ">|"}


def logical_lines(text: str) -> Iterator[str]:
    """The script's lines with continuations joined; comments and here-document bodies go."""
    pending = ""
    lines = iter(text.splitlines())
    for line in lines:
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole, pending = pending + line, ""
        yield whole
        heredoc = _HEREDOC.search(whole)
        if heredoc is not None:  # a here-document's body is data for another program
            for body in lines:
                if body.strip() == heredoc.group(2):
                    break


def simple_commands(text: str) -> Iterator[list[str]]:
    """Each command's words, split at pipes, lists, subshells and redirections.

    Variables stay as written ("$home"): what is checked is the command line's shape.
    """
    for line in logical_lines(text):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in lexer:
            if token and set(token) <= set("();<>|&"):
                if token in _REDIRECTS and words and words[-1].isdigit():
                    words.pop()  # the 2 of 2>/dev/null
                if words:
                    yield words
                words = []
                if token in _REDIRECTS:
                    next(lexer, None)  # the redirection's target is no word of the command
            else:
                words.append(token)
        if words:
            yield words


def flare_invocations(text: str) -> list[list[str]]:
    """The arguments of every `flare-node` command in a piece of shell."""
    found = []
    for words in simple_commands(text):
        for index, word in enumerate(words):
            if word == "flare-node" or word.endswith("/flare-node"):
                found.append(words[index + 1 :])
                break
    return found


# --- the CLI: resolve an invocation against the real command tree -------------------------
# typer builds the tree from its own parameter classes: a group has `commands`, every
# parameter has `opts` (options start with "-"), and its value type is the annotation.


@dataclass
class Invocation:
    path: tuple[str, ...]
    options: dict[str, str | None] = field(default_factory=dict)  # --name -> value or None
    problems: list[str] = field(default_factory=list)


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _option(command: Any, name: str) -> Any:
    for param in command.params:
        if param.opts[0].startswith("-") and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _takes_value(option: Any) -> bool:
    return not option.is_flag and not option.count


def _value_type(option: Any) -> Any:
    """The option's value type, without the `| None` of an optional one."""
    kinds = [k for k in get_args(option.type_descriptor.annotation) if k is not type(None)]
    return kinds[0] if len(kinds) == 1 else option.type_descriptor.annotation


def _check_value(option: Any, value: str) -> str | None:
    """A literal value the option's type refuses; values naming variables are not judged."""
    if "$" in value:
        return None
    kind = _value_type(option)
    name = option.opts[0]
    if isinstance(kind, type) and issubclass(kind, Enum):
        choices = [member.value for member in kind]
        return None if value in choices else f"{name} {value!r} is not one of {choices}"
    if kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            return f"{name} {value!r} is not {kind.__name__}"
        if (option.min is not None and number < option.min) or (
            option.max is not None and number > option.max
        ):
            return f"{name} {value!r} is out of range {option.min}..{option.max}"
    return None


def resolve(root: Any, words: list[str]) -> Invocation:
    """Walk `words` down the command tree and check every option and the argument count."""
    command = root
    path: list[str] = []
    found = Invocation(())
    index = 0
    while _is_group(command):
        if index >= len(words):
            found.problems.append(f"`flare-node {' '.join(path)}` names no command")
            return found
        word = words[index]
        if word.startswith("-"):  # an option of the group itself, e.g. --timeout
            name, has_value, _ = word.partition("=")
            option = _option(command, name)
            if option is None:
                found.problems.append(f"`flare-node {' '.join(path)}` has no option {name}")
                return found
            index += 2 if _takes_value(option) and not has_value else 1
            continue
        sub = command.commands.get(word)
        if sub is None:
            known = ", ".join(sorted(command.commands))
            found.problems.append(
                f"`flare-node {' '.join([*path, word])}`: no command {word!r} (known: {known})"
            )
            return found
        command, index = sub, index + 1
        path.append(word)
    found.path = tuple(path)
    where = f"`flare-node {' '.join(path)}`"
    positional = 0
    rest = words[index:]
    position = 0
    while position < len(rest):
        word = rest[position]
        position += 1
        if word == "--":
            positional += len(rest) - position
            break
        if not word.startswith("-") or word == "-":
            positional += 1
            continue
        name, has_value, value = word.partition("=")
        option = _option(command, name)
        if option is None:
            found.problems.append(f"{where} has no option {name}")
            continue
        if _takes_value(option) and not has_value:
            if position >= len(rest) or rest[position].startswith("--"):
                found.problems.append(f"{where} {name} needs a value")
                continue
            value = rest[position]
            position += 1
        found.options[name] = value if _takes_value(option) else None
        if _takes_value(option) and (bad := _check_value(option, value)):
            found.problems.append(f"{where} {bad}")
    arguments = [p for p in command.params if not p.opts[0].startswith("-")]
    least = sum(max(a.nargs, 1) for a in arguments if a.required)
    most = None if any(a.nargs < 0 for a in arguments) else sum(a.nargs for a in arguments)
    if positional < least or (most is not None and positional > most):
        found.problems.append(f"{where} takes {least}..{most} arguments, got {positional}")
    return found


# --- compose: services, volumes, where a script comes from -------------------------------


def service_argv(service: dict[str, Any]) -> list[str]:
    """The container's command line: entrypoint and command, the image's when left out."""

    def words(value: Any) -> list[str]:
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    entrypoint = words(service.get("entrypoint"))
    command = words(service.get("command"))
    if not entrypoint and str(service.get("image", "")).startswith(FLARE_IMAGE):
        entrypoint = ["flare-node"]  # the ENTRYPOINT of docker/Dockerfile*
    return entrypoint + command


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def named(self) -> bool:
        return not self.source.startswith((".", "/", "~"))


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"use the short volume syntax: {entry}"
        source, target, *mode = entry.split(":")
        found.append(Mount(source, target, "ro" in mode))
    return found


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The file under docker/ that a bind mount puts at `container_path`."""
    wanted = PurePosixPath(container_path)
    for mount in mounts(service):
        target = PurePosixPath(mount.target)
        if mount.named or not (wanted == target or target in wanted.parents):
            continue
        return (DOCKER / mount.source / wanted.relative_to(target)).resolve()
    return None


def node_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run a node: those given a node config file."""
    return {
        name: service
        for name, service in compose["services"].items()
        if "FLARE_CONFIG" in service.get("environment", {})
    }


def image_env(dockerfile: Path) -> dict[str, str]:
    """The ENV of the image's last stage."""
    stages = parse_dockerfile(dockerfile)
    env: dict[str, str] = {}
    for keyword, rest in stages[-1].instructions:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def node_environ(
    service: dict[str, Any], dockerfile: Path = DOCKER / "Dockerfile"
) -> dict[str, str]:
    """What the node's processes see: the image's ENV, then the service's environment."""
    return {**image_env(dockerfile), **{k: str(v) for k, v in service["environment"].items()}}


def node_config(name: str, service: dict[str, Any]) -> tuple[Path, NodeConfig]:
    """The node's config file under docker/, read as `flare-node run` reads it in there."""
    path = host_path(service, service["environment"]["FLARE_CONFIG"])
    assert path is not None, f"{name}: FLARE_CONFIG is not a file mounted from docker/"
    return path, parse_config(path, node_environ(service))


# --- images: FROM lines and their pins -----------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, with global ARG defaults substituted into FROM."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default.strip("\"'")
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), words[0])
            alias = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(image, alias))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def pinned(image: str) -> bool:
    """Whether `image` names one version: a digest, or a tag other than latest."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]  # a registry's :port is not a tag
    name, colon, tag = last.partition(":")
    return bool(colon and name and tag and tag != "latest" and "$" not in image)


def test_the_pin_check_itself() -> None:
    assert pinned("python:3.12.12-slim-bookworm")
    assert pinned("ghcr.io/foundry-rs/foundry:v1.7.1")
    assert pinned("localhost:5000/team/img:1.0")
    assert pinned("ipfs/kubo@sha256:" + "ab" * 32)
    for loose in ("python", "python:latest", "ghcr.io/x/y", "localhost:5000/img", "${BASE}"):
        assert not pinned(loose), loose


# --- the checks ------------------------------------------------------------------------------


def test_compose_files_parse_and_name_the_federation(compose: dict[str, Any]) -> None:
    assert {"chain", "ipfs", "deploy", "start-rounds"} <= set(compose["services"])
    assert len(node_services(compose)) >= 3
    gpu = load_yaml(GPU_COMPOSE)
    # The GPU override only changes services the base file defines.
    assert set(gpu["services"]) <= set(compose["services"])
    assert set(node_services(compose)) <= set(gpu["services"])


def _compose_cli() -> list[str]:
    """`docker compose`, or the reason it cannot run here."""
    if shutil.which("docker") is None:
        pytest.skip("no docker client on this machine; the YAML checks above still ran")
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin; the YAML checks above still ran")
    return ["docker", "compose"]


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, GPU_COMPOSE]], ids=["cpu", "gpu"])
def test_docker_compose_accepts_the_files(files: list[Path]) -> None:
    command = _compose_cli()
    for file in files:
        command += ["-f", str(file)]
    checked = subprocess.run(
        [*command, "config", "-q"], capture_output=True, text=True, check=False, timeout=120
    )
    assert checked.returncode == 0, checked.stderr


def invocations(compose: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(where, arguments) of every flare-node command the federation runs."""
    found: list[tuple[str, list[str]]] = []
    for name, service in compose["services"].items():
        argv = service_argv(service)
        if argv[:1] == ["flare-node"]:
            found.append((f"service {name}", argv[1:]))
        elif len(argv) >= 3 and argv[1] == "-c":
            found += [(f"service {name}", words) for words in flare_invocations(argv[2])]
    for script in SCRIPTS:
        where = str(script.relative_to(ROOT))
        found += [(where, words) for words in flare_invocations(script.read_text())]
    return found


def test_every_flare_node_command_exists_with_its_options(
    compose: dict[str, Any], cli: Any
) -> None:
    found = invocations(compose)
    problems = [f"{where}: {p}" for where, words in found for p in resolve(cli, words).problems]
    assert not problems, "\n".join(problems)
    used = {resolve(cli, words).path for _, words in found}
    assert used >= EXPECTED_COMMANDS, f"not found any more: {EXPECTED_COMMANDS - used}"


def test_the_invocation_check_itself(cli: Any) -> None:
    """The check above fails on the mistakes it exists for."""

    def problems(line: str) -> list[str]:
        (words,) = flare_invocations(line)
        return resolve(cli, words).problems

    assert not problems(
        'flare-node contract start --rpc "$RPC" --deployment d.json --dev-account=0'
    )
    assert problems("flare-node contract deploi --out x")  # no such command
    assert problems("flare-node contract")  # a group, not a command
    assert problems("flare-node run --config c.toml --metric-addr 0.0.0.0:9100")  # typo
    assert problems("flare-node register --config")  # an option without its value
    assert problems("flare-node data synth")  # OUT is required
    assert problems("flare-node data synth out --skew diagonal")  # not a choice
    assert problems("flare-node init --if-missing --kdf heavy")
    assert not problems('x=$(flare-node keys show --home "$h" --json 2>/dev/null | python -c "")')


def test_service_scripts_are_files_in_docker(compose: dict[str, Any]) -> None:
    """A service that runs a script gets it from a bind mount of a file that exists."""
    for name, service in compose["services"].items():
        argv = service_argv(service)
        if argv[:1] in (["/bin/sh"], ["sh"]) and argv[1:2] != ["-c"]:
            script = host_path(service, argv[1])
            assert script is not None, f"{name}: {argv[1]} is not mounted from docker/"
            assert script.is_file(), f"{name}: {script} does not exist"
            assert DOCKER in script.parents


class _UnknownValueError(Exception):
    """A variable whose value the script computes at run time."""


def _expand(value: str, variables: dict[str, str]) -> str | None:
    """$name, ${name} and ${NAME:-default} from `variables`, else the default; None when a
    variable has neither (its value comes from a command the script runs)."""

    def one(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        if name in variables:
            return variables[name]
        if match[2] is not None:
            return match[2]
        raise _UnknownValueError(name)

    try:
        return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", one, value)
    except _UnknownValueError:
        return None


def script_invocations(script: Path, env: dict[str, str]) -> dict[tuple[str, ...], Invocation]:
    """The script's flare-node commands, their option values expanded from its assignments."""
    variables = {name: str(value) for name, value in env.items() if value is not None}
    for line in logical_lines(script.read_text()):
        assignment = re.fullmatch(r"([a-z_]+)=(\S+)", line.strip())
        if assignment is not None and "$(" not in assignment[2]:
            expanded = _expand(shlex.split(assignment[2])[0], variables)
            if expanded is not None:
                variables[assignment[1]] = expanded
    root = typer.main.get_command(app)
    found = {}
    for words in flare_invocations(script.read_text()):
        invocation = resolve(root, words)
        invocation.options = {
            name: None if value is None or "$(" in value else _expand(value, variables)
            for name, value in invocation.options.items()
        }
        found[invocation.path] = invocation
    return found


def _script_of(service: dict[str, Any]) -> Path:
    script = host_path(service, service_argv(service)[1])
    assert script is not None
    return script


def test_the_deploy_job_writes_what_the_nodes_read(compose: dict[str, Any]) -> None:
    nodes = node_services(compose)
    deploy = compose["services"]["deploy"]
    steps = script_invocations(_script_of(deploy), deploy["environment"])
    for name, service in nodes.items():
        _, config = node_config(name, service)
        assert steps[("contract", "deploy")].options["--out"] == str(config.chain.deployment)
        assert steps[("contract", "deploy")].options["--rpc"] == config.chain.rpc
        assert steps[("model", "genesis")].options["--out"] == str(config.model.policy)
        assert steps[("model", "genesis")].options["--store"] == config.store.url
    # Every node can hold a seat and the quorum is reachable with the nodes there are.
    assert int(steps[("contract", "deploy")].options["--committee-size"] or 0) <= len(nodes)
    assert "--open" in steps[("contract", "deploy")].options  # nobody there to allow nodes

    starter = compose["services"]["start-rounds"]
    start = script_invocations(_script_of(starter), starter["environment"])
    record = start[("contract", "start")].options["--deployment"]
    assert record == steps[("contract", "deploy")].options["--out"]
    assert int(starter["environment"]["FLARE_START_AFTER"]) == len(nodes)


def test_each_node_has_its_own_volume_and_config(compose: dict[str, Any]) -> None:
    nodes = node_services(compose)
    homes: dict[str, str] = {}
    configs: dict[Path, str] = {}
    for name, service in nodes.items():
        path, config = node_config(name, service)
        assert path.parent == DOCKER, f"{name}: its config is not a file of docker/"
        assert path not in configs, f"{name} and {configs.get(path)} share {path.name}"
        configs[path] = name
        config_mount = next(
            m for m in mounts(service) if m.target == service["environment"]["FLARE_CONFIG"]
        )
        assert config_mount.read_only, f"{name}: mount its config read-only"

        own = [m for m in mounts(service) if m.target == str(config.home)]
        assert len(own) == 1, f"{name}: no volume at its home {config.home}"
        assert own[0].named, f"{name}: its home {config.home} is not a named volume"
        volume = own[0].source
        assert volume in compose["volumes"], f"{name}: volume {volume} is not declared"
        assert volume not in homes, f"{name} and {homes.get(volume)} share the volume {volume}"
        homes[volume] = name
        for other, other_service in compose["services"].items():
            if other != name:
                assert volume not in {m.source for m in mounts(other_service)}, (name, other)

        # Secrets and state stay in the node's own volume.
        assert config.keys.password_file is not None
        assert config.home in config.keys.password_file.parents
        assert config.data.dataset is not None
        assert config.home in config.data.dataset.parents


def test_node_configs_load_with_the_real_loader(compose: dict[str, Any], tmp_path: Path) -> None:
    """Every key of every node config, [gossip] included, is one the loader knows.

    The deployment record is written by the deploy job at run time; a record of the same
    form stands in for it so `load_config` runs through to the end.
    """
    from flare.chain.deploy import Deployment

    record = tmp_path / "deployment.json"
    Deployment(
        address="0x" + "5e" * 20,
        chain_id=31337,
        block=3,
        tx_hash="0x" + "01" * 32,
        deployer="0x" + "0d" * 20,
        owner="0x" + "0d" * 20,
        artifact_sha256="00" * 32,
        model_spec_hash="0x" + "02" * 32,
        genesis_model="0x01",
        allowlist=False,
        config={},
        gas_used=1,
    ).write(record)
    for name, service in node_services(compose).items():
        path, config = node_config(name, service)
        loaded = load_config(path, {**node_environ(service), "FLARE_CHAIN_DEPLOYMENT": str(record)})
        assert loaded.chain.contract is not None
        assert loaded.chain.from_block == 3
        assert config.training.trainer == "lerobot"
        assert config.home == Path(image_env(DOCKER / "Dockerfile")["FLARE_HOME"])
    gpu = load_yaml(GPU_COMPOSE)["services"]
    for name, service in node_services(compose).items():
        merged = {**service, "environment": {**service["environment"], **gpu[name]["environment"]}}
        _, config = node_config(name, merged)
        assert config.training.device == "cuda", f"{name}: the GPU override trains on CUDA"


def test_nodes_reach_the_federation_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in node_services(compose).items():
        _, config = node_config(name, service)
        rpc, store = urlsplit_host(config.chain.rpc), urlsplit_host(config.store.url)
        assert rpc == ("chain", 8545), f"{name}: [chain] rpc is not the chain service"
        assert store == ("ipfs", 5001), f"{name}: [store] url is not the Kubo service"
        assert {"deploy", "ipfs"} <= set(service["depends_on"])
        assert service["depends_on"]["deploy"]["condition"] == "service_completed_successfully"
        federation = [m for m in mounts(service) if m.source == "federation"]
        assert len(federation) == 1
        assert federation[0].read_only
        shared = PurePosixPath(federation[0].target)
        assert shared in PurePosixPath(str(config.chain.deployment)).parents
        assert shared in PurePosixPath(str(config.model.policy)).parents
        deploy_mount = [m for m in mounts(services["deploy"]) if m.source == "federation"]
        assert deploy_mount
        assert deploy_mount[0].target == str(shared)
        assert not deploy_mount[0].read_only


def urlsplit_host(url: str) -> tuple[str | None, int | None]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname, parts.port


def test_nodes_gossip_by_name_through_a_shared_directory(compose: dict[str, Any]) -> None:
    peers_volumes = set()
    for name, service in node_services(compose).items():
        _, config = node_config(name, service)
        gossip = config.gossip
        assert gossip.enabled, f"{name}: gossip is off"
        port = re.fullmatch(r"/ip4/0\.0\.0\.0/tcp/(\d+)", gossip.listen)
        assert port is not None, f"{name}: listen on every interface of the container"
        # Others dial the service by name; the peer id is only known once the keys exist.
        assert gossip.announce == f"/dns4/{name}/tcp/{port[1]}"
        assert gossip.peers_dir is not None
        shared = [m for m in mounts(service) if m.target == str(gossip.peers_dir)]
        assert len(shared) == 1, f"{name}: nothing mounted at peers_dir"
        assert shared[0].named
        assert not shared[0].read_only
        peers_volumes.add(shared[0].source)
    assert len(peers_volumes) == 1, "every node must share one peers volume"


def test_node_health_is_checked_on_its_metrics_port(compose: dict[str, Any]) -> None:
    for name, service in node_services(compose).items():
        _, config = node_config(name, service)
        assert config.metrics.addr is not None, f"{name}: no [metrics] addr"
        host, _, port = config.metrics.addr.rpartition(":")
        # Beyond the container's own loopback, or the healthcheck and the host cannot reach it.
        assert host == "0.0.0.0", f"{name}: metrics listen on {host}"  # noqa: S104
        test = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in test, f"{name}: healthcheck {test}"
        published = [p.split(":") for p in service.get("ports", [])]
        assert [p[-1] for p in published] == [port], f"{name}: publish the metrics port"


def test_published_ports_stay_on_this_host(compose: dict[str, Any]) -> None:
    """The RPC endpoints and metrics are admin interfaces: loopback only."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_synthetic_data_is_split_between_the_nodes(compose: dict[str, Any]) -> None:
    nodes = node_services(compose)
    indexes = sorted(int(s["environment"]["FLARE_SYNTH_NODE_INDEX"]) for s in nodes.values())
    assert indexes == list(range(len(nodes)))
    for name, service in nodes.items():
        assert int(service["environment"]["FLARE_SYNTH_NODES"]) == len(nodes), name


def test_kubo_imports_as_the_embedded_store_does(compose: dict[str, Any]) -> None:
    ipfs = compose["services"]["ipfs"]
    init = [m for m in mounts(ipfs) if m.target.startswith("/container-init.d/")]
    assert len(init) == 1
    assert init[0].target.endswith(".sh")
    script = host_path(ipfs, init[0].target)
    assert script is not None
    assert script.is_file()
    settings: dict[str, Any] = {}
    for words in simple_commands(script.read_text()):
        if words[:2] == ["ipfs", "config"]:
            as_json = words[2] == "--json"
            key, value = words[3:5] if as_json else words[2:4]
            settings[key] = json.loads(value) if as_json else value
    assert settings == {
        "Import.CidVersion": 1,
        "Import.UnixFSRawLeaves": True,
        "Import.UnixFSChunker": f"size-{CHUNK_SIZE}",
        "Import.HashFunction": "sha2-256",
        "Import.UnixFSFileMaxLinks": MAX_LINKS,
        "Import.UnixFSDAGLayout": "balanced",
    }
    # UnixFSFileMaxLinks and UnixFSDAGLayout are Kubo 0.40's; an older Kubo refuses them.
    version = re.fullmatch(r"ipfs/kubo:v(\d+)\.(\d+)\.(\d+)", ipfs["image"])
    assert version is not None
    assert (int(version[1]), int(version[2])) >= (0, 40)


def test_the_chain_runs_the_anvil_the_tests_run(compose: dict[str, Any]) -> None:
    package = json.loads((ROOT / "package.json").read_text())
    anvil = package["dependencies"]["@foundry-rs/anvil-linux-amd64"]
    chain = compose["services"]["chain"]
    assert chain["image"] == f"ghcr.io/foundry-rs/foundry:v{anvil}"
    assert service_argv(chain)[0] == "anvil"


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    images = [
        s["image"]
        for f in (COMPOSE, GPU_COMPOSE)
        for s in load_yaml(f)["services"].values()
        if "image" in s
    ]
    assert images
    for image in images:
        assert pinned(image), f"compose image {image} is not pinned"
    assert len(DOCKERFILES) >= 2
    for dockerfile in DOCKERFILES:
        stages = parse_dockerfile(dockerfile)
        names = set()
        for stage in stages:
            if stage.image not in names:
                assert pinned(stage.image), f"{dockerfile.name}: FROM {stage.image}"
            for keyword, rest in stage.instructions:
                source = re.search(r"--from=(\S+)", rest) if keyword == "COPY" else None
                if source is not None and source[1] not in names:
                    assert pinned(source[1]), f"{dockerfile.name}: COPY --from={source[1]}"
            if stage.name:
                names.add(stage.name)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_the_node_unprivileged_and_offline(dockerfile: Path) -> None:
    stages = parse_dockerfile(dockerfile)
    final = stages[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users, "no USER: the node would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), "run as a non-root user"
    entrypoint = [rest for keyword, rest in final.instructions if keyword == "ENTRYPOINT"]
    assert entrypoint
    assert json.loads(entrypoint[-1]) == ["flare-node"]
    env = image_env(dockerfile)
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["FLARE_HOME"] == "/data/flare"

    def installs(stage: Stage) -> str:
        return " ".join(rest for keyword, rest in stage.instructions if keyword == "RUN")

    # libp2p's fastecdsa compiles against GMP in a build stage; the runtime keeps only the
    # shared library, not a compiler.
    assert any(
        re.search(r"\bgcc\b", installs(s)) and "libgmp-dev" in installs(s) for s in stages[:-1]
    )
    assert "libgmp10" in installs(final)
    assert not re.search(r"\bgcc\b", installs(final))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_sends_what_the_image_copies(dockerfile: Path) -> None:
    """The context is the repository root; its per-Dockerfile ignore file lets through only
    what COPY uses, and every such path exists."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    lines = [
        ln.strip()
        for ln in ignore.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing, then let through what the build needs"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    for stage in parse_dockerfile(dockerfile):
        for keyword, rest in stage.instructions:
            if keyword != "COPY" or "--from=" in rest:
                continue
            *sources, _ = [w for w in rest.split() if not w.startswith("--")]
            for source in sources:
                assert source.rstrip("/") in allowed, f"{ignore.name} keeps out {source}"
                assert (ROOT / source).exists(), f"COPY {source}: no such path"


# --- secrets ---------------------------------------------------------------------------------

_HEX_KEY = re.compile(r"0x[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PASSWORD = re.compile(r"(?i)(?:^|[^a-z])pass(?:word|phrase)\s*[:=]\s*[\"']?[^\s\"'#]")
_MNEMONIC_RUN = 12  # BIP-39 phrases have 12 words or more


def _bip39_words() -> set[str]:
    wordlist = resources.files("eth_account.hdaccount") / "wordlist" / "english.txt"
    return set(wordlist.read_text().split())


def secrets_in(text: str, words: set[str]) -> list[str]:
    """What in `text` looks like a key, a password or a seed phrase."""
    found = [f"hex key {m[0][:10]}..." for m in _HEX_KEY.finditer(text)]
    found += ["PEM private key" for _ in _PEM_KEY.finditer(text)]
    found += [f"password {m[0].strip()!r}" for m in _PASSWORD.finditer(text)]
    run = 0
    for token in re.findall(r"[A-Za-z]+|[^A-Za-z\s]", text):
        run = run + 1 if token.lower() in words else 0
        if run == _MNEMONIC_RUN:
            found.append("a run of 12 BIP-39 words (a seed phrase?)")
    return found


def test_the_secret_scan_itself() -> None:
    words = _bip39_words()
    assert secrets_in("key = 0x" + "ab" * 32, words)
    assert secrets_in("-----BEGIN EC PRIVATE KEY-----", words)
    assert secrets_in("password = hunter2", words)
    assert secrets_in("      FLARE_PASSWORD: hunter2", words)
    assert secrets_in("mnemonic: " + " ".join(["test"] * 11 + ["junk"]), words)
    assert not secrets_in('password_file = "/data/flare/password"', words)
    assert not secrets_in("tx 0x" + "ab" * 20, words)


def test_no_secrets_are_committed_under_docker() -> None:
    words = _bip39_words()
    files = [p for p in DOCKER.rglob("*") if p.is_file()]
    assert COMPOSE in files
    assert any(p.suffix == ".toml" for p in files)
    problems = [
        f"{p.relative_to(ROOT)}: {s}" for p in files for s in secrets_in(p.read_text(), words)
    ]
    assert not problems, "\n".join(problems)
