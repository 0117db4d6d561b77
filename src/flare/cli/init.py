"""`flare-node init`: create the node home with a fresh Ethereum account, BLS and peer key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, resolve_home
from flare.cli.keys import KdfOption, KdfProfile, echo_identity, identity_fields, kdf_cost
from flare.cli.password import PasswordFileOption, check_new_password, read_password
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from flare.node.identity import KeyPaths


def init(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace existing keys; the old files are kept as .bak backups."
        ),
    ] = False,
    if_missing: Annotated[
        bool,
        typer.Option(
            "--if-missing",
            help="When the home already holds its three keys, say so, touch nothing and exit 0 "
            "(no password needed): for entrypoints and provisioning scripts that run every start.",
        ),
    ] = False,
    kdf: KdfOption = KdfProfile.STANDARD,
    json_output: JsonOption = False,
) -> None:
    """Create the node home: an Ethereum account (V3 keystore), a BLS12-381 key (VRF seat
    proofs) and an ed25519 key (peer identity).

    All keys are encrypted with one password: --password-file, $FLARE_PASSWORD, or a prompt.
    Existing keys are never replaced without --force; with --if-missing they are kept and the
    command succeeds, so a container can run it on every start.
    """
    from flare.node.identity import KeyPaths, create_node_keys, refuse_existing_keys

    if force and if_missing:
        raise ConfigError(
            "--force replaces keys and --if-missing keeps them: give one of them",
            hint="--if-missing for a start script, --force to replace the keys on purpose",
        )
    root = resolve_home(home)
    paths = KeyPaths(root)
    if if_missing and any(path.exists() for path in (*paths.all, paths.legacy_vrf)):
        _report_existing(root, paths, json_output)
        return
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
                "created": True,
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


def _report_existing(root: Path, paths: KeyPaths, json_output: bool) -> None:
    """`--if-missing` on a home with keys: show whose they are, or say why they are unusable.

    Only a complete set counts as present. A home with some keys missing is an error rather
    than a quiet success: the node could not start with it, and making the missing keys anew
    would give it an identity that no longer matches its registration.
    """
    from flare.node.identity import read_identity
    from flare.node.keys import KeyFileExistsError

    missing = [path.name for path in paths.all if not path.exists()]
    if missing and not paths.legacy_vrf.exists():  # a legacy home gets read_identity's hint
        present = [path.name for path in paths.all if path.exists()]
        raise KeyFileExistsError(
            f"{root} holds some keys ({', '.join(present)}) but not {', '.join(missing)}; "
            "--if-missing leaves an incomplete home alone",
            hint="restore the keys directory from its backup, or replace every key with "
            "`flare-node init --force` (the node then has a new identity to register)",
        )
    identity = read_identity(root)  # the public keys only: no password, files still checked
    if json_output:
        emit_json(
            {
                "home": root,
                "created": False,
                **identity_fields(identity),
                "ethereum_keystore": paths.ethereum,
                "bls_key": paths.bls,
                "peer_key": paths.peer,
                "backups": [],
            }
        )
        return
    typer.echo(f"Node home        {root} already holds its keys; left as they are.")
    echo_identity(identity)
