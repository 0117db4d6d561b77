"""The node's one config file (`flare-node run --config node.toml`): schema and loader.

A node runs unattended next to a robot's data, so a typo must stop it at start with the file,
line and key named, not hours later in its first round. Settings come from the TOML file, then
from `FLARE_<TABLE>_<KEY>` variables (what containers and systemd units set), which win.
Whether the files it names exist is `flare-node config check`'s business and the node's at
start, not the loader's: a config is often written before the data arrives.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flare.protocol.errors import ConfigError
from flare.protocol.limits import NetworkLimits


@dataclass(frozen=True)
class ChainSettings:
    rpc: str = "eth-tester://"  # http(s)://host:port, or eth-tester:// (in-process dev chain)
    contract: str | None = None  # FlareRounds address (0x + 40 hex); or take it from `deployment`
    deployment: Path | None = None  # a record written by `flare-node contract deploy`
    from_block: int | None = None  # where event scans start; default: the record's block, else 0
    confirmations: int = 0  # blocks to wait on top of a receipt (0 on dev chains)
    receipt_timeout: float = 120.0  # seconds
    poll_interval: float = 2.0  # seconds between looks at the chain while waiting


@dataclass(frozen=True)
class KeySettings:
    password_file: Path | None = (
        None  # first line = the key password, mode 0600; else $FLARE_PASSWORD
    )


@dataclass(frozen=True)
class StoreSettings:
    url: str = "embedded"  # "embedded" or ipfs://host:port (an IPFS daemon's RPC API)
    path: Path | None = None  # the embedded store's directory; default <home>/store


@dataclass(frozen=True)
class NetworkSettings:
    """Limits on every call to the chain's RPC endpoint and the IPFS daemon (seconds)."""

    connect_timeout: float = 10.0  # to open a connection
    idle_timeout: float = 60.0  # the longest silence while sending or waiting for an answer
    deadline: float = 300.0  # the most one call may take in all, retries included

    def limits(self) -> NetworkLimits:
        return NetworkLimits(self.connect_timeout, self.idle_timeout, self.deadline)


@dataclass(frozen=True)
class DataSettings:
    dataset: Path | None = None  # a LeRobot v3 dataset directory
    rename_cameras: Mapping[str, str] = field(default_factory=dict)  # dataset key -> policy key


@dataclass(frozen=True)
class ModelSettings:
    policy: Path | None = None  # the deployment's base SmolVLA checkpoint directory
    backbone: Path | None = None  # optional backbone directory (default: <policy>/backbone)


@dataclass(frozen=True)
class TrainingSettings:
    trainer: str = "lerobot"  # "lerobot" or "twin" (a torch-free stand-in for tests, benchmarks)
    steps: int = 100
    batch_size: int = 8
    mu: float = 0.0  # FedProx strength
    lr: float | None = None  # peak learning rate; None = the policy preset's
    held_out: float = 0.25  # fraction of each task's episodes held out for acceptance (0 < x < 1)
    eval_samples: int = 64
    schedule_steps: int | None = None  # LR schedule length across rounds; None = the preset's
    rank: int = 4  # PowerSGD rank (1..64)
    power_iterations: int = 1  # 1..8
    device: str | None = None  # cpu, cuda, cuda:N; None = CUDA if present
    threads: int | None = None  # torch CPU threads
    seed: int = 0
    twin_spec: Path | None = None  # trainer = "twin": the model spec JSON file
    twin_index: int = 0  # trainer = "twin": which node's data the twin pretends to hold


@dataclass(frozen=True)
class RetentionSettings:
    keep_globals: int = 5  # global models kept pinned (the last N); >= 1
    keep_update_rounds: int = 2  # rounds whose updates stay pinned; >= 1
    gc: bool = True  # run the embedded store's garbage collection after unpinning


@dataclass(frozen=True)
class MetricsSettings:
    addr: str | None = None  # HOST:PORT serving /metrics and /healthz; None = no server
    stale_after: float = 300.0  # seconds of failing steps after which /healthz says unhealthy


@dataclass(frozen=True)
class GossipSettings:
    enabled: bool = False  # join the deployment's gossip topic over libp2p
    listen: str = "/ip4/0.0.0.0/tcp/4001"  # multiaddr to listen on (tcp/0: any free port)
    announce: str | None = None  # multiaddr peers dial, e.g. /dns4/node-0/tcp/4001
    bootstrap: tuple[str, ...] = ()  # multiaddrs ending in /p2p/<peer id> to join through
    peers_dir: Path | None = None  # a directory nodes on one host share to find each other


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"  # debug, info, warning, error
    format: str = "text"  # text or json (one JSON object per line)
    file: Path | None = None  # default: stderr


@dataclass(frozen=True)
class NodeConfig:
    """Everything `flare-node run` reads; from `load_config`, paths are absolute."""

    source: Path | None  # the file it was read from (None: defaults only)
    home: Path = Path("~/.flare")  # keys, state database, trainer state, embedded store
    chain: ChainSettings = field(default_factory=ChainSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    gossip: GossipSettings = field(default_factory=GossipSettings)
    log: LogSettings = field(default_factory=LogSettings)


TABLES: dict[str, type[Any]] = {
    "chain": ChainSettings,
    "keys": KeySettings,
    "store": StoreSettings,
    "network": NetworkSettings,
    "data": DataSettings,
    "model": ModelSettings,
    "training": TrainingSettings,
    "retention": RetentionSettings,
    "metrics": MetricsSettings,
    "gossip": GossipSettings,
    "log": LogSettings,
}
_KINDS = {"str": "str", "Path": "path", "int": "int", "float": "float", "bool": "bool"}
_KINDS["Mapping[str, str]"] = "mapping"
_KINDS["tuple[str, ...]"] = "strings"


def _kind_of(annotation: str) -> str:
    return _KINDS[annotation.removesuffix(" | None")]


# table -> key -> kind; the table "" holds the top-level keys.
SCHEMA: dict[str, dict[str, str]] = {
    "": {"home": "path"},
    **{
        name: {f.name: _kind_of(str(f.type)) for f in dataclasses.fields(cls)}
        for name, cls in TABLES.items()
    },
}
HINT = "`flare-node config example` prints every setting with its meaning"


class ConfigFileError(ConfigError):
    """The config file or a FLARE_* variable is unusable; `problems` lists every reason."""

    def __init__(
        self, message: str, *, hint: str | None = HINT, problems: Sequence[str] = ()
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = tuple(problems) or (message,)

    @classmethod
    def of(cls, problems: Sequence[str], where: str) -> ConfigFileError:
        """One error for all `problems`, so an operator fixes the file in one pass."""
        if len(problems) == 1:
            return cls(problems[0])
        listed = "\n".join(f"  {problem}" for problem in problems)
        return cls(f"{where} has {len(problems)} problems:\n{listed}", problems=problems)


def load_config(path: Path | None, environ: Mapping[str, str]) -> NodeConfig:
    """The node's settings: defaults, then the file at `path`, then `FLARE_*` variables.

    `path` None reads no file. A `[chain] deployment` record is read to fill the contract
    address and the first block. Raises `ConfigFileError` naming every problem found.
    """
    return resolve_deployment(parse_config(path, environ))


def parse_config(path: Path | None, environ: Mapping[str, str]) -> NodeConfig:
    """`load_config` without reading the deployment record (`config check` reports it apart)."""
    reader = _Reader(str(path) if path is not None else None)
    if path is not None:
        text = _read_text(path)
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigFileError(f"{path}: invalid TOML: {error}") from None
        reader.read_file(document, text, path.absolute().parent)
    reader.read_environ(environ, Path.cwd())
    where = str(path) if path is not None else "the configuration"
    if reader.problems:
        raise ConfigFileError.of(reader.problems, where)
    sections = {
        name: cls(**{key: value for (table, key), value in reader.values.items() if table == name})
        for name, cls in TABLES.items()
    }
    home = reader.values.get(("", "home"), Path("~/.flare").expanduser())
    config = NodeConfig(source=path.absolute() if path else None, home=home, **sections)
    problems = reader.cross_check(config)
    if problems:
        raise ConfigFileError.of(problems, where)
    return config


def resolve_deployment(config: NodeConfig) -> NodeConfig:
    """Fill `[chain] contract` and `from_block` (when unset) from the deployment record.

    A contract given next to a record must be the record's: two addresses that disagree mean
    the operator copied one of them from another deployment.
    """
    chain = config.chain
    if chain.deployment is None:
        return config
    from flare.chain.deploy import DeploymentFileError, read_deployment

    try:
        record = read_deployment(chain.deployment)
    except DeploymentFileError as error:
        raise ConfigFileError(f"[chain] deployment: {error.message}", hint=error.hint) from None
    if chain.contract is not None and chain.contract.lower() != record.address.lower():
        raise ConfigFileError(
            f"[chain] contract {chain.contract} is not the contract of [chain] deployment "
            f"{chain.deployment} ({record.address})",
            hint="drop [chain] contract, or point [chain] deployment at that contract's record",
        )
    from_block = record.block if chain.from_block is None else chain.from_block
    filled = dataclasses.replace(chain, contract=record.address, from_block=from_block)
    return dataclasses.replace(config, chain=filled)


def env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """Setting ("chain.rpc", "home") -> the variable that sets it, for what `environ` sets."""
    slots, _ = _env_slots(environ)
    return {_dotted(slot): name for slot, name in slots.items()}


def settings_of(config: NodeConfig) -> dict[str, Any]:
    """Every setting by dotted name ("home", "chain.rpc", ...), in schema order."""
    flat: dict[str, Any] = {"home": config.home}
    for name in TABLES:
        section = getattr(config, name)
        for item in dataclasses.fields(section):
            flat[f"{name}.{item.name}"] = getattr(section, item.name)
    return flat


def config_json(config: NodeConfig) -> dict[str, Any]:
    """The config as JSON-ready data: one object per table, paths as strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mapping):
            return dict(value)
        return value

    out: dict[str, Any] = {
        "source": plain(config.source),
        "home": plain(config.home),
    }
    for name in TABLES:
        section = getattr(config, name)
        out[name] = {f.name: plain(getattr(section, f.name)) for f in dataclasses.fields(section)}
    return out


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(
            f"no config file at {path}",
            hint="write one with `flare-node config example > node.toml`, "
            "or name it with --config or $FLARE_CONFIG",
        ) from None
    except IsADirectoryError:
        raise ConfigFileError(f"{path} is a directory, not a config file") from None
    except OSError as error:
        raise ConfigFileError(
            f"cannot read the config file {path}: {error.strerror or error}", hint=None
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigFileError(f"{path} is not UTF-8 text (byte {error.start})") from None


# --- values: conversion and rules -------------------------------------------------------------

Slot = tuple[str, str]  # (table, key); table "" for top-level keys
_WANTS = {
    "str": "a string",
    "path": "a path",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "mapping": "a table of strings",
    "strings": "an array of strings",
}


class _InvalidValueError(Exception):
    """What is wrong with a value, said after its name: 'must be ..., got ...'."""


def _show(value: object) -> str:
    """A value as TOML spells it, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _convert(kind: str, value: object, base: Path) -> Any:
    """`value` as `kind`; an int counts as a number, a bool never as an int."""
    if kind == "mapping" and isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str):
                raise _InvalidValueError(
                    f"must map names to strings, got {json.dumps(key)} = {_show(item)}"
                )
        return dict(value)
    if kind == "strings" and isinstance(value, str):  # from a variable: comma-separated
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if kind == "strings" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, bool):
        if kind == "bool":
            return value
    elif kind == "int" and isinstance(value, int):
        return value
    elif kind == "float" and isinstance(value, int | float):
        return value  # made a float after its rule, so messages show it as written
    elif kind == "str" and isinstance(value, str):
        return value
    elif kind == "path" and isinstance(value, str) and value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    raise _InvalidValueError(f"must be {_WANTS[kind]}, got {_show(value)}")


Rule = Callable[[Any], Any]


def _at_least(low: int) -> Rule:
    def check(value: float) -> float:
        if not value >= low:
            raise _InvalidValueError(f"must be at least {low}, got {_show(value)}")
        return value

    return check


def _within(low: int, high: int) -> Rule:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise _InvalidValueError(f"must be from {low} to {high}, got {_show(value)}")
        return value

    return check


def _positive(value: float) -> float:
    if not value > 0:
        raise _InvalidValueError(f"must be greater than 0, got {_show(value)}")
    return value


def _seconds(value: float) -> float:
    if not 0 < value < float("inf"):
        raise _InvalidValueError(f"must be a number of seconds above 0, got {_show(value)}")
    return value


def _host_port(value: str) -> str:
    found = re.fullmatch(r"\[?([^\[\]\s]+?)\]?:(\d{1,5})", value)
    if found is None or int(found.group(2)) > 65535:
        raise _InvalidValueError(f"must be HOST:PORT (e.g. 127.0.0.1:9464), got {_show(value)}")
    return value


def _multiaddr(value: str) -> str:
    if not re.fullmatch(r"(/[^/\s]+)+", value):
        raise _InvalidValueError(
            f"must be a multiaddr like /ip4/127.0.0.1/tcp/4001, got {_show(value)}"
        )
    return value


def _peer_addrs(value: tuple[str, ...]) -> tuple[str, ...]:
    for entry in value:
        _multiaddr(entry)
        if "/p2p/" not in entry:
            raise _InvalidValueError(f"entries must end in /p2p/<peer id>, got {_show(entry)}")
    return value


def _fraction(value: float) -> float:
    if not 0 < value < 1:
        raise _InvalidValueError(f"must be between 0 and 1 (both excluded), got {_show(value)}")
    return value


def _one_of(*choices: str) -> Rule:
    def check(value: str) -> str:
        if value not in choices:
            close = difflib.get_close_matches(value.lower(), choices, n=1)
            guess = f"; did you mean {json.dumps(close[0])}?" if close else ""
            raise _InvalidValueError(
                f"must be one of {', '.join(choices)}, got {_show(value)}{guess}"
            )
        return value

    return check


def _has_host(url: str, schemes: tuple[str, ...], *, port: bool) -> bool:
    parts = urlsplit(url)
    try:
        number = parts.port
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname) and (number is not None or not port)


def _rpc(value: str) -> str:
    # Hosted endpoints (https://host/v3/KEY) name no port, so only a host is required.
    if value.startswith("eth-tester://") or _has_host(value, ("http", "https"), port=False):
        return value
    raise _InvalidValueError(f"must be eth-tester:// or http(s)://host:port, got {_show(value)}")


def _store_url(value: str) -> str:
    if value == "embedded" or (
        _has_host(value, ("ipfs", "http"), port=True) and urlsplit(value).path in ("", "/")
    ):
        return value
    raise _InvalidValueError(
        f'must be "embedded", ipfs://host:port or http://host:port, got {_show(value)}'
    )


def _address(value: str) -> str:
    from eth_utils.address import to_checksum_address

    from flare.protocol.rounds import address_bytes

    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise _InvalidValueError(f"must be an address (0x and 40 hex digits), got {_show(value)}")
    try:
        return str(to_checksum_address(address_bytes(value)))
    except ConfigError as error:  # a mixed-case address whose EIP-55 checksum fails
        raise _InvalidValueError(f"{value} fails its EIP-55 checksum ({error.hint})") from None


def _device(value: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise _InvalidValueError(f"must be cpu, cuda or cuda:N, got {_show(value)}")
    return value


def _renames(value: dict[str, str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for source, target in value.items():
        if not source or not target:
            raise _InvalidValueError("must map camera keys to camera keys, got an empty key")
        if target in seen:
            raise _InvalidValueError(
                f"maps both {json.dumps(seen[target])} and {json.dumps(source)} "
                f"to {json.dumps(target)}"
            )
        seen[target] = source
    return value


_RULES: dict[Slot, Rule] = {
    ("chain", "rpc"): _rpc,
    ("chain", "contract"): _address,
    ("chain", "from_block"): _at_least(0),
    ("chain", "confirmations"): _at_least(0),
    ("chain", "receipt_timeout"): _positive,
    ("chain", "poll_interval"): _positive,
    ("store", "url"): _store_url,
    ("network", "connect_timeout"): _seconds,
    ("network", "idle_timeout"): _seconds,
    ("network", "deadline"): _seconds,
    ("data", "rename_cameras"): _renames,
    ("training", "trainer"): _one_of("lerobot", "twin"),
    ("training", "steps"): _at_least(1),
    ("training", "batch_size"): _at_least(1),
    ("training", "mu"): _at_least(0),
    ("training", "lr"): _positive,
    ("training", "held_out"): _fraction,
    ("training", "eval_samples"): _at_least(1),
    ("training", "schedule_steps"): _at_least(1),
    ("training", "rank"): _within(1, 64),
    ("training", "power_iterations"): _within(1, 8),
    ("training", "device"): _device,
    ("training", "threads"): _at_least(1),
    ("training", "seed"): _at_least(0),
    ("training", "twin_index"): _at_least(0),
    ("retention", "keep_globals"): _at_least(1),
    ("retention", "keep_update_rounds"): _at_least(1),
    ("metrics", "addr"): _host_port,
    ("metrics", "stale_after"): _seconds,
    ("gossip", "listen"): _multiaddr,
    ("gossip", "announce"): _multiaddr,
    ("gossip", "bootstrap"): _peer_addrs,
    ("log", "level"): _one_of("debug", "info", "warning", "error"),
    ("log", "format"): _one_of("text", "json"),
}


# --- where a key is: tomllib keeps no line numbers, so scan the text -------------------------

_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_KEY = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"\s*\[\[?\s*({_KEY})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"\s*({_KEY})\s*=(.*)$")
_INLINE = re.compile(rf"[{{,]\s*({_KEY})\s*=")


def _key_path(text: str) -> tuple[str, ...] | None:
    """The key path TOML reads in `text` (quotes and dots included); None if it is no key."""
    try:
        node: Any = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(node, dict):
        ((key, node),) = node.items()
        path.append(key)
    return tuple(path)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Key path -> the line that first names it: headers, `key =` lines, inline tables."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    closing: str | None = None  # the delimiter of a multi-line string being skipped
    for number, line in enumerate(text.split("\n"), 1):
        if closing is not None:
            if closing in line:
                closing = None
            continue
        if header := _HEADER.match(line):
            table = _key_path(header[1]) or ()
            found.setdefault(table, number)
        elif (assign := _ASSIGN.match(line)) and (key := _key_path(assign[1])) is not None:
            found.setdefault(table + key, number)
            rest = assign[2]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE.finditer(rest):
                    if (sub := _key_path(inner[1])) is not None:
                        found.setdefault(table + key + sub, number)
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2:
                    closing = quote
    return found


def _line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of `path`, else of the first key under it (a table made by dotted keys)."""
    if path in lines:
        return lines[path]
    return min((n for key, n in lines.items() if key[: len(path)] == path), default=None)


# --- the environment ---------------------------------------------------------------------------


def _env_slots(environ: Mapping[str, str]) -> tuple[dict[Slot, str], list[str]]:
    """Which setting each FLARE_<TABLE>_<KEY> variable sets, and the unknown ones.

    Other FLARE_* variables (FLARE_PASSWORD, FLARE_RPC, ...) belong to other parts of the CLI
    and are left alone; an empty variable counts as unset.
    """
    slots: dict[Slot, str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        if not environ[name]:
            continue
        if name == "FLARE_HOME":
            slots[("", "home")] = name
        for table in TABLES:
            prefix = f"FLARE_{table.upper()}_"
            if not name.startswith(prefix):
                continue
            key = name.removeprefix(prefix).lower()
            if key in SCHEMA[table]:
                slots[(table, key)] = name
            else:
                close = difflib.get_close_matches(key, SCHEMA[table], n=1)
                guess = f"; did you mean ${prefix}{close[0].upper()}?" if close else ""
                problems.append(f"unknown variable ${name}: [{table}] has no key {key}{guess}")
    return slots, problems


def _env_value(raw: str, kind: str) -> Any:
    """A variable's value read as a TOML scalar when it is one, else as the string itself."""
    if "\n" not in raw:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            return raw
        # An address (0x...) is a TOML integer, and a path may look like a number.
        if kind not in ("str", "path") or isinstance(value, str):
            return value
    return raw


def _dotted(slot: Slot) -> str:
    return slot[1] if not slot[0] else f"{slot[0]}.{slot[1]}"


def _named(slot: Slot) -> str:
    return slot[1] if not slot[0] else f"[{slot[0]}] {slot[1]}"


def _suggest(key: str, table: str) -> str:
    """`; did you mean ...?` for a key that is not in `table` (top level: table "")."""
    options = [*SCHEMA[table], *(TABLES if not table else ())]
    close = difflib.get_close_matches(key, options, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    homes = [name for name in TABLES if name != table and key in SCHEMA[name]]
    return f"; did you mean [{homes[0]}] {key}?" if homes else ""


class _Reader:
    """Collects settings with who set them, and every problem met on the way."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.values: dict[Slot, Any] = {}
        self.subjects: dict[Slot, str] = {}  # "node.toml:3: [chain] rpc" or "$FLARE_CHAIN_RPC"
        self.problems: list[str] = []

    def read_file(self, document: dict[str, Any], text: str, base: Path) -> None:
        lines = _key_lines(text)

        def at(*path: str) -> str:
            line = _line_of(lines, path)
            return f"{self.name}:{line}: " if line is not None else f"{self.name}: "

        for table, body in document.items():
            if table in SCHEMA[""]:
                self._set(("", table), body, base, f"{at(table)}{table}")
            elif table not in TABLES:
                if isinstance(body, dict):
                    close = difflib.get_close_matches(table, TABLES, n=1)
                    guess = f"; did you mean [{close[0]}]?" if close else ""
                    self.problems.append(f"{at(table)}unknown table [{table}]{guess}")
                else:
                    self.problems.append(f"{at(table)}unknown key {table}{_suggest(table, '')}")
            elif not isinstance(body, dict):
                self.problems.append(f"{at(table)}[{table}] must be a table, got {_show(body)}")
            else:
                for key, value in body.items():
                    where = at(table, key)
                    if key in SCHEMA[table]:
                        self._set((table, key), value, base, f"{where}[{table}] {key}")
                    else:
                        guess = _suggest(key, table)
                        self.problems.append(f"{where}unknown key [{table}] {key}{guess}")

    def read_environ(self, environ: Mapping[str, str], base: Path) -> None:
        slots, problems = _env_slots(environ)
        self.problems += problems
        for slot, name in slots.items():
            value = _env_value(environ[name], SCHEMA[slot[0]][slot[1]])
            self._set(slot, value, base, f"${name}")

    def _set(self, slot: Slot, value: object, base: Path, subject: str) -> None:
        kind = SCHEMA[slot[0]][slot[1]]
        try:
            converted = _convert(kind, value, base)
            rule = _RULES.get(slot)
            if rule is not None:
                converted = rule(converted)
        except _InvalidValueError as bad:
            self.problems.append(f"{subject} {bad}")
            return
        if kind == "float":
            converted = float(converted)
        self.values[slot] = converted
        self.subjects[slot] = subject

    def cross_check(self, config: NodeConfig) -> list[str]:
        """Settings that are fine alone but not together."""

        def stated(slot: Slot, value: object) -> str:
            if slot in self.subjects:
                return f"{self.subjects[slot]} = {_show(value)}"
            where = f"{self.name}: " if self.name else ""
            return f"{where}{_named(slot)} = {_show(value)} (the default)"

        problems: list[str] = []
        training, chain = config.training, config.chain
        needed = {
            "lerobot": {
                "[data] dataset": config.data.dataset,
                "[model] policy": config.model.policy,
            },
            "twin": {"[training] twin_spec": training.twin_spec},
        }[training.trainer]
        missing = [name for name, value in needed.items() if value is None]
        if missing:
            trainer = stated(("training", "trainer"), training.trainer)
            problems.append(f"{trainer} needs {' and '.join(missing)}")
        if (
            not chain.rpc.startswith("eth-tester://")
            and chain.contract is None
            and chain.deployment is None
        ):
            rpc = stated(("chain", "rpc"), chain.rpc)
            problems.append(f"{rpc} needs [chain] contract or [chain] deployment")
        return problems
