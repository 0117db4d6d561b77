"""`contract info`: what a deployer or operator needs to see about a FlareRounds at a glance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.chain.connect import DEFAULT_RPC
from flare.cli.common import JsonOption, RpcOption, emit_json
from flare.cli.contract.options import (
    AddressOption,
    DeploymentOption,
    cid_text,
    config_json,
    config_text,
    duration,
    open_contract,
)

if TYPE_CHECKING:
    from flare.chain.ledger import Web3Ledger


def info(
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    from_block: Annotated[
        int | None,
        typer.Option(
            "--from-block",
            min=0,
            help="Where the node list's event scan starts. Default: the deployment record's "
            "block; with --address and no --from-block, nodes are counted, not listed.",
            show_default=False,
        ),
    ] = None,
    nodes_limit: Annotated[
        int, typer.Option("--nodes-limit", min=0, help="List at most this many nodes.")
    ] = 100,
    json_output: JsonOption = False,
) -> None:
    """Show the parameters, the current round and its phase, and the registered nodes.

    Warns when fewer nodes are eligible than the quorum needs: such a round cannot finalize.
    """
    from flare.chain.deploy import read_deployment

    ledger = open_contract(rpc, deployment, address)
    if from_block is None and deployment is not None:
        from_block = read_deployment(deployment).block
    summary = describe(ledger, nodes_limit, from_block)
    if json_output:
        emit_json(summary)
    else:
        _print(summary, ledger)


def describe(ledger: Web3Ledger, nodes_limit: int, from_block: int | None) -> dict[str, Any]:
    """Everything `info` shows, as one JSON-ready document."""
    from eth_utils.crypto import keccak

    from flare.protocol.events import registered_nodes

    config = ledger.config()
    current = ledger.current_round()
    model_round, model_cid = ledger.global_model()
    listed = (
        None if from_block is None else list(registered_nodes(ledger.events(from_block)).values())
    )
    summary: dict[str, Any] = {
        "address": ledger.address,
        "chain_id": ledger.chain_id,
        "version": ledger.version(),
        "owner": ledger.owner(),
        "pending_owner": ledger.pending_owner(),
        "paused": ledger.paused(),
        "allowlist": ledger.allowlist_enabled(),
        "model_spec_hash": ledger.model_spec_hash(),
        "genesis_model": cid_text(ledger.genesis_model()),
        "config": config_json(config),
        "artifact_match": ledger.code_matches_artifact(),
        "timestamp": ledger.timestamp(),
        "current_round": current,
        "round": None,
        "global_model": {"round": model_round, "cid": cid_text(model_cid)},
        "node_count": ledger.node_count(),
        "nodes": None
        if listed is None
        else [
            {
                "address": node.node,
                "allowed": ledger.get_node(node.node).allowed,
                "eligible_from": node.eligible_from,
                "bls_key_hash": keccak(node.bls_key),
                "peer_key": node.peer_key,
            }
            for node in listed[:nodes_limit]
        ],
        "warnings": [],
    }
    if summary["node_count"] < config.quorum:
        summary["warnings"].append(
            f"{summary['node_count']} registered node(s), but rounds opened now need "
            f"{config.quorum} approvals: they cannot finalize until more nodes register"
        )
    if current:
        view = ledger.get_round(current)
        summary["round"] = {
            "round": view.round,
            "phase": view.phase.name.lower(),
            "seed": view.seed,
            "opened_at": view.opened_at,
            "train_end": view.train_end,
            "review_start": view.review_start,
            "review_end": view.review_end,
            "eligible_nodes": view.eligible_nodes,
            "updates": view.update_count,
            "min_updates": view.min_updates,
            "seats": view.seat_count,
            "committee_size": view.committee_size,
            "quorum": view.quorum,
            "proposals": view.proposal_count,
            "base_model": cid_text(ledger.base_model(current)),
            "review_policy": cid_text(view.review_policy),
        }
        open_ = view.phase.name in ("TRAINING", "REVIEW")
        if open_ and view.eligible_nodes < view.quorum:
            summary["warnings"].append(
                f"round {current} has {view.eligible_nodes} eligible node(s) but needs "
                f"{view.quorum} approvals: it cannot finalize"
            )
    return summary


def _print(summary: dict[str, Any], ledger: Web3Ledger) -> None:
    from flare.protocol.rounds import ZERO_ADDRESS

    pending = summary["pending_owner"]
    owner = summary["owner"] + (f" (pending: {pending})" if pending != ZERO_ADDRESS else "")
    artifact = "matches" if summary["artifact_match"] else "DIFFERS from"
    model = summary["global_model"]
    typer.echo(
        f"FlareRounds {summary['address']} on chain {summary['chain_id']} "
        f"(interface version {summary['version']})"
    )
    typer.echo(f"  owner            {owner}")
    typer.echo(f"  paused           {'yes' if summary['paused'] else 'no'}")
    typer.echo(f"  allowlist        {'on' if summary['allowlist'] else 'off (open)'}")
    typer.echo(f"  model spec hash  0x{summary['model_spec_hash'].hex()}")
    typer.echo(f"  genesis model    {summary['genesis_model']}")
    typer.echo(f"  config           {config_text(ledger.config())}")
    typer.echo(f"  review policy    {summary['config']['review_policy']}")
    typer.echo(f"  code             {artifact} this flare-node's contract build")
    typer.echo(f"  global model     round {model['round']}: {model['cid']}")
    round_ = summary["round"]
    if round_ is None:
        typer.echo("Rounds not started (the owner runs `flare-node contract start`).")
    else:
        now = summary["timestamp"]
        if round_["phase"] == "training":
            timing = f"training ends in {duration(max(0, round_['train_end'] - now))}"
        elif round_["phase"] == "review":
            timing = f"review ends in {duration(max(0, round_['review_end'] - now))}"
        else:
            timing = f"anyone may `flare-node contract close-round {round_['round']}`"
        typer.echo(f"Round {round_['round']}: {round_['phase']} ({timing})")
        typer.echo(
            f"  updates {round_['updates']} of {round_['eligible_nodes']} eligible "
            f"(min {round_['min_updates']}), seats {round_['seats']}/{round_['committee_size']}, "
            f"proposals {round_['proposals']}, quorum {round_['quorum']}"
        )
        typer.echo(f"  base model       {round_['base_model']}")
    typer.echo(f"Nodes: {summary['node_count']} registered")
    if summary["nodes"] is None:
        typer.echo("  (pass --deployment or --from-block to list them from the event log)")
    else:
        for node in summary["nodes"]:
            allowed = "allowed" if node["allowed"] else "not allowed"
            typer.echo(
                f"  {node['address']}  {allowed:<11}  from round {node['eligible_from']}  "
                f"bls 0x{node['bls_key_hash'].hex()[:16]}..."
            )
        hidden = summary["node_count"] - len(summary["nodes"])
        if hidden > 0:
            typer.echo(f"  ... and {hidden} more (raise --nodes-limit)")
    for warning in summary["warnings"]:
        typer.echo(f"Warning: {warning}", err=True)
