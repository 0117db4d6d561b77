"""What the demo reports per round, gathered from the chain and the nodes' own state records.

Nothing here is kept by the demo on the side: who sat on the committee and how the round ended
come from the contract; what each node trained, sent, computed, voted and paid comes from the
step records its loop wrote (`flare.node.state`), the same records `flare-node run` keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flare.node.state import NodeState
from flare.protocol.events import RoundFailed
from flare.protocol.ledger import Ledger
from flare.protocol.modelspec import ITEMSIZE, ModelSpec
from flare.protocol.rounds import Phase
from flare.protocol.store import BlobStore

STEPS_WITH_GAS = ("claim", "submit", "propose", "vote", "close")


@dataclass(frozen=True)
class NodeView:
    """A demo node as the report sees it: its name, address and state records."""

    name: str
    address: str
    state: NodeState


@dataclass
class RoundReport:
    round: int
    phase: str
    base: str
    model: str
    before: float
    after: float
    committee: list[str]
    included: list[str]
    rejected: list[dict[str, str]]
    nodes: list[dict[str, Any]]
    dense_bytes: int
    failure: str | None = None
    own_losses: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The round in the demo's `--json` summary."""
        return {
            "round": self.round,
            "phase": self.phase,
            "held_out_loss": {"before": self.before, "after": self.after},
            "included": self.included,
            "rejected": self.rejected,
            "committee": self.committee,
            "base_model": self.base,
            "model": self.model,
            "failure": self.failure,
            "bytes_sent": {n["name"]: n["update_bytes"] for n in self.nodes},
            "dense_bytes": self.dense_bytes,
            "gas": {n["name"]: n["gas"]["total"] for n in self.nodes},
        }

    def to_json(self) -> dict[str, Any]:
        """The round's metrics file: the summary plus every node's records."""
        return self.summary() | {"nodes": self.nodes, "own_held_out_loss": self.own_losses}


def collect(
    ledger: Ledger,
    r: int,
    views: list[NodeView],
    store: BlobStore,
    spec: ModelSpec,
    losses: tuple[float, float],
    *,
    base: str,
    model: str,
) -> RoundReport:
    """Round `r` once it has ended, from the chain and the nodes' records."""
    names = {view.address: view.name for view in views}
    phase = ledger.phase(r)
    committee = [names.get(seat.holder, seat.holder) for seat in ledger.seats(r)]
    records = {view.name: {step: o for _, step, o in view.state.outcomes(r)} for view in views}
    reviews = [steps["review"] for steps in records.values() if "review" in steps]
    # Who is in and out is the finalized model's (every honest member computed the same); a
    # failed round aggregated nothing, so only its rejections are shown.
    finalized = phase is Phase.FINALIZED
    chosen = next((rv for rv in reviews if rv["model"] == model), None) if finalized else None
    if not finalized and reviews:
        chosen = {"included": [], "rejected": reviews[0]["rejected"]}
    included = [names.get(n, n) for n in chosen["included"]] if chosen else []
    rejected = (
        [{"node": names.get(n, n), "reason": why} for n, why in chosen["rejected"]]
        if chosen
        else []
    )
    failure = None
    if phase is Phase.FAILED:
        failed = [e for e in ledger.events(0) if isinstance(e, RoundFailed) and e.round == r]
        failure = failed[0].reason.name.lower().replace("_", " ") if failed else "failed"
    left_out = {entry["node"]: entry["reason"] for entry in rejected}
    nodes = []
    for view in views:
        steps = records[view.name]
        submitted = steps.get("submit", {})
        sent = "gas" in submitted or submitted.get("recovered") is True
        trained = steps.get("train", {}) if sent else {}
        gas = {
            step: int(steps[step]["gas"]) for step in STEPS_WITH_GAS if "gas" in steps.get(step, {})
        }
        gas["total"] = sum(gas.values())
        vote = steps.get("vote")
        nodes.append(
            {
                "name": view.name,
                "address": view.address,
                "seat": view.name in committee,
                "update": trained.get("cid"),
                "update_bytes": trained.get("bytes", 0),
                "train": trained.get("metrics", {}),
                "outcome": (
                    "included" if view.name in included
                    else f"left out: {left_out[view.name]}" if view.name in left_out
                    else "no update registered" if not trained
                    else "round failed" if not finalized else "not aggregated"
                ),
                "vote": None if vote is None else {
                    "approve": vote.get("approve"), "reason": vote.get("reason"),
                },
                "review": steps.get("review"),
                "gas": gas,
            }
        )  # fmt: skip
    dense = sum(p.numel * ITEMSIZE[p.dtype] for p in spec.params)
    return RoundReport(
        round=r,
        phase=phase.name,
        base=base,
        model=model,
        before=losses[0],
        after=losses[1],
        committee=committee,
        included=included,
        rejected=rejected,
        nodes=nodes,
        dense_bytes=dense,
        failure=failure,
    )


def render_round(report: RoundReport) -> str:
    """The round's table: one row per node."""
    ended = report.phase if report.failure is None else f"{report.phase} ({report.failure})"
    lines = [
        f"round {report.round} {ended}: held-out loss {report.before:.4f} -> "
        f"{report.after:.4f} on reference data no node trained on",
        f"  next base model {report.model}",
        f"  {'node':<8}{'seat':<6}{'update':>10}  {'train loss':<17}{'gas':>11}  outcome",
    ]
    for node in report.nodes:
        metrics = node["train"]
        loss = (
            f"{metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}"
            if "first_loss" in metrics
            else "-"
        )
        size = f"{node['update_bytes'] / 1024:.0f} KiB" if node["update_bytes"] else "-"
        lines.append(
            f"  {node['name']:<8}{'yes' if node['seat'] else '-':<6}{size:>10}  {loss:<17}"
            f"{node['gas']['total']:>11,}  {node['outcome']}"
        )
    sent = [n["update_bytes"] for n in report.nodes if n["update_bytes"]]
    if sent:
        mean = sum(sent) / len(sent)
        lines.append(
            f"  each update {mean / 1024:.0f} KiB against {report.dense_bytes / 1024:,.0f} KiB "
            f"dense ({mean / report.dense_bytes:.1%}); committee: {', '.join(report.committee)}"
        )
    return "\n".join(lines)


def render_summary(reports: list[RoundReport], genesis_loss: float, wall: float) -> str:
    """All rounds in one table, and how far the federation got from the genesis model."""
    lines = [
        "summary",
        f"  {'round':<7}{'phase':<11}{'held-out loss':<19}{'included':<10}{'left out':<10}"
        "committee",
    ]
    for r in reports:
        lines.append(
            f"  {r.round:<7}{r.phase:<11}{f'{r.before:.4f} -> {r.after:.4f}':<19}"
            f"{len(r.included):<10}{len(r.rejected):<10}{', '.join(r.committee)}"
        )
    if reports:
        final = reports[-1].after
        lines.append(
            f"  held-out loss {genesis_loss:.4f} (genesis) -> {final:.4f}: "
            f"{final / genesis_loss:.2f}x, in {wall:.0f} s"
        )
    return "\n".join(lines)
