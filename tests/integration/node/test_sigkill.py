"""`flare-node run` killed with SIGKILL at every phase boundary, then started again.

Two node processes (k = 2, both must submit and both must vote) run round 1 on a real anvil.
One of them runs with `FLARE_CRASH_AT=<point>`: the process kills itself with SIGKILL when its
loop reaches that point (the hook fires on the loop's own progress, never on timing), and the
test starts it again without the hook. Whatever the point, the round must finalize with one
update and one vote per node, the restarted node must not have signed a second transaction for
the step it died in (its account's nonce equals the transactions it journaled, all mined), and
its update must still be pinned and verify against the CID it registered.
"""

from __future__ import annotations

import json
import signal

import pytest
from node_harness import Node, ProcessFederation

from flare.protocol.cid import encode_cid
from flare.protocol.events import (
    AggregateProposed,
    RoundFinalized,
    SeatClaimed,
    UpdateSubmitted,
    VoteCast,
)

pytestmark = pytest.mark.anvil

# point -> (step whose record the restart writes, what that record must say)
CRASH_POINTS = {
    "train:trained": ("train", "trained again: nothing was pinned or sent"),
    "train:pinned": ("train", "trained again: the same bytes, the same CID"),
    "submit:before-send": ("submit", "sent the registration the crash prevented"),
    "submit:broadcast": ("submit", "found the registration on-chain"),
    "submit:sent": ("submit", "found the registration on-chain"),
    "claim:broadcast": ("claim", "found the seat claim on-chain"),
    "claim:sent": ("claim", "found the seat claim on-chain"),
    "vote:before-send": ("vote", "sent the vote the crash prevented"),
    "vote:broadcast": ("vote", "found the vote on-chain"),
    "vote:sent": ("vote", "found the vote on-chain"),
}


def account_nonce(federation: ProcessFederation, node: Node) -> int:
    return int(federation.w3.eth.get_transaction_count(node.address))


def journaled(node: Node) -> list[str]:
    """Hashes of every transaction the node's processes signed in round 1."""
    with node.state() as state:
        return [
            h
            for step in ("claim", "submit", "propose", "vote", "close")
            for h in state.txs(1, step)
        ]


def check_round_completed(federation: ProcessFederation) -> None:
    """Round 1 finalized with one update and one vote per node, and every pin verifies."""
    (finalized,) = federation.events(RoundFinalized)
    updates = federation.events(UpdateSubmitted)
    votes = federation.events(VoteCast)
    for node in federation.nodes:
        (update,) = federation.of(updates, node)
        assert len(federation.of(votes, node)) == 1
        assert len(federation.of(federation.events(SeatClaimed), node)) == 1
        cid = encode_cid(update.cid)
        assert cid in federation.store.pins()
        federation.store.get(cid)  # re-hashes every block: the pinned bytes are the update
        # Every transaction the node signed was mined exactly once: no second try, no revert.
        assert account_nonce(federation, node) == node.registered_nonce + len(journaled(node))
    assert len(federation.events(AggregateProposed)) == 1
    assert finalized.approvals == 2


def test_two_node_processes_finish_a_round(federation: ProcessFederation) -> None:
    for node in federation.nodes:
        federation.start(node)
    for node in federation.nodes:
        assert federation.wait(node) == 0, node.log()
    check_round_completed(federation)
    lines = [json.loads(line) for line in federation.nodes[0].log().splitlines()]
    steps = [line["step"] for line in lines if "step" in line]
    assert {"adopt", "claim", "train", "submit", "review", "vote"} <= set(steps)
    assert all(line["round"] == 1 for line in lines if line.get("step") == "submit")
    assert steps[-1] == "stop"


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_a_node_killed_at_a_phase_boundary_resumes(
    federation: ProcessFederation, point: str
) -> None:
    victim, other = federation.nodes
    federation.start(victim, crash_at=point)
    federation.start(other)
    assert federation.wait(victim) == -signal.SIGKILL, victim.log()

    federation.start(victim)  # the same home, no crash hook
    for node in federation.nodes:
        assert federation.wait(node) == 0, node.log()
    check_round_completed(federation)
    step, _ = CRASH_POINTS[point]
    with victim.state() as state:
        outcome = state.get(1, step)
        signed = state.txs(1, step)
    if step != "train":
        assert len(signed) == 1, signed  # one transaction for the step, across both processes
    if point.endswith(("broadcast", ":sent")):
        assert_found_on_chain(victim, outcome)
    else:
        assert outcome is not None
        assert not outcome.get("recovered"), outcome


def assert_found_on_chain(node: Node, outcome: dict[str, object] | None) -> None:
    """The restart recorded the step as recovered, or the round finalized before it looked.

    A transaction that was mined before the crash can be the one that finalized the round (the
    last vote does): the restarted process then starts past its last round, acts on nothing and
    exits, and the step needs no record, since the chain has it.
    """
    if outcome is not None:
        assert outcome.get("recovered") is True, outcome
        return
    lines = [json.loads(line) for line in node.log().splitlines()]
    assert [line.get("step") for line in lines] == ["start", "stop"], lines


def test_the_proposer_killed_after_proposing_resumes(federation: ProcessFederation) -> None:
    # Only the holder of the lowest seat proposes: arm both nodes, exactly one dies, and the
    # other cannot finish the round (k = 2 needs the proposer's vote too) until it restarts.
    for node in federation.nodes:
        federation.start(node, crash_at="propose:sent")
    killed = federation.wait_first(federation.nodes)
    assert killed.runs[-1].returncode == -signal.SIGKILL, killed.log()
    federation.start(killed)
    for node in federation.nodes:
        assert federation.wait(node) == 0, node.log()
    check_round_completed(federation)
    with killed.state() as state:
        assert len(state.txs(1, "propose")) == 1
        assert_found_on_chain(killed, state.get(1, "propose"))
