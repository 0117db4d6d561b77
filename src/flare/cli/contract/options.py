"""What every `flare-node contract` command shares: naming the contract, the key, the output.

A contract is named by `--deployment FILE` (the record `deploy` writes, which also pins the
chain id) or `--address`. Transactions are signed with `--keystore` (an encrypted V3 keystore)
or, on local dev chains only, `--dev-account N`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from flare.cli.common import emit_json, network_limits
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from web3 import Web3

    from flare.chain.ledger import Web3Ledger
    from flare.protocol.ledger import TxReceipt
    from flare.protocol.policy import ReviewPolicy
    from flare.protocol.rounds import RoundConfig

DeploymentOption = Annotated[
    Path | None,
    typer.Option(
        "--deployment",
        help="Deployment record written by `contract deploy`.",
        dir_okay=False,
        show_default=False,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        envvar="FLARE_CONTRACT",
        help="Contract address, instead of --deployment.",
        show_default=False,
    ),
]
KeystoreOption = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        help="V3 keystore of the sending account.",
        dir_okay=False,
        show_default=False,
    ),
]
DevAccountOption = Annotated[
    int | None,
    typer.Option(
        "--dev-account",
        min=0,
        help="Send from funded dev account N (0-9). Local dev chains only.",
        show_default=False,
    ),
]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str, what: str) -> int:
    """`90`, `90s`, `45m`, `2h` or `1d` as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None:
        raise ConfigError(f"{what} {text!r} is not a duration", hint="use e.g. 600, 45m, 2h, 1d")
    return int(match[1]) * _UNITS[match[2]]


def duration(value: int) -> str:
    """Seconds in the largest unit that divides them: 5400 -> 90m."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}s"


def hex32(text: str, what: str) -> bytes:
    """32 bytes from 0x-hex, or a `ConfigError` naming the option."""
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ConfigError(f"{what} must be 32 bytes of hex", hint="0x followed by 64 hex digits")
    return value


def cid_text(binary: bytes) -> str:
    """A CID for people (base32); raw hex if the chain holds something that is not a CID."""
    from flare.protocol.cid import CidError, encode_cid

    try:
        return encode_cid(binary)
    except CidError:
        return "0x" + binary.hex()


def signer_key(
    w3: Web3, keystore: Path | None, password_file: Path | None, dev_account: int | None
) -> bytes:
    """The private key to send with, from exactly one of --keystore and --dev-account."""
    from flare.chain.devchain import dev_account_key

    check_signer(keystore, dev_account)
    if dev_account is not None:
        return dev_account_key(int(w3.eth.chain_id), dev_account)
    from flare.cli.password import read_password
    from flare.node.keys import read_keystore

    # check_signer: without --dev-account there is a keystore.
    path = cast("Path", keystore)
    return read_keystore(path, read_password(password_file, prompt="Keystore password"))


def check_signer(keystore: Path | None, dev_account: int | None) -> None:
    """Exactly one of --keystore and --dev-account, or a usage error."""
    if keystore is not None and dev_account is not None:
        raise ConfigError("give --keystore or --dev-account, not both")
    if keystore is None and dev_account is None:
        raise ConfigError(
            "this command sends a transaction and needs a key",
            hint="pass --keystore FILE (or --dev-account N on a local dev chain)",
        )


def open_contract(
    rpc: str,
    deployment: Path | None,
    address: str | None,
    *,
    signer: bool = False,
    keystore: Path | None = None,
    password_file: Path | None = None,
    dev_account: int | None = None,
) -> Web3Ledger:
    """The ledger named on the command line, checked to be a FlareRounds on this chain.

    The address and the record are checked before the chain is contacted: a typo is then a
    usage error at once, not a wait on a node that may be down.
    """
    from flare.chain.connect import connect
    from flare.chain.deploy import read_deployment
    from flare.chain.ledger import open_ledger
    from flare.cli.hexarg import parse_address

    if (deployment is None) == (address is None):
        raise ConfigError(
            "name the contract with --deployment FILE or --address 0x... (one of them)",
            hint="`flare-node contract deploy` writes the deployment file",
        )
    record = read_deployment(deployment) if deployment is not None else None
    target = record.address if record is not None else parse_address(str(address), what="--address")
    w3 = connect(rpc, limits=network_limits())
    if record is not None and record.chain_id != w3.eth.chain_id:
        raise ConfigError(
            f"{deployment} is a deployment on chain {record.chain_id}, "
            f"but {rpc} is chain {w3.eth.chain_id}",
            hint="pass the --rpc of the chain it was deployed on",
        )
    key = signer_key(w3, keystore, password_file, dev_account) if signer else None
    return open_ledger(w3, target, private_key=key)


def open_signing(
    rpc: str,
    deployment: Path | None,
    address: str | None,
    keystore: Path | None,
    password_file: Path | None,
    dev_account: int | None,
) -> Web3Ledger:
    """`open_contract` for a command that sends transactions."""
    return open_contract(
        rpc,
        deployment,
        address,
        signer=True,
        keystore=keystore,
        password_file=password_file,
        dev_account=dev_account,
    )


def report_tx(what: str, receipt: TxReceipt, json_output: bool, **extra: Any) -> None:
    """One line for people, or one JSON document with the receipt's figures."""
    if json_output:
        emit_json(
            {
                "action": what,
                "tx_hash": receipt.tx_hash,
                "block": receipt.block,
                "gas_used": receipt.gas_used,
                **extra,
            }
        )
        return
    typer.echo(
        f"{what}: tx 0x{receipt.tx_hash.hex()} (block {receipt.block}, gas {receipt.gas_used})"
    )


def config_text(config: RoundConfig) -> str:
    """Round parameters in one line (the policy CID is shown on its own line)."""
    return (
        f"k={config.committee_size}, quorum {config.quorum_bps / 100:.2f}% "
        f"= {config.quorum} approvals, train {duration(config.train_window)} "
        f"(claims for at least {duration(config.min_claim_window)}), "
        f"review {duration(config.review_window)}, min updates {config.min_updates}, "
        f"max samples {config.max_samples}"
    )


def config_json(config: RoundConfig) -> dict[str, Any]:
    """Round parameters for `--json`."""
    return {
        "committee_size": config.committee_size,
        "quorum_bps": config.quorum_bps,
        "quorum": config.quorum,
        "train_window": config.train_window,
        "review_window": config.review_window,
        "min_claim_window": config.min_claim_window,
        "min_updates": config.min_updates,
        "max_samples": config.max_samples,
        "review_policy": cid_text(config.review_policy),
    }


def pin_policy(policy: ReviewPolicy, store: str, data_dir: Path | None, home: Path | None) -> str:
    """Put the policy's canonical bytes in the content store, pinned; returns its CID.

    Seat holders and auditors fetch the policy by the CID the contract holds, so it must be
    where they can get it before anyone relies on it.
    """
    from flare.cli.store import open_store

    backend = open_store(store, data_dir, home)
    try:
        return backend.put(policy.to_bytes())
    finally:
        backend.close()
