"""Deploy FlareRounds and keep a record of where it went.

The deployment record (JSON) is what operators and auditors are handed: address, chain id,
deployment block (where an event scan starts), the artifact hash (which build), and the
constructor parameters. The RPC URL is deliberately not stored: it may carry an API key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from flare.chain.artifact import Artifact, load_artifact
from flare.chain.files import write_atomically
from flare.chain.ledger import Web3Ledger, checksum
from flare.chain.reverts import RevertDecoder
from flare.chain.transact import Transactor
from flare.protocol.errors import ConfigError
from flare.protocol.rounds import RoundConfig

DEPLOYMENT_FORMAT = "flare-deployment/1"


class DeploymentFileError(ConfigError):
    """A deployment record is missing, malformed, or cannot be written."""


@dataclass(frozen=True)
class Deployment:
    """Where a FlareRounds lives and how it was built and configured."""

    address: str
    chain_id: int
    block: int
    tx_hash: str
    deployer: str
    owner: str
    artifact_sha256: str
    model_spec_hash: str
    genesis_model: str  # binary CID as 0x-hex
    allowlist: bool
    config: dict[str, Any]
    gas_used: int

    def to_json(self) -> dict[str, Any]:
        """The record as written to disk."""
        return {"format": DEPLOYMENT_FORMAT, "contract": "FlareRounds", **asdict(self)}

    def render(self) -> str:
        """The record file's text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        """Write atomically, so an interrupted deploy never leaves half a record.

        Raises `DeploymentFileError` when the file cannot be written (no such directory, no
        permission, disk full).
        """
        try:
            write_atomically(path, self.render().encode())
        except OSError as error:
            raise DeploymentFileError(
                f"cannot write the deployment record {path}: {error.strerror or error}",
                hint="check that its directory is writable and the disk has free space",
            ) from error


def read_deployment(path: Path) -> Deployment:
    """Load a deployment record written by `Deployment.write`."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DeploymentFileError(
            f"no deployment record at {path}",
            hint="pass the file `flare-node contract deploy` wrote, or --address",
        ) from error
    except (OSError, ValueError) as error:
        raise DeploymentFileError(
            f"{path} is not a deployment record: {error}",
            hint="pass the file `flare-node contract deploy` wrote",
        ) from error
    if not isinstance(data, dict) or data.get("format") != DEPLOYMENT_FORMAT:
        raise DeploymentFileError(
            f"{path} is not a {DEPLOYMENT_FORMAT} deployment record",
            hint="pass the file `flare-node contract deploy` wrote",
        )
    try:
        fields = {name: data[name] for name in Deployment.__dataclass_fields__}
        fields["address"] = checksum(str(fields["address"]))
        return Deployment(**fields)
    except KeyError as error:
        raise DeploymentFileError(
            f"{path} lacks the field {error.args[0]!r}",
            hint="pass the file `flare-node contract deploy` wrote",
        ) from error


def deploy(
    w3: Web3,
    private_key: bytes,
    *,
    model_spec_hash: bytes,
    genesis_model: bytes,
    config: RoundConfig,
    allowlist: bool = True,
    owner: str | None = None,
    artifact: Artifact | None = None,
    poll_latency: float = 0.005,
) -> tuple[Deployment, Web3Ledger]:
    """Deploy FlareRounds and return its record and a ledger speaking for the deployer."""
    built = artifact if artifact is not None else load_artifact()
    if len(model_spec_hash) != 32:
        raise ConfigError(
            f"the model spec hash is 32 bytes, got {len(model_spec_hash)}",
            hint="give it as 0x followed by 64 hex digits",
        )
    sender = Transactor(w3, RevertDecoder(built.abi), private_key, poll_latency=poll_latency)
    deployer = str(sender.address)
    owner_address = checksum(owner) if owner is not None else checksum(deployer)
    factory = w3.eth.contract(abi=built.abi, bytecode=built.bytecode)
    constructor = factory.constructor(
        owner_address, model_spec_hash, genesis_model, config.as_tuple(), allowlist
    )
    receipt = sender.send(constructor)
    record = Deployment(
        address=checksum(str(receipt["contractAddress"])),
        chain_id=int(w3.eth.chain_id),
        block=int(receipt["blockNumber"]),
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        deployer=deployer,
        owner=owner_address,
        artifact_sha256=built.sha256,
        model_spec_hash="0x" + model_spec_hash.hex(),
        genesis_model="0x" + genesis_model.hex(),
        allowlist=allowlist,
        config={
            "committeeSize": config.committee_size,
            "quorumBps": config.quorum_bps,
            "trainWindow": config.train_window,
            "reviewWindow": config.review_window,
            "minClaimWindow": config.min_claim_window,
            "minUpdates": config.min_updates,
            "maxSamples": config.max_samples,
            "reviewPolicy": "0x" + config.review_policy.hex(),
        },
        gas_used=int(receipt["gasUsed"]),
    )
    ledger = Web3Ledger(w3, record.address, built, private_key, poll_latency=poll_latency)
    return record, ledger
