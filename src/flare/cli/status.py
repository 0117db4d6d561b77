"""`flare-node status`: where the node and its round stand, for the operator or a monitor.

Read-only and password-free: the address comes from the node's public key files, the rest from
the chain and the node's state database (which a running node keeps writing; SQLite's WAL lets
this read alongside it).
"""

from __future__ import annotations

import time
from typing import Any

import typer

from flare.cli.common import JsonOption, emit_json
from flare.cli.run import DEFAULT_CONFIG, ConfigOption, load

# Gas of one round's worst case for a node: a seat claim in the largest committee, its update,
# a proposal and the vote that finalizes (docs/deployer.md, "Gas"), with a margin.
ROUND_GAS = 270_000 + 70_000 + 160_000 + 200_000
LAST_ERRORS = 5


def status(config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False) -> None:
    """Show the current round, its phase and time left, this node's part in it, its balance
    and its last errors."""
    from flare.cli.nodesetup import open_chain
    from flare.node.identity import read_identity
    from flare.node.state import STATE_FILE, NodeState
    from flare.protocol.cid import encode_cid

    settings = load(config)
    home = settings.home.expanduser()
    identity = read_identity(home)
    address = identity.address
    ledger = open_chain(settings, None)
    now = ledger.timestamp()
    r = ledger.current_round()
    node = ledger.get_node(address)
    w3 = ledger.w3
    balance = int(w3.eth.get_balance(w3.to_checksum_address(address)))
    gas_price = int(w3.eth.gas_price)
    report: dict[str, Any] = {
        "node": address,
        "contract": ledger.address,
        "chain_id": ledger.chain_id,
        "registered": node.registered,
        "eligible_from": node.eligible_from if node.registered else None,
        "round": r,
        "balance_wei": balance,
        "round_cost_wei": ROUND_GAS * gas_price,
        "balance_covers_next_round": balance >= ROUND_GAS * gas_price,
    }
    if r > 0:
        info = ledger.get_round(r)
        deadline = {"TRAINING": info.train_end, "REVIEW": info.review_end}.get(info.phase.name)
        update = ledger.update_of(r, address)
        report |= {
            "phase": info.phase.name,
            # A dev chain mines only on transactions: its last block's time can lag the clock.
            "seconds_left": None
            if deadline is None
            else max(0, deadline - max(now, int(time.time()))),
            "updates_registered": info.update_count,
            "seats_held": info.seat_count,
            "committee_size": info.committee_size,
            "own_update": any(update),
            "own_seat": ledger.is_seat_holder(r, address),
            "voted": ledger.has_voted(r, address),
            "base_model": encode_cid(ledger.base_model(r)),
        }
    state_path = home / "state" / STATE_FILE
    report["state"] = str(state_path)
    if state_path.exists():
        with NodeState(home / "state") as state:
            # The current round's steps; before the node acted in it, its last round's.
            outcomes = state.outcomes(r) or state.outcomes(state.latest_round() or r)
            report["steps_round"] = outcomes[0][0] if outcomes else r
            report["steps_done"] = [
                {"step": step, **_brief(outcome)} for _, step, outcome in outcomes
            ]
            report["last_errors"] = [
                {"at": _iso(at), "message": message, "hint": hint}
                for at, message, hint in state.errors(LAST_ERRORS)
            ]
            noted = state.gossip()
    else:
        report["steps_done"], report["last_errors"], report["steps_round"] = [], [], r
        noted = None
    report["gossip"] = _gossip(identity.peer_public_key, noted)
    if json_output:
        emit_json(report)
        return
    _print(report)


def _gossip(peer_key: bytes, noted: tuple[float, dict[str, Any]] | None) -> dict[str, Any]:
    """The node's peer id, and what its gossip layer saw when the running node last noted it
    (`age_seconds` says how old that is: a stopped node's peers are history)."""
    from flare.node.gossip.libp2p import peer_id_of

    report: dict[str, Any] = {"peer_id": peer_id_of(peer_key)}
    if noted is not None:
        at, view = noted
        report |= {"as_of": _iso(at), "age_seconds": round(max(0.0, time.time() - at), 1), **view}
    return report


def _brief(outcome: dict[str, Any]) -> dict[str, Any]:
    keep = ("cid", "model", "claimed", "gas", "approve", "recovered", "skipped", "missed")
    return {k: outcome[k] for k in keep if k in outcome}


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _print(report: dict[str, Any]) -> None:
    echo = typer.echo
    echo(f"node        {report['node']}" + ("" if report["registered"] else "  (NOT registered)"))
    echo(f"contract    {report['contract']} (chain {report['chain_id']})")
    if report["round"] == 0:
        echo("round       rounds have not started")
    else:
        left = report["seconds_left"]
        time_left = "" if left is None else f", {left // 60}m {left % 60:02d}s left"
        echo(f"round       {report['round']} {report['phase']}{time_left}")
        echo(f"base model  {report['base_model']}")
        echo(f"updates     {report['updates_registered']} registered; this node: "
             f"{'yes' if report['own_update'] else 'no'}")  # fmt: skip
        voted = ", voted" if report["voted"] else ""
        echo(f"seats       {report['seats_held']} of {report['committee_size']} held; this node: "
             f"{'yes' if report['own_seat'] else 'no'}{voted}")  # fmt: skip
    eth = report["balance_wei"] / 10**18
    covers = "covers" if report["balance_covers_next_round"] else "does NOT cover"
    echo(f"balance     {eth:.6f} ETH; {covers} a round's transactions "
         f"(~{report['round_cost_wei'] / 10**18:.6f} ETH at the current gas price)")  # fmt: skip
    if report["steps_done"]:
        done = ", ".join(item["step"] for item in report["steps_done"])
        echo(f"done        {done} (round {report['steps_round']})")
    gossip = report["gossip"]
    if "as_of" not in gossip:
        echo(f"gossip      peer id {gossip['peer_id']}; no gossip seen (off, or not run yet)")
    else:
        echo(f"gossip      {gossip['address'] or gossip['peer_id']} "
             f"(as of {gossip['age_seconds']:g}s ago)")  # fmt: skip
        live = ", ".join(
            f"{p['node']} (round {p['round']} {p['phase'] or '-'}, {p['ago']:g}s ago)"
            for p in gossip["live"]
        )
        echo(f"peers       {len(gossip['connected'])} connected; live nodes: {live or 'none'}")
        if gossip["rejected"]:
            dropped = ", ".join(f"{n} {reason}" for reason, n in gossip["rejected"].items())
            echo(f"dropped     {dropped}")
    for error in report["last_errors"]:
        echo(f"error       {error['at']} {error['message']}")
