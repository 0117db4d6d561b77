"""The node loop's failure paths, each through whole rounds on the in-process EVM.

Every test is an attack or an accident a federation must survive: a seat holder that goes
offline, a member sending a corrupt, oversized, wrong-base or poisoned update, a proposer that
lies about the aggregate, a member whose own computation differs, and a chain that refuses for
a while. Members' BLS keys are fixed, so each test sees the same committee on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from loop_harness import Federation, Proxy, acted, member_secret

from flare.node.review import deadlines
from flare.node.round import Acted, NodeLoop, Wait, run
from flare.protocol.cid import decode_cid
from flare.protocol.errors import UnavailableError
from flare.protocol.events import AggregateProposed, RoundFinalized, UpdateSubmitted, VoteCast
from flare.protocol.rounds import Phase
from flare.protocol.store import BlockNotFoundError, StoreUnavailableError

Trace = list[tuple[int, Acted | Wait]]


def designated(federation: Federation, r: int) -> str:
    """The holder of the lowest seat: the member that proposes first."""
    seats = federation.owner.seats(r)
    assert len(seats) == 3, "the fixed keys give round 1 a full committee"
    return min(seats, key=lambda seat: seat.word).holder


def events(federation: Federation, kind: type, r: int = 1) -> list[Any]:
    return [
        e for e in federation.owner.events(federation.block) if isinstance(e, kind) and e.round == r
    ]


def to_review(federation: Federation, loops: list[NodeLoop]) -> None:
    federation.cohort(loops).run_until(federation.until_phase(1, Phase.REVIEW))


def test_the_rest_reach_quorum_when_the_designated_proposer_is_offline(
    federation: Federation, tmp_path: Path
) -> None:
    loops = [federation.loop(m, tmp_path / f"node-{m.index}") for m in federation.members]
    to_review(federation, loops)
    offline = designated(federation, 1)
    online = [loop for loop in loops if loop.address != offline]

    federation.cohort(online).run_until(federation.until_round(2))

    assert federation.owner.phase(1) is Phase.FINALIZED
    proposals = events(federation, AggregateProposed)
    assert proposals
    assert offline not in {p.proposer for p in proposals}
    # The others waited a third of the review window for the designated proposer first.
    info = federation.owner.get_round(1)
    proposed_at = federation.w3.eth.get_block(proposals[0].block)["timestamp"]
    assert proposed_at >= deadlines(info)[0]
    assert offline not in {v.node for v in events(federation, VoteCast)}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("corrupt", "truncated"),
        ("oversized", "more than the"),
        ("wrong-base", "not this round's base"),
        ("huge", "norm"),
    ],
)
def test_a_bad_update_is_left_out_with_its_reason_and_the_round_finalizes(
    federation: Federation, tmp_path: Path, fault: str, reason: str
) -> None:
    bad = federation.members[-1]
    loops = [
        federation.loop(m, tmp_path / f"node-{m.index}", faults={fault} if m is bad else ())
        for m in federation.members
    ]

    federation.cohort(loops).run_until(federation.until_round(2))

    assert federation.owner.phase(1) is Phase.FINALIZED
    reviews = [loop.state.get(1, "review") for loop in loops if loop.state.done(1, "review")]
    assert len(reviews) >= 2
    for review in reviews:  # every seat holder left the same update out, for the same cause
        assert set(review["included"]) == {m.address for m in federation.members if m is not bad}
        assert [node for node, _ in review["rejected"]] == [bad.address]
        assert reason in review["rejected"][0][1].lower()
    finalized = events(federation, RoundFinalized)[0]
    assert decode_cid(reviews[0]["model"]) == finalized.cid


def test_a_lying_proposer_gets_no_honest_vote_and_the_honest_bytes_finalize(
    federation: Federation, tmp_path: Path
) -> None:
    """The designated proposer proposes the base model again and votes for it."""

    class Liar(Proxy):
        def propose_aggregate(self, r: int, cid: bytes, root: bytes) -> Any:
            return self._inner.propose_aggregate(r, decode_cid(federation.genesis), root)

    loops = [federation.loop(m, tmp_path / f"node-{m.index}") for m in federation.members]
    to_review(federation, loops)
    liar = next(loop for loop in loops if loop.address == designated(federation, 1))
    liar.ledger = Liar(liar.ledger)

    federation.cohort(loops).run_until(federation.until_round(2))

    lie = next(p for p in events(federation, AggregateProposed) if p.proposer == liar.address)
    honest_votes = [v for v in events(federation, VoteCast) if v.node != liar.address]
    assert honest_votes
    assert all(v.proposal_id != lie.proposal_id for v in honest_votes)
    finalized = events(federation, RoundFinalized)[0]
    assert finalized.proposal_id != lie.proposal_id
    assert finalized.cid != decode_cid(federation.genesis)


def test_a_member_whose_computation_differs_votes_against_the_proposal(
    federation: Federation, tmp_path: Path
) -> None:
    """One seat holder cannot fetch any update, another is offline: the proposal fails."""

    class Blind(Proxy):
        def get(self, cid: str, **kwargs: Any) -> bytes:
            if cid != federation.genesis and decode_cid(cid) in updates:
                raise BlockNotFoundError(cid, "the network")
            return self._inner.get(cid, **kwargs)

    loops = [federation.loop(m, tmp_path / f"node-{m.index}") for m in federation.members]
    to_review(federation, loops)
    updates = {e.cid for e in events(federation, UpdateSubmitted)}
    holders = [s.holder for s in federation.owner.seats(1)]
    proposer = designated(federation, 1)
    blind_address, offline = [h for h in holders if h != proposer]
    blind = next(loop for loop in loops if loop.address == blind_address)
    blind.store = Blind(blind.store)
    trace: Trace = []

    federation.cohort([loop for loop in loops if loop.address != offline], trace).run_until(
        federation.until_round(2)
    )

    assert federation.owner.phase(1) is Phase.FAILED
    [against] = [v for v in events(federation, VoteCast) if v.node == blind_address]
    assert not against.approve
    [vote] = [a for a in acted(trace, "vote") if a.details["approve"] is False]
    assert "no model" in vote.details["reason"]
    assert "is not in the store" in str(blind.state.get(1, "review"))


def test_the_loop_retries_a_refusing_chain_with_backoff_and_resumes(
    federation: Federation, tmp_path: Path
) -> None:
    """The RPC endpoint refuses twice; the third send gets through but its receipt times out."""

    class Flaky(Proxy):
        calls = 0

        def submit_update(self, *args: Any) -> Any:
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise UnavailableError("connection refused by the RPC endpoint")
            self._inner.submit_update(*args)
            raise UnavailableError("the transaction was sent but not mined in time")

    class Clock:
        def __init__(self) -> None:
            self.slept: list[float] = []

        def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)

    member = federation.members[0]
    loop = federation.loop(member, tmp_path / "node")
    loop.ledger = Flaky(loop.ledger)
    clock = Clock()

    run(loop, clock, should_stop=lambda: loop.state.done(1, "submit"), poll_seconds=5)

    assert clock.slept == [1, 2, 4]
    # The update that did get through is recognised on-chain, not sent a second time.
    assert loop.state.get(1, "submit") == {"recovered": True, "conflict": False}
    mine = [e for e in events(federation, UpdateSubmitted) if e.node == member.address]
    assert [e.cid for e in mine] == [decode_cid(loop.state.get(1, "train")["cid"])]
    assert len(loop.state.txs(1, "submit")) == 1
    assert loop.trainer.committed_round() == 1


def test_a_refused_seat_claim_does_not_stop_the_node_from_training(
    federation: Federation, tmp_path: Path
) -> None:
    """A BLS key other than the registered one: the contract refuses the claim, once."""
    member = federation.members[0]
    log: list[str] = []
    loop = federation.loop(member, tmp_path / "node", bls_secret=member_secret(99), log=log)

    federation.cohort([loop]).run_until(lambda: loop.state.done(1, "submit"))

    claim = loop.state.get(1, "claim")
    assert claim["claimed"] is False
    assert claim["reason"].startswith("refused: ")
    assert "WrongBlsKey" in claim["reason"]
    assert any("refused the claim" in line for line in log)
    assert "gas" in loop.state.get(1, "submit")
    assert not federation.owner.is_seat_holder(1, member.address)


def test_a_store_outage_in_review_is_retried_not_taken_for_bad_updates(
    federation: Federation, tmp_path: Path
) -> None:
    """While the store is down the member records no review; once back, it includes all."""

    class Down(Proxy):
        def get(self, cid: str, **kwargs: Any) -> bytes:
            if decode_cid(cid) in updates:
                raise StoreUnavailableError("127.0.0.1:5001", 3, "connection refused")
            return self._inner.get(cid, **kwargs)

    loops = [federation.loop(m, tmp_path / f"node-{m.index}") for m in federation.members]
    to_review(federation, loops)
    updates = {e.cid for e in events(federation, UpdateSubmitted)}
    holder = next(loop for loop in loops if loop.address == designated(federation, 1))
    store = holder.store
    holder.store = Down(store)

    with pytest.raises(UnavailableError):
        holder.step()
    assert not holder.state.done(1, "review")

    holder.store = store
    result = holder.step()
    assert isinstance(result, Acted)
    assert result.what == "review"
    assert sorted(result.details["included"]) == sorted(m.address for m in federation.members)
