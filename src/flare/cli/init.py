"""`flare-node init`: create the node home with a fresh Ethereum account, BLS and peer key."""

from __future__ import annotations

from typing import Annotated

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, resolve_home
from flare.cli.keys import KdfOption, KdfProfile, echo_identity, identity_fields, kdf_cost
from flare.cli.password import PasswordFileOption, check_new_password, read_password


def init(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace existing keys; the old files are kept as .bak backups."
        ),
    ] = False,
    kdf: KdfOption = KdfProfile.STANDARD,
    json_output: JsonOption = False,
) -> None:
    """Create the node home: an Ethereum account (V3 keystore), a BLS12-381 key (VRF seat
    proofs) and an ed25519 key (peer identity).

    All keys are encrypted with one password: --password-file, $FLARE_PASSWORD, or a prompt.
    Existing keys are never replaced without --force.
    """
    from flare.node.identity import create_node_keys, refuse_existing_keys

    root = resolve_home(home)
    if not force:
        refuse_existing_keys(root)  # before the prompt, so nobody types a password for nothing
    password = read_password(password_file, prompt="New key password", confirm=True)
    check_new_password(password)
    if not json_output:
        typer.echo(f"Encrypting new keys ({kdf.value} KDF cost)...", err=True)
    created = create_node_keys(root, password, cost=kdf_cost(kdf), force=force)

    if json_output:
        emit_json(
            {
                "home": root,
                **identity_fields(created.identity),
                "ethereum_keystore": created.paths.ethereum,
                "bls_key": created.paths.bls,
                "peer_key": created.paths.peer,
                "backups": list(created.backups),
            }
        )
        return
    typer.echo(f"Node home        {root}")
    echo_identity(created.identity)
    typer.echo(f"Keystore file    {created.paths.ethereum}")
    typer.echo(f"BLS key file     {created.paths.bls}")
    typer.echo(f"Peer key file    {created.paths.peer}")
    for backup in created.backups:
        typer.echo(f"Old key kept     {backup}")
    typer.echo("Back up the keys directory and the password; neither can be recovered.")
