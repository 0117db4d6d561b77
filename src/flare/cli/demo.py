"""`flare-node demo`: one federated round on the embedded defaults, narrated.

Everything runs for real, in one process: FlareRounds on an in-process EVM, the embedded
content store with Kubo-identical CIDs, ECVRF seat claims checked by every seat holder, a tiny
SmolVLA trained with LeRobot by every node on its own synthetic SO-100 data (each node sees
only some of the tasks), PowerSGD-compressed `flare-update/1` bundles, and a committee whose
every member recomputes the aggregate and votes only for the model bytes it computed itself.
What the demo scripts is the choreography: the nodes take turns instead of running
`flare-node` processes of their own.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import JsonOption, offline_hub, progress_bar
from flare.cli.train import training_progress

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
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=1000, help="Local training steps per node.")
    ] = 30,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the embedded store lives. Default: a temp dir."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy FlareRounds on the embedded chain and walk one real round with N nodes."""
    if committee > nodes:
        raise typer.BadParameter("the committee cannot be larger than the federation")
    offline_hub()
    with tempfile.TemporaryDirectory(prefix="flare-demo-") as scratch:
        root = data_dir if data_dir is not None else Path(scratch)
        from flare.node.store.embedded import EmbeddedStore

        with EmbeddedStore(root / "store") as store:
            summary = _run(store, root, nodes, committee, steps, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))


# Small enough for a laptop CPU in about a minute, large enough for one round to help: each
# node records 8 episodes with its cubes in its own stripe of the table (non-IID in space).
_EPISODES, _FRAMES, _BATCH = 8, 30, 8
_REFERENCE_EPISODES = 4  # the deployer's data: normalization statistics and held-out loss
_NORM_BOUND = 1e3  # the deployment's bound on an update's L2 norm (a tiny policy's are ~1-10)
_RULE = "fedavg"


def _run(
    store: EmbeddedStore, work: Path, n_nodes: int, k: int, steps: int, *, quiet: bool
) -> dict[str, Any]:
    # Heavy imports stay here so `flare-node --help` is fast.
    import datasets

    from flare.chain.connect import DEFAULT_RPC, connect
    from flare.chain.deploy import deploy
    from flare.chain.devchain import advance_time, dev_account_key
    from flare.chain.ledger import Web3Ledger
    from flare.node.federation import genesis_model, load_model, local_update
    from flare.node.train.backbone import TINY, resolve_backbone
    from flare.node.train.dataset import DatasetSource, open_metadata
    from flare.node.train.evaluate import evaluate
    from flare.node.train.local import TrainOptions
    from flare.node.train.policy import new_policy
    from flare.node.train.synth import SynthOptions, write_synth_dataset
    from flare.protocol import sortition, vrf
    from flare.protocol.aggregate import Rule
    from flare.protocol.bundle import size_bound
    from flare.protocol.cid import decode_cid, encode_cid
    from flare.protocol.committee import Submission, next_model
    from flare.protocol.errors import FlareError
    from flare.protocol.events import SeatClaimed, UpdateSubmitted
    from flare.protocol.model import read_model
    from flare.protocol.modelspec import MAX_RANK
    from flare.protocol.rounds import Phase, RoundConfig

    def say(text: str = "") -> None:
        if not quiet:
            typer.echo(text)

    w3 = connect(DEFAULT_RPC)
    chain_id = int(w3.eth.chain_id)

    # --- GENESIS: the deployer's reference data fixes the policy and its normalization ---
    def synth(name: str, options: SynthOptions) -> DatasetSource:
        root = work / "data" / name
        if not (root / "meta" / "info.json").is_file():
            datasets.disable_progress_bars()  # again: LeRobot turns them back on after its own use
            label = f"{name} recording episodes"
            with progress_bar(label, options.episodes, enabled=not quiet) as advance:
                on_episode = None if advance is None else (lambda done: advance(done + 1, None))
                write_synth_dataset(root, options, on_episode=on_episode)
        return DatasetSource(root)

    reference = synth(
        "reference",
        SynthOptions(episodes=_REFERENCE_EPISODES, frames=_FRAMES, use_videos=False, seed=0),
    )
    backbone_dir = resolve_backbone(TINY, work / "backbones")
    loaded = new_policy(backbone_dir, open_metadata(reference), preset="tiny", device="cpu", seed=0)
    spec = loaded.spec
    genesis_bytes = genesis_model(loaded)
    genesis = store.put(genesis_bytes)
    say(f"genesis model {genesis}")
    say(f"  tiny SmolVLA, {spec.numel:,} trainable parameters, spec 0x{spec.hash.hex()[:16]}…")
    config = RoundConfig(
        committee_size=k, quorum_bps=6000, train_window=600, review_window=600, min_updates=2
    )
    record, owner = deploy(
        w3,
        dev_account_key(chain_id, 0),
        model_spec_hash=spec.hash,
        genesis_model=decode_cid(genesis),
        config=config,
        allowlist=True,
    )
    say(f"deployed FlareRounds at {record.address} (chain {chain_id}, block {record.block})")
    say(f"  k={k} quorum={config.quorum_bps / 100:.0f}% rule={_RULE}")

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

    # --- TRAIN + SUBMIT: each node trains from the base on its own share of the tasks ---
    base = read_model(store.get(genesis), spec)
    dense_kib = spec.numel * 4 / 1024
    for i, node in enumerate(peers):
        options = SynthOptions(
            episodes=_EPISODES, frames=_FRAMES, use_videos=False, seed=i + 1,
            skew="region", node_index=i, num_nodes=n_nodes,
        )  # fmt: skip
        source = synth(node.name, options)
        with training_progress(steps, enabled=not quiet, label=f"{node.name} training") as on_step:
            update = local_update(
                loaded, base, genesis, source, TrainOptions(steps=steps, batch_size=_BATCH, seed=i),
                round_number=1, node=node.address, seed=info.seed, on_step=on_step,
            )  # fmt: skip
        cid = store.put(update.bundle)
        node.ledger.submit_update(1, decode_cid(cid), update.metrics.samples)
        low, high = options.region()
        loss = f"{update.metrics.losses[0]:.3f} -> {update.metrics.final_loss:.3f}"
        size = f"{len(update.bundle) / 1024:.0f} KiB, {dense_kib:.0f} KiB dense"
        say(f"{node.name} trained {steps} steps on cubes in u={low:.2f}..{high:.2f}: loss {loss}")
        say(f"  update {cid} ({size})")

    info = owner.get_round(1)
    if info.phase is Phase.TRAINING:  # not everyone submitted or seats unfilled: wait it out
        advance_time(w3, info.train_end - owner.timestamp())
    say(f"round 1 is in {owner.phase(1).name.lower()}")

    # --- REVIEW: every seat holder checks the seats, recomputes the model, then votes ---
    events = owner.events(record.block)
    keys = {node.address: node.vrf_public for node in peers}
    claims = {e.node: e for e in events if isinstance(e, SeatClaimed) and e.round == 1}
    registered = [e for e in events if isinstance(e, UpdateSubmitted) and e.round == 1]
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
    limit = size_bound(spec, MAX_RANK)
    rule = Rule(_RULE)

    def fetch(cid: bytes) -> bytes | None:
        """The update's bytes, re-hashed on read; None (left out) if they cannot be had."""
        try:
            return store.get(encode_cid(cid), max_bytes=limit)
        except FlareError:
            return None

    def review() -> Any:
        """One seat holder's own computation, from the chain's list and the store's bytes."""
        submissions = [Submission(e.node, e.cid, e.num_samples, fetch(e.cid)) for e in registered]
        return next_model(base, genesis, 1, submissions, rule, norm_bound=_NORM_BOUND)

    committee_nodes = [node for node in peers if node.address in valid_seats]
    proposer = committee_nodes[0]
    proposal = review()
    model_cid = store.put(proposal.model)
    for rejection in proposal.rejected:
        say(f"  left out {names.get(rejection.node, rejection.node)}: {rejection.reason}")
    receipt = proposer.ledger.propose_aggregate(
        1, decode_cid(model_cid), proposal.meta.updates_root
    )
    say(f"{proposer.name} proposed model {model_cid} over {len(proposal.included)} updates")
    for node in committee_nodes:
        if owner.phase(1) is not Phase.REVIEW:
            break
        own = review()
        on_chain = owner.get_proposal(1, receipt.proposal_id)
        approve = (
            encode_cid(on_chain.cid) == store.put(own.model)
            and on_chain.updates_root == own.meta.updates_root
        )
        node.ledger.vote(1, receipt.proposal_id, approve)
        say(f"{node.name} recomputed the model and voted {'approve' if approve else 'reject'}")

    # --- ADOPT: how the new model does on data no node trained on ---
    final = owner.get_round(1)
    model_round, model = owner.global_model()
    episodes = list(range(_REFERENCE_EPISODES))
    load_model(loaded, base)
    before = evaluate(loaded, reference, episodes, max_samples=64).loss
    load_model(loaded, read_model(store.get(encode_cid(model)), spec))
    after = evaluate(loaded, reference, episodes, max_samples=64).loss
    say(f"round 1 {final.phase.name.lower()}: global model {encode_cid(model)}")
    say(f"round {owner.current_round()} is open in {owner.phase(owner.current_round()).name}")
    say()
    say("summary")
    say(f"  round 1        {final.phase.name.lower()} ({final.update_count} updates)")
    say(f"  committee      {len(valid_seats)}/{k} seats with valid VRF proofs")
    say(f"  votes          {owner.get_proposal(1, receipt.proposal_id).approvals} approvals")
    say(f"  global model   {encode_cid(model)}")
    say(f"  held-out loss  {before:.4f} -> {after:.4f} (reference data, no node trained on it)")
    return {
        "contract": record.address,
        "chain_id": chain_id,
        "round": 1,
        "phase": final.phase.name,
        "updates": len(registered),
        "included": list(proposal.included),
        "seats": seats,
        "verified_seats": valid_seats,
        "genesis_model": genesis,
        "global_model": encode_cid(model),
        "global_model_round": model_round,
        "model_spec": "0x" + spec.hash.hex(),
        "held_out_loss": {"before": before, "after": after},
        "next_round": owner.current_round(),
    }
