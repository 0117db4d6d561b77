"""`contract compile` and `contract deploy`: from Solidity sources to a recorded deployment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flare.chain.connect import DEFAULT_RPC, is_embedded
from flare.cli.common import HomeOption, JsonOption, RpcOption, emit_json, network_limits
from flare.cli.contract.options import (
    DevAccountOption,
    KeystoreOption,
    check_signer,
    cid_text,
    config_text,
    hex32,
    pin_policy,
    seconds,
    signer_key,
)
from flare.cli.hexarg import parse_address
from flare.cli.password import PasswordFileOption
from flare.cli.policy import PolicyFileOption
from flare.cli.store import DataDirOption, StoreOption
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from flare.chain.deploy import Deployment

DEFAULT_MIN_CLAIM_WINDOW = 300


def compile_(
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Source checkout. Default: found from the current directory.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only verify the committed artifact is current.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Compile contracts/src/FlareRounds.sol (npm solc via tools/solc) into the artifact."""
    from flare.chain.compile import build_artifact, find_project_root

    checkout = find_project_root(root)
    if not json_output:
        typer.echo(f"Compiling {checkout / 'contracts/src/FlareRounds.sol'} ...", err=True)
    result = build_artifact(checkout, check=check)
    if json_output:
        emit_json(
            {
                "artifact": result.path,
                "sha256": result.sha256,
                "changed": result.changed,
                "solc": result.solc,
                "runtime_bytes": result.runtime_bytes,
            }
        )
        return
    state = "written" if result.changed else "up to date"
    typer.echo(
        f"{result.path}: {state} (solc {result.solc}, runtime {result.runtime_bytes} bytes, "
        f"sha256 {result.sha256})"
    )


def deploy(
    model_spec_hash: Annotated[
        str,
        typer.Option(
            "--model-spec-hash",
            help="0x + 64 hex digits: hash of the model spec every node shares.",
            show_default=False,
        ),
    ],
    genesis_model: Annotated[
        str,
        typer.Option(
            "--genesis-model",
            help="CID of the initial trainable weights (bafk.../bafy...).",
            show_default=False,
        ),
    ],
    policy_file: PolicyFileOption,
    rpc: RpcOption = DEFAULT_RPC,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Admin address. Default: the deployer.", show_default=False),
    ] = None,
    committee_size: Annotated[
        int, typer.Option("--committee-size", help="k, seats per round (1-64).")
    ] = 7,
    quorum_bps: Annotated[
        int,
        typer.Option("--quorum-bps", help="Approvals needed in basis points of k, rounded up."),
    ] = 6000,
    train_window: Annotated[
        str, typer.Option("--train-window", help="Training time per round (600, 45m, 2h, 1d).")
    ] = "1h",
    review_window: Annotated[
        str, typer.Option("--review-window", help="Review time per round.")
    ] = "30m",
    min_claim_window: Annotated[
        str | None,
        typer.Option(
            "--min-claim-window",
            help="Time after a round opens before Training may close early, so the k lowest "
            "VRF outputs win rather than the first k claims. Default: 5m, or the train window "
            "if shorter.",
            show_default=False,
        ),
    ] = None,
    min_updates: Annotated[
        int, typer.Option("--min-updates", help="Updates a round needs to reach review.")
    ] = 1,
    allowlist: Annotated[
        bool,
        typer.Option("--allowlist/--open", help="Only allowed addresses register, or anyone."),
    ] = True,
    start: Annotated[bool, typer.Option("--start", help="Open round 1 right away.")] = False,
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the deployment record.", dir_okay=False)
    ] = Path("deployment.json"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing record.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Deploy FlareRounds and write its record (address, chain id, block, artifact hash).

    The review policy document is pinned in the content store (--store) and committed by its
    CID; its sample cap becomes the contract's maxSamples.
    """
    from flare.chain.connect import connect
    from flare.chain.deploy import deploy as deploy_contract
    from flare.cli.policy import read_policy_file
    from flare.protocol.cid import Cid
    from flare.protocol.rounds import RoundConfig

    if out.exists() and not force:
        raise ConfigError(
            f"{out} already exists", hint="pass another --out, or --force to replace the record"
        )
    # Everything the command line can get wrong is checked before anything is pinned or the
    # chain is contacted: a typo is a usage error at once.
    owner = None if owner is None else parse_address(owner, what="--owner")
    spec = hex32(model_spec_hash, "--model-spec-hash")
    # The genesis CID is on-chain for good: refuse one nodes could not fetch (codec, hash).
    genesis = Cid.parse(genesis_model).binary
    policy = read_policy_file(policy_file)
    train = seconds(train_window, "--train-window")
    check_signer(keystore, dev_account)
    config = RoundConfig(
        committee_size=committee_size,
        quorum_bps=quorum_bps,
        train_window=train,
        review_window=seconds(review_window, "--review-window"),
        min_claim_window=(
            min(DEFAULT_MIN_CLAIM_WINDOW, train)
            if min_claim_window is None
            else seconds(min_claim_window, "--min-claim-window")
        ),
        min_updates=min_updates,
        max_samples=policy.sample_cap,
        review_policy=Cid.parse(pin_policy(policy, store, data_dir, home)).binary,
    )
    _check_record_path(out)
    w3 = connect(rpc, limits=network_limits())
    key = signer_key(w3, keystore, password_file, dev_account)
    if not json_output:
        typer.echo(f"Deploying FlareRounds to chain {w3.eth.chain_id} ({rpc}) ...", err=True)
    record, ledger = deploy_contract(
        w3,
        key,
        model_spec_hash=spec,
        genesis_model=genesis,
        config=config,
        allowlist=allowlist,
        owner=owner,
    )
    # The record is the only note of where the contract went: write it before anything else
    # can fail, and name the address on any failure after this point.
    _write_record(record, out)
    opened = None
    if start:
        try:
            opened = ledger.start()
        except Exception:
            typer.echo(
                f"FlareRounds is deployed at {record.address} (record in {out}), but opening "
                f"round 1 failed; retry with `flare-node contract start --deployment {out}` "
                "and the same --rpc and key.",
                err=True,
            )
            raise
    if is_embedded(rpc):
        typer.echo(
            "Note: an eth-tester:// chain lives only inside this process; this deployment is "
            "gone when the command exits. Use --rpc http://... for a lasting chain.",
            err=True,
        )
    if json_output:
        emit_json({**record.to_json(), "record": out, "started": opened is not None})
        return
    typer.echo(
        f"Deployed FlareRounds at {record.address} on chain {record.chain_id} "
        f"(block {record.block}, gas {record.gas_used})"
    )
    typer.echo(f"  owner            {record.owner}")
    typer.echo(f"  allowlist        {'on' if allowlist else 'off (open registration)'}")
    typer.echo(f"  model spec hash  {record.model_spec_hash}")
    typer.echo(f"  genesis model    {cid_text(genesis)}")
    typer.echo(f"  config           {config_text(config)}")
    typer.echo(f"  review policy    {cid_text(config.review_policy)} (pinned in --store {store})")
    typer.echo(f"  artifact sha256  {record.artifact_sha256}")
    if opened is not None:
        typer.echo(f"  round 1 opened   in block {opened.block}")
    typer.echo(f"Wrote {out}")


def _check_record_path(out: Path) -> None:
    """Fail before deploying, not after, when the record could not be written."""
    from flare.chain.deploy import DeploymentFileError

    directory = out.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DeploymentFileError(
            f"cannot create {directory} for the deployment record: {error.strerror or error}",
            hint="pass an --out in a writable directory",
        ) from error
    if not os.access(directory, os.W_OK):
        raise DeploymentFileError(
            f"{directory} is not writable, so the deployment record cannot be written",
            hint="pass an --out in a writable directory",
        )


def _write_record(record: Deployment, out: Path) -> None:
    """Write the record; if that fails, print it so the deployment is not lost."""
    from flare.chain.deploy import DeploymentFileError

    try:
        record.write(out)
    except DeploymentFileError as error:
        typer.echo(record.render(), nl=False)
        raise DeploymentFileError(
            f"FlareRounds was deployed at {record.address} on chain {record.chain_id} "
            f"(block {record.block}), but {error.message}",
            hint="its record is printed above: save it to a file; do not deploy again",
        ) from error
