"""`flare-node keys`: show the node's public identity and check that the password opens it."""

from __future__ import annotations

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, resolve_home
from flare.cli.password import PasswordFileOption, read_password

app = typer.Typer(help="Show and check the node's keys.", no_args_is_help=True)


@app.command()
def show(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Print the node's address and VRF public key (no password needed, no secret shown)."""
    from flare.node.identity import read_identity

    identity = read_identity(resolve_home(home))
    if json_output:
        emit_json({"address": identity.address, "vrf_public_key": identity.vrf_public_key})
        return
    typer.echo(f"Address        {identity.address}")
    typer.echo(f"VRF public key 0x{identity.vrf_public_key.hex()}")


@app.command()
def check(
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Unlock both keys and confirm they match the address and VRF key on record."""
    from flare.node.identity import load_node_keys

    root = resolve_home(home)
    password = read_password(password_file, prompt="Key password")
    if not json_output:
        typer.echo("Unlocking keys...", err=True)
    identity = load_node_keys(root, password).identity
    if json_output:
        emit_json(
            {"ok": True, "address": identity.address, "vrf_public_key": identity.vrf_public_key}
        )
        return
    typer.echo(f"OK: both keys in {root} open with this password.")
    typer.echo(f"Address        {identity.address}")
    typer.echo(f"VRF public key 0x{identity.vrf_public_key.hex()}")
