"""A restarted node re-checks the chain: what it sent before the crash counts once, never twice.

Each test runs a loop to a point and kills it there (a ledger that dies right after or before
sending), or removes the record of the step it just did from the state database (as a crash
between the transaction and the record would leave it), then starts a fresh loop on the same
node home. Proving this under SIGKILL is the multi-process suite's.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from loop_harness import Federation, Proxy
from web3.exceptions import TransactionNotFound

from flare.chain.devchain import advance_time
from flare.chain.ledger import Web3Ledger
from flare.node.round import Acted, NodeLoop
from flare.node.state import STATE_FILE
from flare.protocol.events import SeatClaimed, UpdateSubmitted, VoteCast
from flare.protocol.rounds import Phase


def forget(home: Path, r: int, step: str) -> None:
    """Remove a step's record from outside the loop, as a crash before the record would."""
    with sqlite3.connect(home / "state" / STATE_FILE) as db:
        db.execute("DELETE FROM steps WHERE round = ? AND step = ?", (r, step))


def rewrite(home: Path, r: int, step: str, **changes: object) -> None:
    with sqlite3.connect(home / "state" / STATE_FILE) as db:
        (outcome,) = db.execute(
            "SELECT outcome FROM steps WHERE round = ? AND step = ?", (r, step)
        ).fetchone()
        db.execute(
            "UPDATE steps SET outcome = ? WHERE round = ? AND step = ?",
            (json.dumps(json.loads(outcome) | changes), r, step),
        )


def mine(federation: Federation, kind: type, node: str) -> list[object]:
    return [
        e
        for e in federation.owner.events(federation.block)
        if isinstance(e, kind) and getattr(e, "node", None) == node
    ]


def restarted(federation: Federation, index: int, home: Path) -> NodeLoop:
    loop = federation.loop(federation.members[index], home)
    assert loop.state.path.exists()
    return loop


class Crash(BaseException):
    """The process dying at a given point (not an Exception: nothing may catch it)."""


class DiesAfterSending(Proxy):
    """Sends the update, then the process dies before the loop can record it."""

    def submit_update(self, *args: Any) -> Any:
        self._inner.submit_update(*args)
        raise Crash


class DiesBeforeSending(Proxy):
    def submit_update(self, *args: Any) -> Any:
        raise Crash


def crash_in_submit(federation: Federation, home: Path, proxy: type[Proxy]) -> NodeLoop:
    """Member 0 trains, then dies sending its round-1 update; returns the dead loop."""
    loop = federation.loop(federation.members[0], home)
    loop.ledger = proxy(loop.ledger)
    with pytest.raises(Crash):
        federation.cohort([loop]).run_until(lambda: False)
    assert loop.state.done(1, "train")
    assert not loop.state.done(1, "submit")
    assert loop.trainer.committed_round() is None  # its next state is still pending
    return loop


def past_training(federation: Federation) -> None:
    """Move the chain's clock past round 1's training window (one update: the round fails)."""
    info = federation.owner.get_round(1)
    advance_time(federation.w3, info.review_start - federation.owner.timestamp() + 1)
    assert federation.owner.phase(1) is not Phase.TRAINING


def test_an_update_sent_before_the_crash_is_recognised_not_sent_again(
    federation: Federation, tmp_path: Path
) -> None:
    member, home = federation.members[0], tmp_path / "node"
    crash_in_submit(federation, home, DiesAfterSending)

    loop = restarted(federation, 0, home)
    result = loop.step()

    assert isinstance(result, Acted)
    assert result.what == "submit"
    assert result.details == {"round": 1, "recovered": True, "conflict": False}
    assert len(mine(federation, UpdateSubmitted, member.address)) == 1
    assert loop.trainer.committed_round() == 1  # its state is the next round's start


def test_an_update_sent_before_a_crash_that_outlasts_training_is_still_settled(
    federation: Federation, tmp_path: Path
) -> None:
    home = tmp_path / "node"
    crash_in_submit(federation, home, DiesAfterSending)
    past_training(federation)  # the node stays down until training has closed

    loop = restarted(federation, 0, home)
    result = loop.step()

    assert isinstance(result, Acted)
    assert result.details == {"round": 1, "recovered": True, "conflict": False}
    assert loop.trainer.committed_round() == 1


def test_an_update_never_sent_is_recorded_as_missed_and_its_state_not_carried(
    federation: Federation, tmp_path: Path
) -> None:
    home = tmp_path / "node"
    crash_in_submit(federation, home, DiesBeforeSending)
    past_training(federation)

    loop = restarted(federation, 0, home)
    result = loop.step()

    assert isinstance(result, Acted)
    assert "missed" in result.details
    assert loop.trainer.committed_round() is None
    assert not mine(federation, UpdateSubmitted, federation.members[0].address)


def test_a_different_update_on_chain_is_reported_as_a_conflict(
    federation: Federation, tmp_path: Path
) -> None:
    member, home = federation.members[0], tmp_path / "node"
    first = federation.loop(member, home)
    federation.cohort([first]).run_until(lambda: first.state.done(1, "submit"))
    forget(home, 1, "submit")
    rewrite(home, 1, "train", cid=federation.genesis)  # as if it had trained another update
    log: list[str] = []

    loop = federation.loop(member, home, log=log)
    result = loop.step()

    assert isinstance(result, Acted)
    assert result.details["conflict"] is True
    assert any("another update" in line for line in log)
    assert len(mine(federation, UpdateSubmitted, member.address)) == 1


def test_a_seat_claimed_before_the_crash_is_not_claimed_again(
    federation: Federation, tmp_path: Path
) -> None:
    homes = [tmp_path / f"node-{m.index}" for m in federation.members]
    loops = [federation.loop(m, h) for m, h in zip(federation.members, homes, strict=True)]
    federation.cohort(loops).run_until(lambda: all(loop.state.done(1, "claim") for loop in loops))
    index = next(i for i, loop in enumerate(loops) if loop.state.get(1, "claim")["claimed"])
    forget(homes[index], 1, "claim")

    result = restarted(federation, index, homes[index]).step()

    assert isinstance(result, Acted)
    assert result.details == {"round": 1, "recovered": True}
    assert len(mine(federation, SeatClaimed, loops[index].address)) == 1


def test_a_vote_cast_before_the_crash_is_recognised_and_not_cast_again(
    federation: Federation, tmp_path: Path
) -> None:
    homes = [tmp_path / f"node-{m.index}" for m in federation.members]
    loops = [federation.loop(m, h) for m, h in zip(federation.members, homes, strict=True)]

    def votes() -> list[VoteCast]:
        return [e for e in federation.owner.events(federation.block) if isinstance(e, VoteCast)]

    federation.cohort(loops).run_until(lambda: bool(votes()))  # the first vote: no quorum yet
    [vote] = votes()
    index = next(i for i, loop in enumerate(loops) if loop.address == vote.node)
    forget(homes[index], 1, "vote")

    loop = restarted(federation, index, homes[index])
    result = loop.step()

    assert not (isinstance(result, Acted) and result.what == "vote"), result
    assert loop.state.get(1, "vote") == {"recovered": True}
    assert len(mine(federation, VoteCast, vote.node)) == 1


def test_a_transaction_is_journaled_before_it_is_broadcast(
    federation: Federation, tmp_path: Path
) -> None:
    """The journal hook sees each hash while the chain does not know it yet."""
    seen: list[tuple[str, bool]] = []
    member = federation.members[0]
    loop = federation.loop(member, tmp_path / "node")

    def checking(tx_hash: bytes, nonce: int) -> None:
        try:
            federation.w3.eth.get_transaction(tx_hash)
            seen.append((tx_hash.hex(), True))
        except TransactionNotFound:
            seen.append((tx_hash.hex(), False))
        loop.state.journal(tx_hash, nonce)

    loop.ledger = Web3Ledger(
        federation.w3, federation.address, private_key=member.key, journal=checking
    )
    federation.cohort([loop]).run_until(lambda: loop.state.done(1, "submit"))

    assert seen
    assert not any(known for _, known in seen)
    assert loop.state.txs(1, "submit") == ["0x" + seen[-1][0]]
