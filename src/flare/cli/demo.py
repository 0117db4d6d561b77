"""`flare-node demo`: one federated round on the embedded defaults, narrated.

Everything runs for real, in one process: FlareRounds on an in-process EVM, the embedded
content store with Kubo-identical CIDs, BLS VRF seat claims the contract verifies, a review
policy committed on-chain by its CID, a tiny SmolVLA trained with LeRobot by every node on its
own synthetic SO-100 data (each node sees only some of the tasks), PowerSGD-compressed
`flare-update/1` bundles, and a committee whose every member recomputes the aggregate under
the policy and votes only for the model bytes it computed itself, when the policy's held-out
acceptance test passes.
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
    """A scripted peer: its dev account, BLS key and ledger handle."""

    name: str
    address: str
    bls_secret: bytes
    bls_public: bytes
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
_SAMPLE_CAP = 10_000
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
    from flare.protocol.events import NodeRegistered, SeatClaimed, UpdateSubmitted
    from flare.protocol.model import read_model
    from flare.protocol.modelspec import MAX_RANK
    from flare.protocol.policy import MAX_POLICY_BYTES, ReviewPolicy, read_policy
    from flare.protocol.rounds import Phase, RoundConfig, address_bytes

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
    # The review policy every seat holder applies, committed on-chain by its CID.
    policy = ReviewPolicy(rule=Rule(_RULE), norm_bound=_NORM_BOUND, sample_cap=_SAMPLE_CAP)
    policy_cid = store.put(policy.to_bytes())
    config = RoundConfig(
        committee_size=k,
        quorum_bps=6000,
        train_window=600,
        review_window=600,
        min_claim_window=60,
        min_updates=2,
        max_samples=policy.sample_cap,
        review_policy=decode_cid(policy_cid),
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
    say(f"  k={k} quorum={config.quorum_bps / 100:.0f}% review policy {policy_cid}")
    say(f"  policy: {_RULE}, norm bound {_NORM_BOUND:g}, sample cap {_SAMPLE_CAP}")

    # --- REGISTER: each node proves on-chain that it holds its BLS key ---
    peers: list[_Node] = []
    contract = address_bytes(record.address)
    for i in range(n_nodes):
        key = dev_account_key(chain_id, i + 1)
        ledger = Web3Ledger(w3, record.address, private_key=key)
        secret = vrf.new_secret_key()
        node = _Node(f"node-{i + 1}", str(ledger.account), secret, vrf.public_key(secret), ledger)
        owner.allow(node.address)
        possession = vrf.prove_possession(secret, chain_id, contract, address_bytes(node.address))
        node.ledger.register(node.bls_public, possession, secrets.token_bytes(32))
        peers.append(node)
        say(f"registered {node.name} {node.address} (proof of possession checked on-chain)")
    owner.start()
    info = owner.get_round(1)
    say(f"round 1 opened: seed={info.seed.hex()[:16]}… eligible={info.eligible_nodes}")

    # --- CLAIM ---
    # Claim first: the VRF needs only the seed, and claims sent before training are all in by
    # the time the last update closes training (never before the minimum claim window), so the
    # k lowest outputs win the seats. The contract verifies every proof.
    threshold = sortition.claim_threshold(k, info.eligible_nodes)
    names = {node.address: node.name for node in peers}
    alpha = sortition.alpha_for(info.seed, 1)
    for node in peers:
        proof = vrf.prove(node.bls_secret, alpha)
        held = [seat.word for seat in owner.seats(1)]
        decision = sortition.decide_claim(
            vrf.proof_to_output(proof),
            address_bytes(node.address),
            threshold=threshold,
            k=k,
            held=held,
        )
        if not decision.claim:
            say(f"{node.name} skipped: {decision.reason}")
            continue
        claimed = node.ledger.claim_seat(1, proof, node.bls_public).events
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
    if info.phase is Phase.TRAINING:  # the claim window, or a missing update: wait it out
        advance_time(w3, info.review_start - owner.timestamp())
    say(f"round 1 is in {owner.phase(1).name.lower()}")

    # --- REVIEW: every seat holder recomputes the model under the policy, then votes ---
    events = owner.events(record.block)
    keys = {e.node: e.bls_key for e in events if isinstance(e, NodeRegistered)}
    claims = {e.node: e for e in events if isinstance(e, SeatClaimed) and e.round == 1}
    registered = [e for e in events if isinstance(e, UpdateSubmitted) and e.round == 1]
    seats = [seat.holder for seat in owner.seats(1)]
    # The contract verified every seat; an auditor re-checks the proofs from the events alone.
    valid_seats = [
        holder
        for holder in seats
        if not isinstance(
            sortition.verify_claim(
                keys[holder], info.seed, 1, claims[holder].proof, claims[holder].output
            ),
            vrf.InvalidProof,
        )
    ]
    say(f"{len(valid_seats)} of {len(seats)} seats re-verified off-chain from the events")
    limit = size_bound(spec, MAX_RANK)
    # Seat holders take the rules from the policy the round committed to, fetched by its CID.
    round_policy = read_policy(
        store.get(encode_cid(info.review_policy), max_bytes=MAX_POLICY_BYTES)
    )

    def fetch(cid: bytes) -> bytes | None:
        """The update's bytes, re-hashed on read; None (left out) if they cannot be had."""
        try:
            return store.get(encode_cid(cid), max_bytes=limit)
        except FlareError:
            return None

    def review() -> Any:
        """One seat holder's own computation, from the chain's list and the store's bytes."""
        submissions = [Submission(e.node, e.cid, e.num_samples, fetch(e.cid)) for e in registered]
        return next_model(base, genesis, 1, submissions, round_policy)

    committee_nodes = [node for node in peers if node.address in seats]
    proposer = committee_nodes[0]
    proposal = review()
    model_cid = store.put(proposal.model)
    for rejection in proposal.rejected:
        say(f"  left out {names.get(rejection.node, rejection.node)}: {rejection.reason}")
    receipt = proposer.ledger.propose_aggregate(
        1, decode_cid(model_cid), proposal.meta.updates_root
    )
    say(f"{proposer.name} proposed model {model_cid} over {len(proposal.included)} updates")
    # The policy's acceptance test: held-out loss of the candidate against the base's. Each
    # member would run it on data of its own; here they share the deployer's reference data.
    episodes = list(range(_REFERENCE_EPISODES))
    load_model(loaded, base)
    before = evaluate(loaded, reference, episodes, max_samples=64).loss
    load_model(loaded, read_model(proposal.model, spec))
    candidate = evaluate(loaded, reference, episodes, max_samples=64).loss
    accepted = round_policy.accepts(before, candidate)
    for node in committee_nodes:
        if owner.phase(1) is not Phase.REVIEW:
            break
        own = review()
        on_chain = owner.get_proposal(1, receipt.proposal_id)
        same = (
            encode_cid(on_chain.cid) == store.put(own.model)
            and on_chain.updates_root == own.meta.updates_root
        )
        approve = same and accepted
        node.ledger.vote(1, receipt.proposal_id, approve)
        why = "same bytes" if same else "different bytes"
        why += f", held-out loss {candidate:.4f} vs base {before:.4f}"
        say(f"{node.name} recomputed the model and voted {'approve' if approve else 'reject'} "
            f"({why})")  # fmt: skip

    # --- ADOPT: how the new model does on data no node trained on ---
    final = owner.get_round(1)
    model_round, model = owner.global_model()
    load_model(loaded, read_model(store.get(encode_cid(model)), spec))
    after = evaluate(loaded, reference, episodes, max_samples=64).loss
    say(f"round 1 {final.phase.name.lower()}: global model {encode_cid(model)}")
    say(f"round {owner.current_round()} is open in {owner.phase(owner.current_round()).name}")
    say()
    say("summary")
    say(f"  round 1        {final.phase.name.lower()} ({final.update_count} updates)")
    say(f"  committee      {len(seats)}/{k} seats, VRF proofs verified on-chain")
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
        "review_policy": policy_cid,
        "global_model": encode_cid(model),
        "global_model_round": model_round,
        "model_spec": "0x" + spec.hash.hex(),
        "held_out_loss": {"before": before, "after": after},
        "next_round": owner.current_round(),
    }
