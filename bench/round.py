"""Coordination overhead of a round: everything a node does except training, at 4, 16, 64 nodes.

    .venv/bin/python bench/round.py [--nodes 4,16,64] [--embedded-nodes 4,16] [--rounds 2]
        [--committee 7] [--chain anvil|embedded|both] [--rpc http://...] [--json]

N real node loops (`flare.node.round.NodeLoop`, the loop `flare-node run` runs) with twin
trainers take part in R rounds on one FlareRounds deployment, stepped in turn in one thread as
`flare-node demo` steps them (`flare.node.cohort`). Each loop has its own ledger (its own
account and, on anvil, its own connection), its own SQLite state and a shared embedded store
(a stand-in for the IPFS network everybody pins to). Everything a node does is timed: adopting
the base, the VRF proof and seat claim, pinning its update, the transactions, fetching and
verifying the updates, aggregating, evaluating, proposing, voting. The trainer's `train()`
(the twin: one step toward its target plus a truncated-SVD factorisation) is timed apart and
left out, so "coordination" is the loops' step time minus training. It is the sum over all
nodes, run one after another: real nodes run side by side, so a round's latency is lower.

The committee is k = min(N, --committee) seats (7 by default, the contract's default size),
quorum 60%; `min_claim_window = 0`, so Training closes as soon as every node has submitted
and all k seats are held, and nobody waits out a window. Per node: transactions and gas from
receipts, bytes the node added to the store (its update; a seat holder also its computed
model) and bytes it read back (base model, policy, the round's updates). On the embedded
chain (py-evm) the EIP-2537 precompiles are pure Python; the share of coordination time spent
in the pairing check (and in all BLS precompiles) is measured by wrapping them.

Targets, on anvil: at most 3 s of coordination per round at 16 nodes, and growth with N no
worse than linear: growth = (t_N / t_N0) / (N / N0) <= 1 against the smallest N measured.
Wall seconds move with whatever else the machine runs (the load average is printed) and with
the machine's own speed, which on shared hosts swings twofold or more from hour to hour (hosts
that throttle sustained load included): on anvil, bare eth_blockNumber round trips are timed
between the loops' steps, under the same load (RPC ms, their median), and s/round is also
given in those round trips (RTs/round), a figure that moves less between machines and hours.
The loops' own CPU seconds move less too. The embedded chain runs 4 and 16 nodes by default: at 16 a
size already takes minutes there. Figures are printed, never asserted.
"""

# ruff: noqa: E402 (BLAS threads are pinned before numpy loads)
from __future__ import annotations

import os

# Several node loops share one process: one BLAS thread each, as the demo pins torch's. On a
# busy 2-core machine OpenBLAS's default threads made a 256x128 SVD about 10x slower.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import collections
import contextlib
import functools
import hashlib
import http.client
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np
from eth_utils.crypto import keccak

from flare.chain.connect import connect
from flare.chain.deploy import deploy
from flare.chain.devchain import advance_time, dev_account_key, fund
from flare.chain.ledger import Web3Ledger
from flare.node.cohort import Cohort
from flare.node.round import Identity, NodeLoop, Retention
from flare.node.state import NodeState
from flare.node.store.embedded import EmbeddedStore
from flare.node.train.twin import TwinTrainer
from flare.protocol import bls, vrf
from flare.protocol.aggregate import Rule
from flare.protocol.cid import decode_cid
from flare.protocol.model import GlobalModel, ModelMeta, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.policy import ReviewPolicy
from flare.protocol.ports import Trained
from flare.protocol.rounds import RoundConfig, address_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))  # the test suites' anvil launcher

from anvil_process import ANVIL, AnvilProcess

# A small slice of an action expert: two projections and a norm. The figures scale with the
# bytes moved only through the store columns; the chain's work does not depend on the model.
SPEC = ModelSpec.from_shapes(
    {
        "expert.in_proj.weight": (256, 128),
        "expert.out_proj.weight": (128, 256),
        "expert.norm": (128,),
    }
)
POLICY = ReviewPolicy(
    rule=Rule("fedavg"), norm_bound=1e3, sample_cap=10_000, max_loss_increase=0.25
)
WINDOW = 3600  # Training and Review windows (s): never reached, rounds close by counters
NODE_FUNDS = 10**20
DEFAULT_ANVIL_NODES = (4, 16, 64)
DEFAULT_EMBEDDED_NODES = (4, 16)  # each claim and registration checks a pairing in pure Python
TARGET_SECONDS_AT_16 = 3.0
SENDS = frozenset({"submit_update", "claim_seat", "propose_aggregate", "vote", "close_round"})
BLS_PRECOMPILES = {
    0x0B: "g1_add",
    0x0C: "g1_msm",
    0x0D: "g2_add",
    0x0E: "g2_msm",
    0x0F: "pairing",
    0x10: "map_fp_to_g1",
    0x11: "map_fp2_to_g2",
}


# ---------------------------------------------------------------- measuring


class Meter:
    """Exclusive time per category: a span nested in another is taken out of its parent.

    Spans nest per thread. The review fetches updates in a thread pool while the step waits;
    those spans have no parent in their thread and are kept under `pooled`, so the breakdown
    can take them out of the waiting step's own time (an estimate: the fetches may overlap).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.cpu: dict[str, float] = collections.defaultdict(float)  # this thread's CPU time
        self.calls: collections.Counter[str] = collections.Counter()
        self.pooled: dict[str, float] = collections.defaultdict(float)
        self._local = threading.local()
        self._main = threading.main_thread()

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        stack: list[list[Any]] = self._local.__dict__.setdefault("stack", [])
        frame: list[Any] = [name, time.perf_counter(), 0.0, time.thread_time(), 0.0]
        stack.append(frame)
        try:
            yield
        finally:
            stack.pop()
            elapsed = time.perf_counter() - frame[1]
            cpu = time.thread_time() - frame[3]
            self.calls[name] += 1
            if stack:
                stack[-1][2] += elapsed
                stack[-1][4] += cpu
            if stack or threading.current_thread() is self._main:
                self.seconds[name] += elapsed - frame[2]
                self.cpu[name] += cpu - frame[4]
            else:
                self.pooled[name] += elapsed - frame[2]

    def reset(self) -> None:
        """Forget what setup spent: only the rounds count."""
        self.seconds.clear()
        self.cpu.clear()
        self.calls.clear()
        self.pooled.clear()

    def total(self, prefix: str) -> float:
        return sum(s for n, s in self.seconds.items() if n.startswith(prefix)) + sum(
            s for n, s in self.pooled.items() if n.startswith(prefix)
        )


@dataclass
class NodeBook:
    """What one node spent: transactions, gas, bytes in and out of the store."""

    txs: int = 0
    gas: int = 0
    pinned: int = 0
    fetched: int = 0
    sends: collections.Counter[str] = field(default_factory=collections.Counter)


class MeteredLedger:
    """The node's ledger, with every call timed and every receipt's gas booked."""

    def __init__(self, inner: Web3Ledger, meter: Meter, book: NodeBook) -> None:
        self._inner, self._meter, self._book = inner, meter, book

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value
        kind = "chain.send" if name in SENDS else "chain.read"

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._meter.span(f"{kind}:{name}"):
                result = value(*args, **kwargs)
            if name in SENDS:
                self._book.txs += 1
                self._book.gas += int(result.gas_used)
                self._book.sends[name] += 1
            return result

        return call


class MeteredStore:
    """The shared store as one node sees it: bytes it adds and bytes it reads, timed."""

    def __init__(self, inner: EmbeddedStore, meter: Meter, book: NodeBook) -> None:
        self._inner, self._meter, self._book = inner, meter, book

    def put(self, data: bytes, *, pin: bool = True) -> str:
        with self._meter.span("store:put"):
            cid = self._inner.put(data, pin=pin)
        self._book.pinned += len(data)
        return cid

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        with self._meter.span("store:get"):
            data = self._inner.get(cid, max_bytes=max_bytes)
        self._book.fetched += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._meter.span(f"store:{name}"):
                return value(*args, **kwargs)

        return call


class MeteredState:
    """The node's SQLite state (and transaction journal), each call timed."""

    def __init__(self, inner: NodeState, meter: Meter) -> None:
        self._inner, self._meter = inner, meter

    @contextlib.contextmanager
    def step(self, round_number: int, step: str) -> Iterator[None]:
        with self._inner.step(round_number, step):
            yield

    # The transaction journal's two methods are spelled out: the chain layer recognises a
    # journal by its class's attributes (a runtime-checkable protocol), not `__getattr__`.
    def record(self, tx_hash: bytes, nonce: int) -> None:
        with self._meter.span("state:record"):
            self._inner.record(tx_hash, nonce)

    def signed_at(self, nonce: int) -> list[bytes]:
        with self._meter.span("state:signed_at"):
            return self._inner.signed_at(nonce)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._meter.span(f"state:{name}"):
                return value(*args, **kwargs)

        return call


class MeteredTrainer:
    """The twin, with `train` timed apart (left out of coordination) and `evaluate` timed."""

    def __init__(self, inner: TwinTrainer, meter: Meter) -> None:
        self._inner, self._meter = inner, meter

    @property
    def spec(self) -> ModelSpec:
        return self._inner.spec

    def train(
        self, base: GlobalModel, base_cid: str, round_number: int, seed: bytes, node: str
    ) -> Trained:
        with self._meter.span("train"):
            return self._inner.train(base, base_cid, round_number, seed, node)

    def commit(self, round_number: int) -> None:
        with self._meter.span("trainer:commit"):
            self._inner.commit(round_number)

    def evaluate(self, model: GlobalModel) -> float:
        with self._meter.span("trainer:evaluate"):
            return self._inner.evaluate(model)


class TimedLoop:
    """A node loop whose every step is a span: the root of everything the node does."""

    def __init__(
        self, loop: NodeLoop, meter: Meter, between: Callable[[], None] | None = None
    ) -> None:
        self.loop, self._meter, self._between = loop, meter, between

    def step(self) -> Any:
        with self._meter.span("step"):
            result = self.loop.step()
        if self._between is not None:
            self._between()  # outside the span: not the node's time
        return result


@contextlib.contextmanager
def bls_precompiles_timed(meter: Meter) -> Iterator[None]:
    """Time py-evm's EIP-2537 precompiles (pure Python over py_ecc) while inside."""
    from eth._utils.address import force_bytes_to_address
    from eth.vm.forks.prague.computation import PragueComputation

    table = PragueComputation._precompiles
    originals = {}
    for number, name in BLS_PRECOMPILES.items():
        address = force_bytes_to_address(bytes([number]))
        original = table[address]
        originals[address] = original

        def timed(computation: Any, _fn: Any = original, _name: str = name) -> Any:
            with meter.span(f"bls:{_name}"):
                return _fn(computation)

        table[address] = timed
    try:
        yield
    finally:
        table.update(originals)


# ---------------------------------------------------------------- anvil


@contextlib.contextmanager
def anvil_url(rpc: str | None, workdir: Path) -> Iterator[str]:
    """`rpc` if given, else a fresh anvil for the run."""
    if rpc:
        yield rpc
        return
    if not ANVIL.exists():
        raise SystemExit("anvil is not installed (run `make setup`), or pass --rpc http://...")
    tools = Path(os.environ.get("FLARE_TOOLS_HOME", ROOT / ".tools" / "home"))
    anvil = AnvilProcess(tools / "bench-round" / workdir.name)
    try:
        yield anvil.url
    finally:
        anvil.stop()


# ---------------------------------------------------------------- one federation


class RoundTrips:
    """Bare `eth_blockNumber` round trips to the endpoint, timed between the loops' steps: a
    peer measured in the same run, under the same load, to read s/round against. (This
    machine's speed swings from hour to hour, and hosts that throttle sustained load run a
    short probe at full speed: a probe before and after the run would miss the slowdown.)"""

    def __init__(self, rpc: str) -> None:
        parts = urlsplit(rpc)
        self._path = parts.path or "/"
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        self._body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
        self.times: list[float] = []

    def sample(self, count: int = 3) -> None:
        for _ in range(count):
            began = time.perf_counter()
            self._connection.request(
                "POST", self._path, self._body, {"Content-Type": "application/json"}
            )
            self._connection.getresponse().read()
            self.times.append(time.perf_counter() - began)

    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000

    def close(self) -> None:
        self._connection.close()


def node_key(label: str, index: int) -> bytes:
    """A fixed key per node: runs are reproducible (same seats, same committee)."""
    digest = hashlib.sha256(f"bench/round/{label}/{index}".encode()).digest()
    return (int.from_bytes(digest, "big") % (bls.ORDER - 1) + 1).to_bytes(32, "big")


def measure(
    rpc: str, nodes: int, rounds: int, committee: int, workdir: Path, *, chain: str
) -> dict[str, Any]:
    """Deploy, register `nodes` nodes, run `rounds` rounds; return the figures per round."""
    trips = RoundTrips(rpc) if chain == "anvil" else None
    w3 = connect(rpc)
    chain_id = int(w3.eth.chain_id)
    store = EmbeddedStore(workdir / "store")
    rng = np.random.default_rng(0)
    weights = {p.name: rng.standard_normal(p.shape).astype(np.float32) for p in SPEC.params}
    genesis = store.put(write_model(ModelMeta.genesis(SPEC), SPEC, weights))
    policy = store.put(POLICY.to_bytes())
    k = min(nodes, committee)
    config = RoundConfig(
        committee_size=k,
        quorum_bps=6000,
        train_window=WINDOW,
        review_window=WINDOW,
        min_claim_window=0,  # Training closes once every node submitted and k seats are held
        min_updates=1,
        max_samples=POLICY.sample_cap,
        review_policy=decode_cid(policy),
    )
    record, owner = deploy(
        w3,
        dev_account_key(chain_id, 0),
        model_spec_hash=SPEC.hash,
        genesis_model=decode_cid(genesis),
        config=config,
        allowlist=False,
    )

    # --- setup, not measured: fund, register (each registration checks a pairing) ---
    meter = Meter()
    books = [NodeBook() for _ in range(nodes)]
    loops: list[TimedLoop] = []
    for i in range(nodes):
        eth_key, bls_secret = keccak(b"bench/round/eth/%d" % i), node_key("bls", i)
        node_w3 = w3 if chain == "embedded" else connect(rpc)  # anvil: a connection per node
        home = workdir / f"node-{i}"
        state = NodeState(home / "state")
        metered_state = MeteredState(state, meter)
        ledger = Web3Ledger(node_w3, record.address, private_key=eth_key)
        address = str(ledger.account)
        fund(w3, 0, address, NODE_FUNDS)
        possession = vrf.prove_possession(
            bls_secret, chain_id, address_bytes(record.address), address_bytes(address)
        )
        ledger.register(vrf.public_key(bls_secret), possession, keccak(bls_secret))
        journaled = Web3Ledger(
            node_w3, record.address, private_key=eth_key, journal=cast(Any, metered_state)
        )
        loop = NodeLoop(
            cast(Any, MeteredLedger(journaled, meter, books[i])),
            cast(Any, MeteredStore(store, meter, books[i])),
            MeteredTrainer(TwinTrainer.for_node(SPEC, i, home / "trainer"), meter),
            Identity(address, bls_secret),
            cast(Any, metered_state),
            from_block=record.block,
            retention=Retention(),
        )
        loops.append(TimedLoop(loop, meter, trips.sample if trips is not None else None))
    owner.start()
    meter.reset()

    advances = 0

    def advance(seconds: int) -> None:
        nonlocal advances
        advances += 1
        advance_time(w3, seconds)

    cohort = Cohort(cast(Any, loops), now=owner.timestamp, advance=advance)
    timing = bls_precompiles_timed(meter) if chain == "embedded" else contextlib.nullcontext()
    began = time.perf_counter()
    with timing:
        for r in range(1, rounds + 1):
            cohort.run_until(functools.partial(past, owner, r))
    wall = time.perf_counter() - began
    finalized = sum(1 for r in range(1, rounds + 1) if owner.get_round(r).phase.name == "FINALIZED")
    store.close()
    result = figures(
        chain, nodes, k, config.quorum, rounds, meter, books, wall, advances, finalized
    )
    if chain == "anvil":
        result["rpc_round_trip_ms"] = trips.median_ms()
        trips.close()
    return result


def past(owner: Web3Ledger, r: int) -> bool:
    """Whether round `r` has ended: finalizing or closing it opens the next."""
    return owner.current_round() > r


def figures(
    chain: str,
    nodes: int,
    k: int,
    quorum: int,
    rounds: int,
    meter: Meter,
    books: Sequence[NodeBook],
    wall: float,
    advances: int,
    finalized: int,
) -> dict[str, Any]:
    """Per-round figures from the meter and the books."""
    # Exclusive times of the main thread add up to the steps' wall time; training is left out.
    coordination = sum(s for n, s in meter.seconds.items() if n != "train")
    pooled = sum(meter.pooled.values())
    # A step's own time includes its wait for the review's fetch threads: take them out once.
    own_step = max(0.0, meter.seconds["step"] - pooled)
    per_round = coordination / rounds

    def share(prefix: str) -> float:
        return meter.total(prefix) / coordination if coordination else 0.0

    categories = {
        "chain reads": share("chain.read:"),
        "chain transactions": share("chain.send:"),
        "store": share("store:"),
        "node state (SQLite)": share("state:"),
        "trainer (evaluate, commit)": share("trainer:"),
        **({"EVM BLS precompiles": share("bls:")} if chain == "embedded" else {}),
        "other (VRF proofs, aggregation, decoding)": own_step / coordination
        if coordination
        else 0.0,
    }
    calls = sorted(
        (
            (name, meter.seconds.get(name, 0.0) + meter.pooled.get(name, 0.0))
            for name in meter.calls
            if name not in ("step", "train")
        ),
        key=lambda item: -item[1],
    )
    top = [
        {
            "call": name,
            "calls_per_round": meter.calls[name] / rounds,
            "share": seconds / coordination if coordination else 0.0,
        }
        for name, seconds in calls[:8]
    ]
    result: dict[str, Any] = {
        "chain": chain,
        "nodes": nodes,
        "k": k,
        "quorum": quorum,
        "rounds": rounds,
        "finalized": finalized,
        "coordination_s_per_round": per_round,
        "coordination_s_per_node": per_round / nodes,
        "train_s_per_round": meter.seconds["train"] / rounds,
        "wall_s_per_round": wall / rounds,
        # The loops' own CPU (main thread; anvil's and the fetch threads' are not in it).
        "cpu_s_per_round": sum(s for n, s in meter.cpu.items() if n != "train") / rounds,
        "steps_per_round": meter.calls["step"] / rounds,
        "clock_moves": advances,
        "tx_per_node": sum(b.txs for b in books) / nodes / rounds,
        "gas_per_node": sum(b.gas for b in books) / nodes / rounds,
        "max_gas_node": max(b.gas for b in books) / rounds,
        "kib_pinned_per_node": sum(b.pinned for b in books) / nodes / rounds / 1024,
        "kib_fetched_per_node": sum(b.fetched for b in books) / nodes / rounds / 1024,
        "transactions": dict(sum((b.sends for b in books), collections.Counter())),
        "breakdown": categories,
        "top_calls": top,
    }
    if chain == "embedded":
        result["pairing_share"] = share("bls:pairing")
        result["bls_precompile_share"] = share("bls:")
        result["pairing_checks_per_round"] = meter.calls["bls:pairing"] / rounds
    return result


# ---------------------------------------------------------------- the report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_growth(runs: list[dict[str, Any]]) -> None:
    """growth = (t_N / t_N0) / (N / N0) against the chain's smallest N: <= 1 is sublinear."""
    for chain in {run["chain"] for run in runs}:
        mine = [run for run in runs if run["chain"] == chain]
        mine.sort(key=lambda run: run["nodes"])
        first = mine[0]
        for previous, run in zip([first, *mine], mine, strict=False):
            run["growth"] = grown(first, run)
            run["growth_from"] = first["nodes"]
            # Against the next smaller size too: the smallest has fewer seats (k = N < 7), and
            # one noisy baseline should not decide the verdict alone.
            run["growth_step"] = grown(previous, run)
            run["growth_step_from"] = previous["nodes"]


def grown(smaller: dict[str, Any], larger: dict[str, Any]) -> float:
    """(t_large / t_small) / (N_large / N_small): 1 is linear growth, below it sublinear."""
    ratio = float(larger["coordination_s_per_round"] / smaller["coordination_s_per_round"])
    return ratio / (int(larger["nodes"]) / int(smaller["nodes"]))


def verdicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The anvil targets: <= 3 s per round at 16 nodes, growth no worse than linear."""
    anvil = [run for run in runs if run["chain"] == "anvil"]
    at16 = next((run for run in anvil if run["nodes"] == 16), None)
    larger = [run for run in anvil if run["nodes"] != run["growth_from"]]
    return {
        "seconds_at_16": None if at16 is None else at16["coordination_s_per_round"],
        "met_3s_at_16": None
        if at16 is None
        else at16["coordination_s_per_round"] <= TARGET_SECONDS_AT_16,
        "worst_growth": max((run["growth"] for run in larger), default=None),
        "worst_growth_step": max((run["growth_step"] for run in larger), default=None),
        "met_linear": None if not larger else all(run["growth"] <= 1.0 for run in larger),
    }


def render(report: dict[str, Any]) -> str:
    """The figures as tables for people."""
    model = report["model"]
    lines = [
        f"Round coordination (everything but train()), {report['rounds']} round(s) per size, "
        f"twin trainer on {model['parameters']:,} float32 parameters "
        f"({model['kib']:.0f} KiB model), k = min(N, {report['committee']}), quorum 60%; "
        f"load average {report['load_average']:.1f} at the end",
        "s/round: all nodes' steps, one after another in one process (CPU s: the loops' own "
        "share of it); s/node = s/round / N; growth = (t_N/t_N0)/(N/N0), <= 1 is no worse "
        "than linear; RPC ms: the median bare eth_blockNumber round trip to anvil, timed between "
        "the steps, and s/round in those (RTs/round), to compare runs at other machine speeds",
        "",
        f"{'chain':<9}{'nodes':>6}{'k':>4}{'s/round':>9}{'CPU s':>7}{'s/node':>8}{'growth':>8}"
        f"{'train s':>9}{'tx/node':>9}{'gas/node':>10}{'KiB pin/node':>14}"
        f"{'KiB fetch/node':>16}{'pairing':>9}{'RPC ms':>8}{'RTs/round':>10}",
    ]
    for run in report["runs"]:
        pairing = f"{run['pairing_share']:>8.0%}" if "pairing_share" in run else f"{'-':>8}"
        trip = run.get("rpc_round_trip_ms")
        trips = (
            f"{trip:>8.2f}{run['coordination_s_per_round'] * 1000 / trip:>10,.0f}"
            if trip
            else f"{'-':>8}{'-':>10}"
        )
        lines.append(
            f"{run['chain']:<9}{run['nodes']:>6}{run['k']:>4}"
            f"{run['coordination_s_per_round']:>9.2f}{run['cpu_s_per_round']:>7.2f}"
            f"{run['coordination_s_per_node']:>8.3f}"
            f"{run['growth']:>8.2f}{run['train_s_per_round']:>9.2f}{run['tx_per_node']:>9.2f}"
            f"{run['gas_per_node']:>10,.0f}{run['kib_pinned_per_node']:>14.1f}"
            f"{run['kib_fetched_per_node']:>16.1f} {pairing}{trips}"
        )
    unfinished = [run for run in report["runs"] if run["finalized"] != run["rounds"]]
    for run in unfinished:
        lines.append(
            f"  {run['chain']} {run['nodes']}: only {run['finalized']} of {run['rounds']} "
            "rounds finalized"
        )
    target = report["targets"]
    if target["seconds_at_16"] is not None:
        met = "met" if target["met_3s_at_16"] else "MISSED"
        lines.append(
            f"anvil, 16 nodes: {target['seconds_at_16']:.2f} s of coordination per round "
            f"(target <= {TARGET_SECONDS_AT_16:g} s): {met}"
        )
    if target["worst_growth"] is not None:
        met = "met" if target["met_linear"] else "MISSED"
        steps = ", ".join(
            f"{run['growth_step_from']}->{run['nodes']}: {run['growth_step']:.2f}"
            for run in report["runs"]
            if run["chain"] == "anvil" and run["nodes"] != run["growth_from"]
        )
        lines.append(
            f"anvil, growth with N: worst {target['worst_growth']:.2f} against the smallest N "
            f"(target <= 1, linear): {met}; size to size {steps}"
        )
    for note in report["notes"]:
        lines.append(note)
    for run in report["runs"]:
        lines.append("")
        lines.append(
            f"{run['chain']}, {run['nodes']} nodes: where coordination goes "
            f"({run['steps_per_round']:.0f} loop steps a round; "
            f"{run['wall_s_per_round']:.2f} s wall with training and the bench's checks)"
        )
        parts = [
            f"{name} {value:.0%}" for name, value in run["breakdown"].items() if value >= 0.005
        ]
        lines.append("  " + ", ".join(parts))
        for call in run["top_calls"][:5]:
            lines.append(
                f"  {call['call']:<34}{call['calls_per_round']:>8.0f} calls/round "
                f"{call['share']:>6.0%}"
            )
    return "\n".join(lines)


def sizes(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(n < 2 for n in values):
        raise argparse.ArgumentTypeError("a comma-separated list of node counts, each >= 2")
    return sorted(set(values))


def run(
    chains: Sequence[str],
    anvil_nodes: Sequence[int],
    embedded_nodes: Sequence[int],
    *,
    rounds: int,
    committee: int,
    rpc: str | None = None,
    progress: Callable[[str], None] = log,
) -> dict[str, Any]:
    """Every size on every chain asked for, and the verdicts: the bench's core."""
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flare-bench-round-") as tmp:
        for chain in chains:
            for nodes in anvil_nodes if chain == "anvil" else embedded_nodes:
                workdir = Path(tmp) / f"{chain}-{nodes}"
                workdir.mkdir()
                progress(f"{chain}: {nodes} nodes, {rounds} round(s)...")
                began = time.perf_counter()
                if chain == "anvil":
                    with anvil_url(rpc, workdir) as url:
                        figures_ = measure(url, nodes, rounds, committee, workdir, chain=chain)
                else:
                    url = f"eth-tester://bench-round-{nodes}-{workdir.name}"
                    figures_ = measure(url, nodes, rounds, committee, workdir, chain=chain)
                progress(
                    f"  {figures_['coordination_s_per_round']:.2f} s coordination a round "
                    f"({time.perf_counter() - began:.0f} s with setup)"
                )
                runs.append(figures_)
    add_growth(runs)
    notes = []
    if "embedded" in chains and anvil_nodes and max(embedded_nodes) < max(anvil_nodes):
        notes.append(
            f"embedded chain run at {','.join(map(str, embedded_nodes))} nodes only: py-evm "
            "checks each registration's and seat claim's BLS pairing in pure Python and "
            "decodes every block of a log query; --embedded-nodes adds sizes"
        )
    return {
        "machine": platform.machine(),
        "load_average": os.getloadavg()[0],
        "python": platform.python_version(),
        "rounds": rounds,
        "committee": committee,
        "model": {"parameters": SPEC.numel, "kib": SPEC.numel * 4 / 1024},
        "runs": runs,
        "targets": verdicts(runs),
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nodes", type=sizes, default=None,
        help="node counts, comma-separated (default 4,16,64 on anvil, 4,16 embedded)",
    )  # fmt: skip
    parser.add_argument(
        "--embedded-nodes", type=sizes, default=None,
        help="node counts on the embedded chain (default: --nodes, else 4,16)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="rounds per size (default 2)")
    parser.add_argument(
        "--committee", type=int, default=7, help="seats: k = min(N, this) (default 7)"
    )
    parser.add_argument("--chain", choices=("anvil", "embedded", "both"), default="both")
    parser.add_argument("--rpc", default=None, help="an anvil already running (default: start one)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.committee < 1:
        parser.error("--rounds and --committee must be at least 1")
    anvil_nodes = args.nodes or list(DEFAULT_ANVIL_NODES)
    embedded_nodes = args.embedded_nodes or args.nodes or list(DEFAULT_EMBEDDED_NODES)
    chains = ("anvil", "embedded") if args.chain == "both" else (args.chain,)
    if "torch" in sys.modules:  # the twin needs no torch; if something loaded it, one thread
        sys.modules["torch"].set_num_threads(1)
    report = run(
        chains,
        anvil_nodes,
        embedded_nodes,
        rounds=args.rounds,
        committee=args.committee,
        rpc=args.rpc,
    )
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
