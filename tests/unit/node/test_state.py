"""The node's state database: durable step records, journaled transactions, clear refusals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flare.node.state import STATE_FILE, NodeState, StateStoreError


def test_records_last_across_reopening_and_keep_their_order(tmp_path: Path) -> None:
    with NodeState(tmp_path) as state:
        state.put(1, "adopt", {"model": "bafy-one"})
        state.put(1, "train", {"cid": "bafy-update", "metrics": {"loss": 0.5}})
        state.put(2, "adopt", {"model": "bafy-two"})
        state.put(1, "adopt", {"model": "bafy-one", "again": True})  # replaced, not added

    with NodeState(tmp_path) as state:
        assert state.get(1, "train") == {"cid": "bafy-update", "metrics": {"loss": 0.5}}
        assert state.done(2, "adopt")
        assert not state.done(2, "train")
        assert state.get(3, "adopt") is None
        assert [step for _, step, _ in state.outcomes(1)] == ["train", "adopt"]
        assert [r for r, _, _ in state.outcomes()] == [1, 2, 1]


def test_the_database_runs_in_wal_mode_in_a_private_directory(tmp_path: Path) -> None:
    NodeState(tmp_path / "state").close()
    with sqlite3.connect(tmp_path / "state" / STATE_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0


def test_transactions_are_journaled_under_the_step_that_signs_them(tmp_path: Path) -> None:
    with NodeState(tmp_path) as state:
        with state.step(4, "vote"):
            state.journal(b"\xaa" * 32, 7)
            state.journal(b"\xaa" * 32, 7)  # a retried send of the same bytes: one record
        state.journal(b"\xbb" * 32, 8)  # outside any step
        assert state.txs(4, "vote") == ["0x" + "aa" * 32]
        assert state.txs(0, "unattributed") == ["0x" + "bb" * 32]


def test_a_damaged_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"this is not a database, it was overwritten" * 100)
    with pytest.raises(StateStoreError) as raised:
        NodeState(tmp_path)
    assert "move it away" in str(raised.value.hint)


def test_a_newer_schema_is_refused_not_rewritten(tmp_path: Path) -> None:
    NodeState(tmp_path).close()
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(StateStoreError, match="schema version 9"):
        NodeState(tmp_path)
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 9


def test_signed_transactions_are_found_by_nonce(tmp_path: Path) -> None:
    """The sender's look-up for a stuck transaction to outbid: every hash signed at a nonce."""
    with NodeState(tmp_path) as state:
        with state.step(2, "submit"):
            state.record(b"\x01" * 32, 7)
        with state.step(2, "claim"):
            state.record(b"\x02" * 32, 8)
            state.record(b"\x03" * 32, 7)  # a replacement at the same nonce
        state.journal(b"\x04" * 32, 9)  # the older name of the hook still records

    with NodeState(tmp_path) as state:
        assert state.signed_at(7) == [b"\x01" * 32, b"\x03" * 32]
        assert state.signed_at(9) == [b"\x04" * 32]
        assert state.signed_at(10) == []
        assert state.txs(2, "claim") == ["0x" + "02" * 32, "0x" + "03" * 32]


def test_a_version_1_database_gains_the_nonce_index_without_a_schema_bump(
    tmp_path: Path,
) -> None:
    NodeState(tmp_path).close()
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        db.execute("DROP INDEX txs_by_nonce")  # as written before the index existed

    with NodeState(tmp_path) as state:
        state.record(b"\x05" * 32, 3)
        assert state.signed_at(3) == [b"\x05" * 32]

    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        plan = db.execute("EXPLAIN QUERY PLAN SELECT tx_hash FROM txs WHERE nonce = 3").fetchall()
        assert "txs_by_nonce" in str(plan)


def test_a_run_that_did_not_end_tells_the_next_the_round_it_was_in(tmp_path: Path) -> None:
    with NodeState(tmp_path) as state:
        assert state.begin_run() is None  # the first run ever
        state.put(3, "train", {"cid": "x"})
        state.put(4, "adopt", {"model": "y"})
    # Killed: no end_run. The next run learns the last round with a record.
    with NodeState(tmp_path) as state:
        assert state.begin_run() == 4
        state.end_run()
    with NodeState(tmp_path) as state:
        assert state.begin_run() is None  # the last run stopped cleanly
