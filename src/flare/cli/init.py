"""`flare-node init`: create the node home with a fresh Ethereum account and VRF key."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, resolve_home
from flare.cli.password import PasswordFileOption, check_new_password, read_password


class KdfProfile(StrEnum):
    """How hard the password KDFs work; `light` is for small devices and CI."""

    STANDARD = "standard"
    LIGHT = "light"


def init(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace existing keys; the old files are kept as .bak backups."
        ),
    ] = False,
    kdf: Annotated[
        KdfProfile,
        typer.Option(
            "--kdf",
            help="Password hashing cost: standard (scrypt n=2^18, Argon2id 256 MiB, ~1.5 s "
            "per key) or light (scrypt n=2^12, Argon2id 64 MiB, ~0.1 s for both).",
        ),
    ] = KdfProfile.STANDARD,
    json_output: JsonOption = False,
) -> None:
    """Create the node home: an Ethereum account (V3 keystore) and an ed25519 VRF key.

    Both keys are encrypted with one password: --password-file, $FLARE_PASSWORD, or a prompt.
    Existing keys are never replaced without --force.
    """
    from flare.node.identity import (
        LIGHT_COST,
        STANDARD_COST,
        create_node_keys,
        refuse_existing_keys,
    )

    root = resolve_home(home)
    if not force:
        refuse_existing_keys(root)  # before the prompt, so nobody types a password for nothing
    password = read_password(password_file, prompt="New key password", confirm=True)
    check_new_password(password)
    if not json_output:
        typer.echo(f"Encrypting new keys ({kdf.value} KDF cost)...", err=True)
    cost = STANDARD_COST if kdf is KdfProfile.STANDARD else LIGHT_COST
    created = create_node_keys(root, password, cost=cost, force=force)

    if json_output:
        emit_json(
            {
                "home": root,
                "address": created.identity.address,
                "vrf_public_key": created.identity.vrf_public_key,
                "ethereum_keystore": created.paths.ethereum,
                "vrf_key": created.paths.vrf,
                "backups": list(created.backups),
            }
        )
        return
    typer.echo(f"Node home      {root}")
    typer.echo(f"Address        {created.identity.address}")
    typer.echo(f"VRF public key 0x{created.identity.vrf_public_key.hex()}")
    typer.echo(f"Keystore       {created.paths.ethereum}")
    typer.echo(f"VRF key        {created.paths.vrf}")
    for backup in created.backups:
        typer.echo(f"Old key kept   {backup}")
    typer.echo("Back up the keys directory and the password; neither can be recovered.")
