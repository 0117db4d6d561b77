"""`flare-node vrf`: verify and make committee proofs, and preview the claim threshold.

The VRF is a BLS12-381 unique signature (flare.protocol.vrf): the proof is 128 bytes, the
public key 256 (both EIP-2537 encodings, as in the contract's calldata and events) and the
output keccak256(proof). Auditors re-check a `SeatClaimed` event with `vrf verify`: the node's
registered key, the round's alpha and the event's proof must verify, and give the event's
output. Alpha is given as hex, or as the round's seed and number, which builds it exactly as
nodes do (seed || uint256 round).
"""

from __future__ import annotations

from typing import Annotated

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, resolve_home
from flare.cli.hexarg import parse_hex
from flare.cli.password import PasswordFileOption, read_password
from flare.protocol import sortition, vrf
from flare.protocol.errors import ConfigError, IntegrityError

app = typer.Typer(help="Verify and make VRF committee proofs.", no_args_is_help=True)

AlphaOption = Annotated[
    str | None, typer.Option("--alpha", help="VRF input as hex (alternative to --seed/--round).")
]
SeedOption = Annotated[str | None, typer.Option("--seed", help="Round seed, 32 bytes as hex.")]
RoundOption = Annotated[int | None, typer.Option("--round", help="Round number.", min=0)]


class InvalidProofError(IntegrityError):
    """A VRF proof failed verification."""


@app.command()
def verify(
    public_key: Annotated[
        str,
        typer.Option("--public-key", help="The prover's BLS public key, 256 bytes as hex."),
    ],
    proof: Annotated[str, typer.Option("--proof", help="The proof, 128 bytes as hex.")],
    alpha: AlphaOption = None,
    seed: SeedOption = None,
    round_number: RoundOption = None,
    claimed: Annotated[
        str | None,
        typer.Option("--output", help="Also require this output (the bytes32 in SeatClaimed)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check a proof; print its 32-byte output and exit 0, or print why it fails and exit 1."""
    alpha_bytes = _alpha(alpha, seed, round_number)
    # lengths of the key and proof are the proof's problem (reported as an invalid proof)
    key_bytes = parse_hex(public_key, what="--public-key")
    result = vrf.verify(key_bytes, alpha_bytes, parse_hex(proof, what="--proof"))
    if claimed is not None:
        output = parse_hex(claimed, length=vrf.OUTPUT_BYTES, what="--output")
        if not isinstance(result, vrf.InvalidProof) and result != output:
            result = vrf.InvalidProof(
                vrf.Rejection.WRONG_OUTPUT,
                f"recorded output 0x{output.hex()} is not the proof's 0x{result.hex()}",
            )
    if isinstance(result, vrf.InvalidProof):
        if json_output:
            emit_json(
                {"valid": False, "rejection": result.rejection.value, "reason": result.reason}
            )
            raise typer.Exit(code=InvalidProofError.exit_code)
        raise InvalidProofError(
            f"invalid VRF proof: {result.reason}",
            hint="a seat claimed with this proof must be ignored; check that the key, alpha "
            "and proof were copied exactly",
        )
    rank = sortition.rank_of(result)
    if json_output:
        emit_json({"valid": True, "output": result, "rank": rank, "alpha": alpha_bytes})
        return
    typer.echo(f"0x{result.hex()}")
    typer.echo(f"valid proof; seat rank {rank} (the output's first 12 bytes)", err=True)


@app.command()
def prove(
    alpha: AlphaOption = None,
    seed: SeedOption = None,
    round_number: RoundOption = None,
    home: HomeOption = None,
    password_file: PasswordFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Prove over alpha with this node's BLS key: print the proof, output, rank and public key."""
    from flare.node.identity import KeyPaths, KeyType, open_sealed_key

    alpha_bytes = _alpha(alpha, seed, round_number)
    password = read_password(password_file, prompt="Key password")
    secret = open_sealed_key(KeyPaths(resolve_home(home)).bls, password, KeyType.BLS12_381)
    proof = vrf.prove(secret, alpha_bytes)
    output = vrf.proof_to_output(proof)
    payload = {
        "public_key": vrf.public_key(secret),
        "alpha": alpha_bytes,
        "proof": proof,
        "output": output,
    }
    if json_output:
        emit_json({**payload, "rank": sortition.rank_of(output)})
        return
    for name, value in payload.items():
        typer.echo(f"{name:<11} 0x{value.hex()}")
    typer.echo(f"{'rank':<11} {sortition.rank_of(output)}")


@app.command()
def threshold(
    committee_size: Annotated[int, typer.Option("--committee-size", "-k", help="Seats k.", min=1)],
    eligible: Annotated[int, typer.Option("--eligible", help="Eligible nodes n.", min=0)],
    max_miss: Annotated[
        float,
        typer.Option("--max-miss", help="Accepted chance that fewer than k nodes claim."),
    ] = sortition.DEFAULT_MISS_PROBABILITY,
    participation: Annotated[
        float, typer.Option("--participation", help="Share of eligible nodes expected online.")
    ] = 1.0,
    json_output: JsonOption = False,
) -> None:
    """Show the claim threshold nodes use for k seats among n eligible nodes."""
    fraction = sortition.claim_fraction(
        committee_size, eligible, max_miss=max_miss, participation=participation
    )
    value = sortition.claim_threshold(
        committee_size, eligible, max_miss=max_miss, participation=participation
    )
    expected = fraction * eligible * participation
    if json_output:
        emit_json({"threshold": hex(value), "fraction": fraction, "expected_claims": expected})
        return
    if value >= sortition.RANK_SPACE:
        typer.echo(f"every eligible node claims (n={eligible} is at most k={committee_size})")
    else:
        typer.echo(f"claim when rank < {hex(value)} (ranks are the output's first 12 bytes)")
    typer.echo(f"share of outputs under it: {fraction:.4g}; expected claims: {expected:.1f}")


def _alpha(alpha: str | None, seed: str | None, round_number: int | None) -> bytes:
    if alpha is not None and seed is None and round_number is None:
        return parse_hex(alpha, what="--alpha")
    if alpha is None and seed is not None and round_number is not None:
        seed_bytes = parse_hex(seed, length=sortition.SEED_BYTES, what="--seed")
        return sortition.alpha_for(seed_bytes, round_number)
    raise ConfigError(
        "give either --alpha, or both --seed and --round",
        hint="alpha for round r is seed_r || r as a 32-byte big-endian integer",
    )
