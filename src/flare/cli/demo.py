"""`flare-node demo`: a federation of SmolVLA nodes learning together, round after round.

Everything runs for real, in one process: FlareRounds on the in-process EVM, the embedded
content store with Kubo-identical CIDs, and N node loops (`flare.node.round`, the loop a node
process runs), each with its own home: keys made like `flare-node init` makes them, its own
state database, trainer state and synthetic SO-100 data in its own stripe of the table
(non-IID). The loops are stepped in turn in one thread (`flare.node.cohort`), so the chain sees
one call at a time, and the chain's clock jumps ahead whenever every node waits on a deadline.

This module only wires adapters and reports: what a node does is the loop's. The run
directory outlives the command: node homes, the store, per-round metrics as JSON, and a plot
of held-out loss per round on reference data no node trained on.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import JsonOption, offline_hub
from flare.cli.data import record_synth
from flare.cli.demo_report import NodeView, RoundReport, collect, render_round, render_summary
from flare.cli.train import training_progress

if TYPE_CHECKING:
    from flare.node.round import Acted, NodeLoop, Wait
    from flare.node.train.dataset import DatasetSource
    from flare.node.train.synth import SynthOptions
    from flare.node.train.trainer import LeRobotTrainer
    from flare.protocol.model import GlobalModel
    from flare.protocol.ports import Trained

# Small enough for one CPU core in a minute and a half, large enough for the federation to
# learn: each node records 12 episodes (3 of each task) with its cubes in its own stripe of the
# table (non-IID in space) and holds one episode per task out for its acceptance test.
EPISODES, FRAMES, BATCH = 12, 30, 8
REFERENCE_EPISODES = 4  # the deployer's data: normalization statistics and held-out loss
EVAL_SAMPLES = 48
RANK = 4
NORM_BOUND = 1e3  # the deployment's bound on an update's L2 norm (a tiny policy's are ~1-10)
SAMPLE_CAP = 10_000
MAX_LOSS_INCREASE = 0.25  # a member rejects a model 25% worse on its own (non-IID) data
DEMO_PASSWORD = "flare-demo"  # noqa: S105 - throwaway keys of a throwaway chain
RUNS = Path("flare-runs")


def demo(
    nodes: Annotated[int, typer.Option("--nodes", min=2, max=9, help="Node loops.")] = 4,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=50, help="Rounds to run.")] = 3,
    committee: Annotated[
        int, typer.Option("--committee", min=1, max=9, help="Committee seats (k).")
    ] = 3,
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=1000, help="Local training steps per round.")
    ] = 30,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="Where the run is kept (node homes, store, metrics, plot). "
            "Default: flare-runs/demo-<UTC time>.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy FlareRounds on the embedded chain and run N node loops for R rounds."""
    if committee > nodes:
        raise typer.BadParameter("the committee cannot be larger than the federation")
    run = run_dir if run_dir is not None else RUNS / f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if run.exists() and any(run.iterdir()):
        raise typer.BadParameter(f"{run} is not empty; name a new --run-dir")
    offline_hub()
    import torch

    torch.set_num_threads(1)  # several loops in one process: one intra-op thread each is fastest
    summary = _run(run.resolve(), nodes, rounds, committee, steps, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))


@dataclass
class _Progress:
    """The trainer as the loop sees it, with a progress bar around each round's training."""

    inner: LeRobotTrainer
    label: str
    quiet: bool

    @property
    def spec(self) -> Any:
        return self.inner.spec

    def train(
        self, base: GlobalModel, base_cid: str, round_number: int, seed: bytes, node: str
    ) -> Trained:
        label = f"{self.label} round {round_number}"
        with training_progress(
            self.inner.settings.steps, enabled=not self.quiet, label=label
        ) as bar:
            self.inner.on_step = bar
            try:
                return self.inner.train(base, base_cid, round_number, seed, node)
            finally:
                self.inner.on_step = None

    def commit(self, round_number: int) -> None:
        self.inner.commit(round_number)

    def evaluate(self, model: GlobalModel) -> float:
        return self.inner.evaluate(model)


def _run(
    run: Path, n_nodes: int, rounds: int, k: int, steps: int, *, quiet: bool
) -> dict[str, Any]:
    # Heavy imports stay here so `flare-node --help` is fast.
    from flare.chain.connect import DEFAULT_RPC, connect
    from flare.chain.deploy import deploy
    from flare.chain.devchain import advance_time, dev_account_key, fund
    from flare.chain.ledger import Web3Ledger
    from flare.node.chatter import Chatter
    from flare.node.cohort import Cohort
    from flare.node.compress import PowerSGDConfig
    from flare.node.federation import genesis_model, load_model
    from flare.node.gossip.memory import MemoryNetwork
    from flare.node.identity import LIGHT_COST, create_node_keys, load_node_keys
    from flare.node.round import Identity, NodeLoop
    from flare.node.state import NodeState
    from flare.node.store.embedded import EmbeddedStore
    from flare.node.train.backbone import TINY, resolve_backbone
    from flare.node.train.dataset import open_metadata
    from flare.node.train.evaluate import evaluate
    from flare.node.train.policy import new_policy
    from flare.node.train.synth import SynthOptions
    from flare.node.train.trainer import LeRobotTrainer, TrainerSettings
    from flare.protocol import vrf
    from flare.protocol.aggregate import Rule
    from flare.protocol.cid import decode_cid, encode_cid
    from flare.protocol.model import read_model
    from flare.protocol.policy import ReviewPolicy
    from flare.protocol.rounds import RoundConfig, address_bytes

    def say(text: str = "") -> None:
        if not quiet:
            typer.echo(text)

    began = time.perf_counter()
    run.mkdir(parents=True, exist_ok=True)
    say(f"run directory {run}")
    w3 = connect(DEFAULT_RPC)
    chain_id = int(w3.eth.chain_id)
    store = EmbeddedStore(run / "store")

    # --- GENESIS: the deployer's reference data fixes the policy and its normalization ---
    reference = _synth(run / "reference", SynthOptions(
        episodes=REFERENCE_EPISODES, frames=FRAMES, use_videos=False, seed=0,
    ), "reference data", quiet)  # fmt: skip
    loaded = new_policy(
        resolve_backbone(TINY, run / "backbones"),
        open_metadata(reference),
        preset="tiny",
        device="cpu",
        seed=0,
    )
    spec = loaded.spec
    genesis = store.put(genesis_model(loaded))
    policy = ReviewPolicy(
        rule=Rule("fedavg"),
        norm_bound=NORM_BOUND,
        sample_cap=SAMPLE_CAP,
        max_loss_increase=MAX_LOSS_INCREASE,
    )
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
    say(f"genesis model {genesis}: tiny SmolVLA, {spec.numel:,} trainable parameters")
    say(f"FlareRounds at {record.address} (chain {chain_id}); review policy {policy_cid}")
    say(f"  fedavg, norm bound {NORM_BOUND:g}, members reject a model more than "
        f"{MAX_LOSS_INCREASE:.0%} worse on their own held-out data; k={k}, quorum 60%")  # fmt: skip

    # --- NODES: each with its own home, keys, state, trainer state and data ---
    settings = TrainerSettings(
        steps=steps, batch_size=BATCH, held_out=0.25, eval_samples=EVAL_SAMPLES,
        schedule_steps=rounds * steps, compression=PowerSGDConfig(rank=RANK, power_iterations=2),
    )  # fmt: skip
    loops: list[NodeLoop] = []
    views: list[NodeView] = []
    network = MemoryNetwork()  # the demo's gossip: the same signed messages, in memory
    for i in range(n_nodes):
        name, home = f"node-{i + 1}", run / "nodes" / f"node-{i + 1}"
        create_node_keys(home, DEMO_PASSWORD, cost=LIGHT_COST)
        keys = load_node_keys(home, DEMO_PASSWORD)
        address = keys.identity.address
        fund(w3, 0, address, 10**20)
        owner.allow(address)
        state = NodeState(home / "state")
        ledger = Web3Ledger(w3, record.address, private_key=keys.ethereum_key, journal=state)
        possession = vrf.prove_possession(
            keys.bls_secret_key, chain_id, address_bytes(record.address), address_bytes(address)
        )
        ledger.register(keys.identity.bls_public_key, possession, keys.identity.peer_public_key)
        options = SynthOptions(
            episodes=EPISODES, frames=FRAMES, use_videos=False, seed=i + 1,
            skew="region", node_index=i, num_nodes=n_nodes,
        )  # fmt: skip
        source = _synth(home / "data", options, f"{name} recording", quiet)
        trainer = LeRobotTrainer(loaded, source, home / "trainer", settings)
        low, high = options.region()
        say(f"{name} {address}: registered, cubes in u={low:.2f}..{high:.2f}")
        loops.append(
            NodeLoop(
                ledger, store, _Progress(trainer, name, quiet),
                Identity(address, keys.bls_secret_key), state,
                from_block=record.block, log=_prefixed(say, name),
                chatter=Chatter(
                    network.join(name), ledger, node=address,
                    peer_secret=keys.peer_secret_key, log=_prefixed(say, name),
                ),
            )
        )  # fmt: skip
        views.append(NodeView(name, address, state))

    reference_episodes = list(range(REFERENCE_EPISODES))

    @functools.cache  # a round's base is the last round's result: evaluate each model once
    def reference_loss(cid: str) -> float:
        load_model(loaded, read_model(store.get(cid), spec))
        return evaluate(
            loaded, reference, reference_episodes, batch_size=BATCH, max_samples=EVAL_SAMPLES
        ).loss

    names = {view.address: view.name for view in views}
    owner.start()
    cohort = Cohort(
        loops,
        now=owner.timestamp,
        advance=lambda seconds: advance_time(w3, seconds),
        on_step=lambda index, result: _narrate(say, views[index].name, result, names),
    )

    @functools.cache
    def own_losses(cid: str) -> dict[str, float]:
        """Each node's loss on its own held-out episodes: how the model does for each stripe."""
        model = read_model(store.get(cid), spec)
        return {
            view.name: loop.trainer.evaluate(model) for view, loop in zip(views, loops, strict=True)
        }

    (run / "rounds").mkdir()
    reports: list[RoundReport] = []
    genesis_loss = reference_loss(genesis)
    genesis_own = own_losses(genesis)
    for r in range(1, rounds + 1):
        base = encode_cid(owner.base_model(r))
        say()
        say(f"== round {r}: training from {base}")
        cohort.run_until(_past(owner, r))
        after = encode_cid(owner.base_model(r + 1))
        losses = (reference_loss(base), reference_loss(after))
        report = collect(owner, r, views, store, spec, losses, base=base, model=after)
        report.own_losses = own_losses(after)
        reports.append(report)
        say(render_round(report))
        (run / "rounds" / f"round-{r}.json").write_text(json.dumps(report.to_json(), indent=2))

    wall = time.perf_counter() - began
    plot = _plot(run / "held_out_loss.png", genesis_loss, genesis_own, reports)
    summary = {
        "run_dir": str(run),
        "contract": record.address,
        "chain_id": chain_id,
        "genesis_model": genesis,
        "review_policy": policy_cid,
        "model_spec": "0x" + spec.hash.hex(),
        "final_model": reports[-1].model,
        "genesis_held_out_loss": genesis_loss,
        "rounds": [report.summary() for report in reports],
        "plot": str(plot),
        "wall_seconds": round(wall, 3),
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    store.close()
    say()
    say(render_summary(reports, genesis_loss, wall))
    say(f"run directory {run} (summary.json, rounds/, {plot.name})")
    return summary


def _prefixed(say: Callable[[str], None], name: str) -> Callable[[str], None]:
    return lambda line: say(f"  {name}: {line}")


def _past(ledger: Any, r: int) -> Callable[[], bool]:
    """Whether round `r` has ended: finalizing or closing it opens the next."""
    return lambda: int(ledger.current_round()) > r


def _synth(root: Path, options: SynthOptions, label: str, quiet: bool) -> DatasetSource:
    """A synthetic SO-100 dataset written at `root`, with a progress bar."""
    from flare.node.train.dataset import DatasetSource

    record_synth(root, options, label=label, enabled=not quiet)
    return DatasetSource(root)


def _narrate(
    say: Callable[[str], None], name: str, result: Acted | Wait, names: dict[str, str]
) -> None:
    """One line per thing a node did; waiting is silent."""
    from flare.cli.nodelog import describe
    from flare.node.round import Acted

    if isinstance(result, Acted):
        say(f"  {name} {describe(result, names, short=True)}")


def _plot(
    path: Path, genesis_loss: float, genesis_own: dict[str, float], reports: list[RoundReport]
) -> Path:
    """Held-out loss per round: the reference data, and each node's own held-out episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    xs = [0] + [r.round for r in reports]
    axes.plot(xs, [genesis_loss] + [r.after for r in reports], marker="o", linewidth=2.5,
              color="black", label="reference data (no node trained on it)")  # fmt: skip
    for name, start in genesis_own.items():
        own = [start] + [r.own_losses.get(name, float("nan")) for r in reports]
        axes.plot(xs, own, linestyle="--", marker=".", alpha=0.7, label=f"{name}'s held-out data")
    axes.set_xlabel("round (0 = genesis)")
    axes.set_ylabel("held-out loss")
    axes.set_xticks(xs)
    axes.set_title("flare-node demo: held-out loss of the global model")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
