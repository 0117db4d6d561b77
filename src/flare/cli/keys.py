"""`flare-node keys`: show the node's public identity, check its password, add a BLS key."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, resolve_home
from flare.cli.password import PasswordFileOption, read_password

if TYPE_CHECKING:
    from flare.node.identity import KdfCost, PublicIdentity


class KdfProfile(StrEnum):
    """How hard the password KDFs work; `light` is for small devices and CI."""

    STANDARD = "standard"
    LIGHT = "light"


KdfOption = Annotated[
    KdfProfile,
    typer.Option(
        "--kdf",
        help="Password hashing cost: standard (scrypt n=2^18, Argon2id 256 MiB, ~1.5 s per "
        "key) or light (scrypt n=2^12, Argon2id 64 MiB, ~0.1 s per key).",
    ),
]


def kdf_cost(profile: KdfProfile) -> KdfCost:
    """The KDF parameters of a profile."""
    from flare.node.identity import LIGHT_COST, STANDARD_COST

    return STANDARD_COST if profile is KdfProfile.STANDARD else LIGHT_COST


app = typer.Typer(help="Show, check and upgrade the node's keys.", no_args_is_help=True)


def identity_fields(identity: PublicIdentity) -> dict[str, Any]:
    """The public identity as `--json` prints it; the chain stores keccak256 of the BLS key."""
    from eth_utils.crypto import keccak

    return {
        "address": identity.address,
        "bls_public_key": identity.bls_public_key,
        "bls_key_hash": keccak(identity.bls_public_key),
        "peer_public_key": identity.peer_public_key,
    }


def echo_identity(identity: PublicIdentity) -> None:
    """The public identity for people, one value per line."""
    fields = identity_fields(identity)
    typer.echo(f"Address          {identity.address}")
    typer.echo(f"BLS key hash     0x{fields['bls_key_hash'].hex()}  (what the contract stores)")
    typer.echo(f"BLS public key   0x{identity.bls_public_key.hex()}")
    typer.echo(f"Peer key         0x{identity.peer_public_key.hex()}  (ed25519)")


@app.command()
def show(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Print the node's address, BLS and peer public keys (no password needed, no secret shown)."""
    from flare.node.identity import read_identity

    identity = read_identity(resolve_home(home))
    if json_output:
        emit_json(identity_fields(identity))
        return
    echo_identity(identity)


@app.command()
def check(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Unlock all three keys and confirm they match the public keys on record."""
    from flare.node.identity import load_node_keys

    root = resolve_home(home)
    password = read_password(password_file, prompt="Key password")
    if not json_output:
        typer.echo("Unlocking keys...", err=True)
    identity = load_node_keys(root, password).identity
    if json_output:
        emit_json({"ok": True, **identity_fields(identity)})
        return
    typer.echo(f"OK: all three keys in {root} open with this password.")
    echo_identity(identity)


@app.command("add-bls")
def add_bls(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    kdf: KdfOption = KdfProfile.STANDARD,
    json_output: JsonOption = False,
) -> None:
    """Upgrade a node home made before BLS keys: add the BLS key committee seats need.

    The password must open the home's keys; the new key is sealed under it too. The old
    ed25519 key stays the node's peer key (vrf.json becomes peer.json). Register the node
    again afterwards: a contract of interface version 2 needs the BLS key.
    """
    from flare.node.identity import add_bls_key

    root = resolve_home(home)
    password = read_password(password_file, prompt="Key password")
    if not json_output:
        typer.echo(f"Adding a BLS key ({kdf.value} KDF cost)...", err=True)
    created = add_bls_key(root, password, cost=kdf_cost(kdf))
    if json_output:
        emit_json({"home": root, "bls_key": created.paths.bls, **identity_fields(created.identity)})
        return
    typer.echo(
        f"Added {created.paths.bls}; the ed25519 key is the peer key in {created.paths.peer}."
    )
    echo_identity(created.identity)
    typer.echo("Back up the keys directory again: it holds a new key.")
