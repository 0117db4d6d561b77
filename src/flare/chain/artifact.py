"""The committed FlareRounds artifact (ABI + bytecode): what nodes and deployers run without solc.

Its hash is the sha256 of the file, the same figure `sha256sum` prints; deployment records keep
it so anyone can tell which build a contract was deployed from. `code_matches` compares a
contract's runtime code with the artifact, blanking the immutables the constructor fills in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from flare.protocol.errors import ConfigError, IntegrityError

ARTIFACT_NAME = "FlareRounds.json"


class ArtifactMissingError(ConfigError):
    """The artifact file is not where it should be."""


class ArtifactInvalidError(IntegrityError):
    """The artifact file exists but is not a usable compiler artifact."""


@dataclass(frozen=True)
class Artifact:
    """ABI, creation and runtime bytecode, and where they came from."""

    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    immutable_references: dict[str, list[dict[str, int]]]
    compiler: dict[str, Any]
    sources: dict[str, str]
    sha256: str
    path: str

    def code_matches(self, runtime_code: bytes) -> bool:
        """Whether `runtime_code` is this artifact's runtime bytecode, immutables aside."""
        if len(runtime_code) != len(self.deployed_bytecode):
            return False
        return _blank(runtime_code, self.immutable_references) == _blank(
            self.deployed_bytecode, self.immutable_references
        )

    def abi_items(self, kind: str) -> list[dict[str, Any]]:
        """ABI entries of one kind: "function", "event" or "error"."""
        return [item for item in self.abi if item.get("type") == kind]


def default_artifact_path() -> Path:
    """The artifact inside the installed package."""
    return Path(str(resources.files("flare.chain").joinpath("artifacts", ARTIFACT_NAME)))


def load_artifact(path: Path | None = None) -> Artifact:
    """Read an artifact (by default the committed one) and check it has what deploys need."""
    where = path if path is not None else default_artifact_path()
    try:
        raw = where.read_bytes()
    except FileNotFoundError as error:
        raise ArtifactMissingError(
            f"no contract artifact at {where}",
            hint="reinstall flare-node, or rebuild it from a checkout with "
            "`flare-node contract compile`",
        ) from error
    try:
        data = json.loads(raw)
        return Artifact(
            abi=list(data["abi"]),
            bytecode=bytes.fromhex(str(data["bytecode"]).removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(str(data["deployedBytecode"]).removeprefix("0x")),
            immutable_references=dict(data.get("immutableReferences", {})),
            compiler=dict(data.get("compiler", {})),
            sources=dict(data.get("sources", {})),
            sha256=hashlib.sha256(raw).hexdigest(),
            path=str(where),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactInvalidError(
            f"{where} is not a FlareRounds artifact ({type(error).__name__}: {error})",
            hint="rebuild it with `flare-node contract compile`",
        ) from error


def _blank(code: bytes, references: dict[str, list[dict[str, int]]]) -> bytes:
    buffer = bytearray(code)
    for spans in references.values():
        for span in spans:
            start, length = int(span["start"]), int(span["length"])
            buffer[start : start + length] = bytes(length)
    return bytes(buffer)
