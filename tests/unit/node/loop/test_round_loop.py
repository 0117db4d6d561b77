"""The node loop through whole rounds: members on the in-process EVM with twin trainers."""

from __future__ import annotations

from pathlib import Path

from loop_harness import SPEC, Federation, acted

from flare.node.round import Acted, Wait
from flare.protocol.cid import encode_cid
from flare.protocol.events import RoundFinalized
from flare.protocol.model import read_model
from flare.protocol.rounds import Phase


def test_members_finalize_rounds_and_every_member_learns(
    federation: Federation, tmp_path: Path
) -> None:
    loops = [federation.loop(m, tmp_path / f"node-{m.index}") for m in federation.members]
    trace: list[tuple[int, Acted | Wait]] = []

    federation.cohort(loops, trace).run_until(federation.until_round(3))

    owner = federation.owner
    assert owner.phase(1) is Phase.FINALIZED
    assert owner.phase(2) is Phase.FINALIZED
    finalized = [e for e in owner.events(federation.block) if isinstance(e, RoundFinalized)]
    assert [e.round for e in finalized] == [1, 2]
    assert owner.base_model(3) == finalized[-1].cid
    # Each member submitted once per round, and adopted each round's base.
    for index in range(len(loops)):
        assert len(acted(trace, "submit", index)) == 2
        assert [a.details["model"] for a in acted(trace, "adopt", index)][1] == encode_cid(
            finalized[0].cid
        )
    # Every member's own loss is lower on the last model than on the genesis.
    genesis = read_model(federation.store.get(federation.genesis), SPEC)
    final = read_model(federation.store.get(encode_cid(finalized[-1].cid)), SPEC)
    for loop in loops:
        assert loop.trainer.evaluate(final) < 0.7 * loop.trainer.evaluate(genesis)
    # The designated proposer proposed once per round; the quorum voted for its bytes.
    assert len(acted(trace, "propose")) == 2
    votes = acted(trace, "vote")
    assert all(v.details["approve"] for v in votes)


def test_a_round_with_too_few_updates_fails_and_the_next_trains_on_the_old_base(
    federation: Federation, tmp_path: Path
) -> None:
    alone = [federation.loop(federation.members[0], tmp_path / "node")]  # min updates is 2
    trace: list[tuple[int, Acted | Wait]] = []

    federation.cohort(alone, trace).run_until(federation.until_round(2))
    federation.cohort(alone, trace).run_until(lambda: bool(acted(trace, "train")[1:]))

    owner = federation.owner
    assert owner.phase(1) is Phase.FAILED
    assert encode_cid(owner.base_model(2)) == federation.genesis
    assert len(acted(trace, "close")) == 1
    # Round 2 adopted the genesis again and trained from it.
    assert acted(trace, "adopt")[-1].details["model"] == federation.genesis
    state = alone[0].state
    assert state.get(2, "adopt") == {"model": federation.genesis, "round": 0}
