"""`flare-node demo`: one federated round on the embedded defaults, narrated.

Everything real that exists runs for real: FlareRounds on an in-process EVM, the embedded
content store with Kubo-identical CIDs, ECVRF seat claims checked by every seat holder. The
nodes' training and aggregation are scripted for now (each update is a small labelled payload):
the round loop of the node replaces them as it lands.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import JsonOption

if TYPE_CHECKING:
    from flare.node.store.embedded import EmbeddedStore


@dataclass
class _Node:
    """A scripted peer: its dev account, VRF key and ledger handle."""

    name: str
    address: str
    vrf_secret: bytes
    vrf_public: bytes
    ledger: Any


def demo(
    nodes: Annotated[int, typer.Option("--nodes", min=2, max=9, help="Scripted peers.")] = 5,
    committee: Annotated[
        int, typer.Option("--committee", min=1, max=9, help="Committee seats (k).")
    ] = 3,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the embedded store lives. Default: a temp dir."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy FlareRounds on the embedded chain and walk one round with scripted nodes."""
    if committee > nodes:
        raise typer.BadParameter("the committee cannot be larger than the federation")
    with tempfile.TemporaryDirectory(prefix="flare-demo-") as scratch:
        root = data_dir if data_dir is not None else Path(scratch)
        from flare.node.store.embedded import EmbeddedStore

        with EmbeddedStore(root / "store") as store:
            summary = _run(store, nodes, committee, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))


def _run(store: EmbeddedStore, n_nodes: int, k: int, *, quiet: bool) -> dict[str, Any]:
    # Heavy imports stay here so `flare-node --help` is fast.
    from flare.chain.connect import DEFAULT_RPC, connect
    from flare.chain.deploy import deploy
    from flare.chain.devchain import advance_time, dev_account_key
    from flare.chain.ledger import Web3Ledger
    from flare.protocol import sortition, vrf
    from flare.protocol.cid import decode_cid, encode_cid
    from flare.protocol.events import SeatClaimed, UpdateSubmitted
    from flare.protocol.rounds import Phase, RoundConfig, updates_root

    def say(text: str = "") -> None:
        if not quiet:
            typer.echo(text)

    w3 = connect(DEFAULT_RPC)
    chain_id = int(w3.eth.chain_id)

    # --- DEPLOY ---
    genesis = store.put(b"flare-demo genesis model (scripted)\n")
    config = RoundConfig(
        committee_size=k, quorum_bps=6000, train_window=600, review_window=600, min_updates=2
    )
    record, owner = deploy(
        w3,
        dev_account_key(chain_id, 0),
        model_spec_hash=hashlib.sha256(b"flare-demo scripted model").digest(),
        genesis_model=decode_cid(genesis),
        config=config,
        allowlist=True,
    )
    say(f"deployed FlareRounds at {record.address} (chain {chain_id}, block {record.block})")
    say(f"  k={k} quorum={config.quorum_bps / 100:.0f}% genesis={genesis}")

    # --- REGISTER ---
    peers: list[_Node] = []
    for i in range(n_nodes):
        key = dev_account_key(chain_id, i + 1)
        ledger = Web3Ledger(w3, record.address, private_key=key)
        secret = secrets.token_bytes(32)
        node = _Node(f"node-{i + 1}", str(ledger.account), secret, vrf.public_key(secret), ledger)
        owner.allow(node.address)
        node.ledger.register(node.vrf_public)
        peers.append(node)
        say(f"registered {node.name} {node.address} vrf={node.vrf_public.hex()[:16]}…")
    owner.start()
    info = owner.get_round(1)
    say(f"round 1 opened: seed={info.seed.hex()[:16]}… eligible={info.eligible_nodes}")

    # --- CLAIM ---
    # Claim first: the VRF needs only the seed, and claims sent before training are all in by
    # the time the last update closes training early, so the k lowest outputs win the seats.
    threshold = sortition.claim_threshold(k, info.eligible_nodes)
    names = {node.address: node.name for node in peers}
    alpha = sortition.alpha_for(info.seed, 1)
    for node in peers:
        proof = vrf.prove(node.vrf_secret, alpha)
        output = sortition.rank_value(vrf.proof_to_hash(proof))
        held = [seat.output for seat in owner.seats(1)]
        decision = sortition.decide_claim(output, threshold=threshold, k=k, held=held)
        if not decision.claim:
            say(f"{node.name} skipped: {decision.reason}")
            continue
        claimed = node.ledger.claim_seat(1, output, proof).events
        evicted = [e.evicted for e in claimed if isinstance(e, SeatClaimed) and int(e.evicted, 16)]
        pushed_out = f" (pushed out {names[evicted[0]]})" if evicted else ""
        say(f"{node.name} claimed a seat: {decision.reason}{pushed_out}")
    # --- TRAIN + SUBMIT (scripted) ---
    for node in peers:
        payload = json.dumps({"round": 1, "node": node.address, "update": "scripted"}).encode()
        cid = store.put(payload)
        node.ledger.submit_update(1, decode_cid(cid), 100)
        say(f"{node.name} submitted update {cid}")

    info = owner.get_round(1)
    if info.phase is Phase.TRAINING:  # not everyone submitted or seats unfilled: wait it out
        advance_time(w3, info.train_end - owner.timestamp())
    say(f"round 1 is in {owner.phase(1).name.lower()}")

    # --- REVIEW: every seat holder checks the seats and the updates, then votes ---
    events = owner.events(record.block)
    keys = {node.address: node.vrf_public for node in peers}
    claims = {e.node: e for e in events if isinstance(e, SeatClaimed) and e.round == 1}
    updates = [(e.node, e.cid) for e in events if isinstance(e, UpdateSubmitted) and e.round == 1]
    seats = [seat.holder for seat in owner.seats(1)]
    # v1 checks seat claims off-chain: a seat whose proof fails is ignored by honest nodes.
    valid_seats = []
    for holder in seats:
        claim = claims[holder]
        result = sortition.verify_claim(keys[holder], info.seed, 1, claim.output, claim.proof)
        if isinstance(result, vrf.InvalidProof):
            say(f"  ignoring the seat of {names[holder]}: {result.reason}")
        else:
            valid_seats.append(holder)
    say(f"{len(valid_seats)} of {len(seats)} seats carry valid VRF proofs")
    fetched = [store.get(encode_cid(cid)) for _, cid in updates]  # re-hashed on read
    root_hash = updates_root(updates)
    aggregate = store.put(b"".join(sorted(fetched)))
    committee_nodes = [node for node in peers if node.address in valid_seats]
    proposer = committee_nodes[0]
    receipt = proposer.ledger.propose_aggregate(1, decode_cid(aggregate), root_hash)
    say(f"{proposer.name} proposed aggregate {aggregate} over {len(updates)} updates")
    for node in committee_nodes:
        if owner.phase(1) is not Phase.REVIEW:
            break
        proposal = owner.get_proposal(1, receipt.proposal_id)
        approve = proposal.updates_root == updates_root(updates)
        node.ledger.vote(1, receipt.proposal_id, approve)
        say(f"{node.name} voted {'approve' if approve else 'reject'}")

    # --- ADOPT ---
    final = owner.get_round(1)
    model_round, model = owner.global_model()
    say(f"round 1 {final.phase.name.lower()}: global model {encode_cid(model)}")
    say(f"round {owner.current_round()} is open in {owner.phase(owner.current_round()).name}")
    say()
    say("summary")
    say(f"  round 1        {final.phase.name.lower()} ({final.update_count} updates)")
    say(f"  committee      {len(valid_seats)}/{k} seats with valid VRF proofs")
    say(f"  votes          {owner.get_proposal(1, receipt.proposal_id).approvals} approvals")
    say(f"  global model   {encode_cid(model)}")
    say("  next           training and aggregation are scripted in this demo")
    return {
        "contract": record.address,
        "chain_id": chain_id,
        "round": 1,
        "phase": final.phase.name,
        "updates": len(updates),
        "seats": seats,
        "verified_seats": valid_seats,
        "global_model": encode_cid(model),
        "global_model_round": model_round,
        "next_round": owner.current_round(),
    }
