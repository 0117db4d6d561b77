"""`decide`: what a seat holder sends, from its own computation and what the chain shows.

The rules an attacker would probe: a member never approves bytes other than its own, never
approves a model its acceptance test rejected, waits for the designated proposer before
proposing, and in the last third objects to a proposal it cannot approve, with the reason.
"""

from __future__ import annotations

from flare.node.review import Computed, Hold, Propose, Situation, Vote, deadlines, decide
from flare.protocol.cid import decode_cid
from flare.protocol.rounds import Phase, Proposal, RoundInfo
from flare.protocol.unixfs import file_cid

MINE = file_cid(b"the model this member computed").text
OTHER = file_cid(b"some other model").text
ROOT = b"\x01" * 32
INFO = RoundInfo(
    round=3, phase=Phase.REVIEW, seed=b"\x00" * 32, base_round=2, opened_at=0, claim_end=60,
    train_end=600, review_start=600, review_end=1200, committee_size=3, quorum=2,
    min_updates=2, max_samples=1000, eligible_nodes=4, update_count=4, seat_count=3,
    proposal_count=0, finalized_proposal=0, vrf_accumulator=b"\x00" * 32,
    review_policy=b"",
)  # fmt: skip
PROPOSE_FROM, OBJECT_FROM = deadlines(INFO)
COMPUTED = Computed(MINE, ROOT, included=("0xa", "0xb"), accepted=True)


def proposal(i: int, cid: str, root: bytes = ROOT) -> Proposal:
    return Proposal(3, i, f"0x{i:040x}", decode_cid(cid), root, approvals=0, rejections=0)


def situation(now: int, *proposals: Proposal, **flags: bool) -> Situation:
    return Situation(
        now=now,
        info=INFO,
        proposals=proposals,
        designated=flags.get("designated", False),
        proposed=flags.get("proposed", False),
        voted=flags.get("voted", False),
    )


def test_deadlines_split_review_in_thirds() -> None:
    assert (PROPOSE_FROM, OBJECT_FROM) == (800, 1000)


def test_the_designated_proposer_proposes_at_once_and_the_rest_wait_a_third() -> None:
    assert decide(COMPUTED, situation(600, designated=True)) == Propose(MINE, ROOT)
    assert decide(COMPUTED, situation(600)) == Hold(800, "waiting for the designated proposer")
    assert decide(COMPUTED, situation(800)) == Propose(MINE, ROOT)


def test_a_member_approves_only_its_own_bytes() -> None:
    same = proposal(1, MINE)
    assert decide(COMPUTED, situation(600, same)) == Vote(
        1, True, "the same bytes as its own computation"
    )
    other_root = proposal(1, MINE, root=b"\x02" * 32)  # same model, other updates named
    assert not isinstance(decide(COMPUTED, situation(600, other_root, proposed=True)), Vote)
    assert decide(COMPUTED, situation(600, proposal(1, OTHER), proposal(2, MINE))) == Vote(
        2, True, "the same bytes as its own computation"
    )


def test_a_differing_proposal_makes_a_member_propose_its_own_not_approve() -> None:
    assert decide(COMPUTED, situation(600, proposal(1, OTHER))) == Propose(MINE, ROOT)


def test_in_the_last_third_a_member_votes_against_what_it_cannot_approve() -> None:
    lie = proposal(1, OTHER)
    assert decide(COMPUTED, situation(999, lie, proposed=True)) == Hold(
        1000, "waiting for a proposal it can approve"
    )
    assert decide(COMPUTED, situation(1000, lie, proposed=True)) == Vote(
        1, False, "it differs from its own computation"
    )
    nothing = Computed(None, reason="1 update(s) passed the checks; rule fedavg needs 2")
    vote = decide(nothing, situation(1000, lie))
    assert isinstance(vote, Vote)
    assert not vote.approve
    assert "no model" in vote.reason
    assert "needs 2" in vote.reason


def test_a_model_the_acceptance_test_rejects_is_never_proposed_or_approved() -> None:
    rejected = Computed(MINE, ROOT, accepted=False, reason="held-out loss too high")
    assert isinstance(decide(rejected, situation(600, designated=True)), Hold)
    assert isinstance(decide(rejected, situation(900)), Hold)
    assert decide(rejected, situation(1000, proposal(1, MINE))) == Vote(
        1, False, "the held-out acceptance test failed"
    )


def test_one_vote_per_round() -> None:
    assert decide(COMPUTED, situation(600, proposal(1, MINE), voted=True)) == Hold(
        1200, "voted; waiting for the quorum"
    )


def test_the_review_record_survives_a_restart() -> None:
    computed = Computed(MINE, ROOT, ("0xa",), (("0xb", "too large"),), 1.5, 1.25, True, "")
    assert Computed.from_outcome(computed.outcome()) == computed
