"""Compile FlareRounds from a source checkout into the artifact the package ships.

py-solc-x drives the project's `tools/solc` shim over npm solc (solcjs, so a build needs no
native solc binary and no download), with the same settings as `contracts/foundry.toml`. The
artifact holds the ABI, both bytecodes, the compiler settings and a keccak256 of every source
file, so a test can tell that the committed artifact is stale and a node never needs a compiler.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from flare.chain.files import write_atomically
from flare.protocol.errors import ConfigError, FlareError, IntegrityError

CONTRACT_NAME = "FlareRounds"
SOURCE_UNIT = "contracts/src/FlareRounds.sol"
SHIM = "tools/solc"
ARTIFACT_IN_CHECKOUT = "src/flare/chain/artifacts/FlareRounds.json"
# Mirrors contracts/foundry.toml, so forge's gas reports and this artifact describe one build.
SETTINGS: dict[str, Any] = {
    "evmVersion": "prague",
    "optimizer": {"enabled": True, "runs": 10_000},
    "metadata": {"bytecodeHash": "none"},
    "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
}
_OUTPUTS = [
    "abi",
    "evm.bytecode.object",
    "evm.deployedBytecode.object",
    "evm.deployedBytecode.immutableReferences",
    "evm.methodIdentifiers",
]


class CompilerUnavailableError(ConfigError):
    """No checkout with contract sources and the npm compiler was found."""


class CompilationError(FlareError, RuntimeError):
    """solc rejected the sources."""


class ArtifactStaleError(IntegrityError):
    """The committed artifact is not what the sources compile to."""


class ArtifactFileError(ConfigError):
    """The artifact or a contract source in the checkout cannot be read or written."""


@dataclass(frozen=True)
class BuildResult:
    """What a build produced and whether it differs from the artifact on disk."""

    path: Path
    sha256: str
    changed: bool
    solc: str
    runtime_bytes: int


def find_project_root(start: Path | None = None) -> Path:
    """The checkout holding `contracts/src` and `tools/solc`, from `start`, the cwd or this file."""
    starts = [start] if start is not None else [Path.cwd(), Path(__file__).resolve()]
    for origin in starts:
        for candidate in (origin, *origin.parents):
            if (candidate / SOURCE_UNIT).is_file() and (candidate / SHIM).is_file():
                return candidate
    raise CompilerUnavailableError(
        "no flare-node source checkout found (contracts/src/FlareRounds.sol and tools/solc)",
        hint="run from the repository root, or pass --root; running a node needs no compiler",
    )


def compile_contract(root: Path) -> dict[str, Any]:
    """Compile the contract under `root` and return the artifact as a JSON-ready dict."""
    import solcx  # deferred: only deployers who rebuild the artifact need the compiler

    shim = root / SHIM
    if not (root / "node_modules" / "solc").is_dir():
        raise CompilerUnavailableError(
            f"npm solc is not installed under {root / 'node_modules'}",
            hint="run `make setup` (npm ci) first",
        )
    source = (root / SOURCE_UNIT).read_text(encoding="utf-8")
    standard_input = {
        "language": "Solidity",
        "sources": {SOURCE_UNIT: {"content": source}},
        "settings": {**SETTINGS, "outputSelection": {SOURCE_UNIT: {CONTRACT_NAME: _OUTPUTS}}},
    }
    try:
        output = solcx.compile_standard(
            standard_input,
            base_path=str(root),
            allow_paths=[str(root)],
            solc_binary=str(shim),
        )
        version = str(solcx.wrapper.get_solc_version(str(shim), with_commit_hash=True))
    except solcx.exceptions.SolcError as error:
        raise CompilationError(
            f"solc failed on {SOURCE_UNIT}: {error.stderr_data or error}",
            hint="fix the reported source errors, then compile again",
        ) from error
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompilationError(
            "solc reported errors:\n" + "\n".join(e.get("formattedMessage", "") for e in errors),
            hint="fix the reported source errors, then compile again",
        )
    built = output["contracts"][SOURCE_UNIT][CONTRACT_NAME]
    return {
        "contractName": CONTRACT_NAME,
        "sourceName": SOURCE_UNIT,
        "compiler": {"solc": version, "settings": SETTINGS},
        "sources": source_hashes(root, sorted(output["sources"])),
        "abi": built["abi"],
        "bytecode": "0x" + built["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + built["evm"]["deployedBytecode"]["object"],
        "immutableReferences": built["evm"]["deployedBytecode"].get("immutableReferences", {}),
        "methodIdentifiers": built["evm"]["methodIdentifiers"],
    }


def source_hashes(root: Path, units: list[str]) -> dict[str, str]:
    """keccak256 of each source unit (a path under `root`) as it is on disk now, no compile."""
    return {unit: "0x" + keccak((root / unit).read_bytes()).hex() for unit in units}


def render_artifact(artifact: dict[str, Any]) -> bytes:
    """The artifact file's exact bytes: stable key order and formatting, so its hash is too."""
    return (json.dumps(artifact, indent=1, sort_keys=True) + "\n").encode()


def write_artifact(artifact: dict[str, Any], path: Path) -> None:
    """Write atomically: a reader never sees half an artifact.

    Raises `ArtifactFileError` when the file cannot be written.
    """
    try:
        write_atomically(path, render_artifact(artifact))
    except OSError as error:
        raise ArtifactFileError(
            f"cannot write the contract artifact {path}: {error.strerror or error}",
            hint="check that the checkout is writable and the disk has free space",
        ) from error


def build_artifact(root: Path, *, check: bool = False) -> BuildResult:
    """Compile and update the checkout's artifact; with `check`, only verify it is current."""
    target = root / ARTIFACT_IN_CHECKOUT
    artifact = compile_contract(root)
    fresh = render_artifact(artifact)
    changed = not target.is_file() or target.read_bytes() != fresh
    if changed and check:
        raise ArtifactStaleError(
            f"{target} is not what the sources compile to",
            hint="run `flare-node contract compile` and commit the result",
        )
    if changed:
        write_artifact(artifact, target)
    return BuildResult(
        path=target,
        sha256=hashlib.sha256(fresh).hexdigest(),
        changed=changed,
        solc=str(artifact["compiler"]["solc"]),
        runtime_bytes=len(artifact["deployedBytecode"]) // 2 - 1,
    )
