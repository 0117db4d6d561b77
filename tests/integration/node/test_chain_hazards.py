"""The chain under a node's feet: a reorg undoing a recorded transaction, two votes in one block.

A transaction the node recorded, undone by a reorg: the loop notices and does the step again.

The nodes' loops are built from their config files exactly as `flare-node run` builds them and
stepped one step at a time in this process, so a reorg lands between two known steps. anvil's
`anvil_reorg(depth, [])` replaces the last `depth` blocks with empty ones: with automine, each
transaction is a block of its own, so a depth of 1 removes exactly the node's last transaction.
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable, Iterator

import pytest
from node_harness import PASSWORD, Node, ProcessFederation

from flare.cli.nodesetup import load_keys, open_loop
from flare.cli.run import load
from flare.node.round import Acted, NodeLoop, Wait
from flare.node.state import NodeState
from flare.protocol.cid import decode_cid
from flare.protocol.events import RoundFinalized, UpdateSubmitted, VoteCast

pytestmark = pytest.mark.anvil

STEP_LIMIT = 40  # far more steps than a round takes: a bound on a loop that stalls
STEP_TIMEOUT = 60.0  # a bound on a step that hangs, never a synchronization


class Stepped:
    """One node's loop, with what it logged."""

    def __init__(self, node: Node) -> None:
        settings = load(node.config)
        self.node = node
        self.state = NodeState(settings.home / "state")
        self.lines: list[str] = []
        self.broadcast: dict[str, threading.Event] = collections.defaultdict(threading.Event)
        self.loop: NodeLoop = open_loop(
            settings,
            load_keys(settings, PASSWORD),
            self.state,
            log=self.lines.append,
            checkpoint=lambda point: self.broadcast[point].set(),
        )

    def until(self, done: Callable[[], bool]) -> list[Acted | Wait]:
        results: list[Acted | Wait] = []
        for _ in range(STEP_LIMIT):
            if done():
                return results
            results.append(self.loop.step())
        raise AssertionError(f"node {self.node.index} stalled: {results[-5:]}")

    def close(self) -> None:
        self.state.close()
        getattr(self.loop.store, "close", lambda: None)()


@pytest.fixture
def loops(federation: ProcessFederation) -> Iterator[list[Stepped]]:
    opened = [Stepped(node) for node in federation.nodes]
    try:
        yield opened
    finally:
        for stepped in opened:
            stepped.close()


def rpc(federation: ProcessFederation, method: str, *params: object) -> None:
    response = federation.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response


def reorg(federation: ProcessFederation, depth: int) -> None:
    rpc(federation, "anvil_reorg", depth, [])


def test_an_update_registration_a_reorg_removed_is_sent_again(
    federation: ProcessFederation, loops: list[Stepped]
) -> None:
    a = loops[0]
    a.until(lambda: a.state.done(1, "submit"))
    registered = a.loop.ledger.update_of(1, a.node.address)
    assert any(registered)
    reorg(federation, 1)
    assert not any(a.loop.ledger.update_of(1, a.node.address))  # the reorg took it

    result = a.loop.step()
    assert isinstance(result, Acted), result
    assert result.what == "submit"
    assert a.loop.ledger.update_of(1, a.node.address) == registered  # the same update
    assert len(a.state.txs(1, "submit")) == 2  # the dropped transaction and its replacement
    assert any("no longer on-chain" in line for line in a.lines), a.lines

    finish_round(federation, loops)
    (update,) = federation.of(federation.events(UpdateSubmitted), a.node)
    trained = a.state.get(1, "train")
    assert trained is not None
    assert update.cid == decode_cid(trained["cid"])  # the update it trained, registered once


def test_a_vote_a_reorg_removed_is_cast_again(
    federation: ProcessFederation, loops: list[Stepped]
) -> None:
    for stepped in loops:
        stepped.until(functools.partial(stepped.state.done, 1, "submit"))
    # The first node to reach a vote casts it while the other has not: the round stays open.
    voter = next(s for s in cycle_until_a_vote(loops))
    assert voter.loop.ledger.has_voted(1, voter.node.address)
    reorg(federation, 1)
    assert not voter.loop.ledger.has_voted(1, voter.node.address)

    result = voter.loop.step()
    assert isinstance(result, Acted), result
    assert result.what == "vote"
    assert voter.loop.ledger.has_voted(1, voter.node.address)
    assert len(voter.state.txs(1, "vote")) == 2
    assert any("the vote is no longer on-chain" in line for line in voter.lines), voter.lines

    finish_round(federation, loops)
    assert len(federation.of(federation.events(VoteCast), voter.node)) == 1


def cycle_until_a_vote(loops: list[Stepped]) -> Iterator[Stepped]:
    """Step the nodes in turn until one records a vote; yield that node."""
    for _ in range(STEP_LIMIT):
        for stepped in loops:
            stepped.loop.step()
            if stepped.state.done(1, "vote"):
                assert stepped.loop.ledger.current_round() == 1, "the first vote closed the round"
                yield stepped
                return
    raise AssertionError("no node voted")


def finish_round(federation: ProcessFederation, loops: list[Stepped]) -> None:
    """Step every node until round 1 is finalized."""
    for _ in range(STEP_LIMIT):
        if federation.events(RoundFinalized):
            return
        for stepped in loops:
            stepped.loop.step()
    raise AssertionError("round 1 did not finalize")


def test_two_votes_mined_in_one_block_both_count(
    federation: ProcessFederation, loops: list[Stepped]
) -> None:
    """Both votes are estimated before either is mined; the second to execute finalizes the
    round, a far costlier path than the vote it was estimated as. It must not run out of gas."""
    for stepped in loops:
        stepped.until(functools.partial(stepped.state.done, 1, "submit"))
    proposed = lambda: bool(federation.owner.get_round(1).proposal_count)  # noqa: E731
    for _ in range(STEP_LIMIT):  # to the proposal: then both holders owe a vote
        for stepped in loops:
            if not proposed():
                stepped.loop.step()
    assert proposed()
    assert not any(s.state.done(1, "vote") for s in loops)

    rpc(federation, "evm_setAutomine", False)
    results: dict[int, Acted | Wait | BaseException] = {}

    def vote(index: int) -> None:
        try:
            results[index] = loops[index].loop.step()
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(len(loops))]
    try:
        for thread in threads:
            thread.start()
        for stepped in loops:  # both votes are in the pool, neither mined
            assert stepped.broadcast["vote:broadcast"].wait(STEP_TIMEOUT), stepped.lines
        rpc(federation, "evm_mine")
    finally:
        rpc(federation, "evm_setAutomine", True)
        for thread in threads:
            thread.join(STEP_TIMEOUT)
    for index, result in results.items():
        assert isinstance(result, Acted), (index, result)
        assert result.what == "vote"
    assert len(federation.events(VoteCast)) == 2
    (finalized,) = federation.events(RoundFinalized)
    assert finalized.approvals == 2
    assert {len(s.state.txs(1, "vote")) for s in loops} == {1}  # neither sent twice
