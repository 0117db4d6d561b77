"""The node's local state: each step's outcome by (round, step), and every transaction's hash.

The node loop derives what to do from the chain plus this store, never from counters in
memory, so a restarted node picks up where it stopped. Two kinds of records:

- `steps`: the outcome of a step of a round, as JSON (the update CID it trained and pinned,
  the gas a transaction used, the model it computed in review, ...). A step is done once its
  outcome is stored.
- `txs`: the hash and nonce of every transaction a step signs, written before the transaction
  is broadcast (`Web3Ledger(journal=state)`: this class is the chain layer's transaction
  journal, by shape, as node and chain never import each other): after a crash the operator
  (and `flare-node status`) can see what was signed and look it up, and the next transaction
  finds by nonce the one still pending and replaces it. The loop itself decides from the chain
  whether a step's effect landed.

SQLite in WAL mode with synchronous=FULL: each record is durable when the call returns, a crash
leaves every record whole or absent, and readers (`flare-node status`) never block the loop.
SQLite's own locks are POSIX record locks, which the kernel drops when their process dies: a
killed node never leaves the database locked, and the next open rolls the WAL forward.

One process at a time runs a node: `begin_run` takes an flock on `run.lock` beside the database
and holds it until `end_run` or `close` (or the process's death, however it dies), so a second
`flare-node run` on the same home is refused, naming the first one's pid, instead of signing
with the same key and nonces; and a run without an end is known to be a dead one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flare.protocol.errors import ConfigError

STATE_FILE = "node.db"
RUN_LOCK = "run.lock"
SCHEMA_VERSION = 1


class StateStoreError(ConfigError):
    """The state database cannot be opened or is not one this node wrote."""


class NodeState:
    """The state database at `directory/node.db` (created on first use, mode 0700 directory)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
        self._run_lock: int | None = None  # the descriptor holding run.lock's flock
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            # Added tables need no schema bump: older databases gain them on open.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS errors (at REAL NOT NULL, message TEXT NOT NULL, "
                "hint TEXT)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS runs (started REAL NOT NULL, ended REAL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS gossip (id INTEGER PRIMARY KEY CHECK (id = 1), "
                "at REAL NOT NULL, view TEXT NOT NULL)"
            )
        except sqlite3.DatabaseError as error:
            raise StateStoreError(
                f"cannot use the node state {self.path}: {error}",
                hint="if the file is damaged, move it away: the node rebuilds what it can from "
                "the chain, but forgets the transactions it signed",
            ) from error
        self._lock = threading.Lock()
        self._current: tuple[int, str] | None = None
        self._run: int | None = None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS steps (
                    round INTEGER NOT NULL, step TEXT NOT NULL, outcome TEXT NOT NULL,
                    at REAL NOT NULL, PRIMARY KEY (round, step));
                CREATE TABLE IF NOT EXISTS txs (
                    tx_hash TEXT PRIMARY KEY, round INTEGER NOT NULL, step TEXT NOT NULL,
                    nonce INTEGER NOT NULL, at REAL NOT NULL);
                PRAGMA user_version = 1;
                """
            )
        elif version != SCHEMA_VERSION:
            raise StateStoreError(
                f"node state {self.path} has schema version {version}, this node reads "
                f"{SCHEMA_VERSION}",
                hint="run the flare-node version that wrote it, or move the file away",
            )
        # An index only speeds up a query, so version 1 databases gain it without a bump.
        self._db.execute("CREATE INDEX IF NOT EXISTS txs_by_nonce ON txs (nonce)")

    def close(self) -> None:
        self._release_run()
        self._db.close()

    def __del__(self) -> None:
        # A process that drops its state without closing it must not keep a later run out.
        self._release_run()
        if hasattr(self, "_db"):
            self._db.close()

    def __enter__(self) -> NodeState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- steps

    def get(self, round: int, step: str) -> dict[str, Any] | None:
        """The stored outcome of `step` in `round`, or None while it is not done."""
        with self._lock:
            row = self._db.execute(
                "SELECT outcome FROM steps WHERE round = ? AND step = ?", (round, step)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def done(self, round: int, step: str) -> bool:
        return self.get(round, step) is not None

    def put(self, round: int, step: str, outcome: dict[str, Any]) -> None:
        """Record (or replace) the outcome of `step` in `round`; durable on return."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO steps (round, step, outcome, at) VALUES (?, ?, ?, ?)",
                (round, step, json.dumps(outcome, sort_keys=True), time.time()),
            )

    def forget(self, round: int, step: str) -> None:
        """Drop a step's record so the loop does it again (its effect left the chain)."""
        with self._lock:
            self._db.execute("DELETE FROM steps WHERE round = ? AND step = ?", (round, step))

    def latest(self, step: str) -> int | None:
        """The last round in which `step` is recorded (None if never)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(round) FROM steps WHERE step = ?", (step,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def latest_round(self) -> int | None:
        """The last round with any step recorded (None for a node that never acted)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(round) FROM steps").fetchone()
        return None if row[0] is None else int(row[0])

    def outcomes(self, round: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        """(round, step, outcome) in the order they were recorded, for one round or all."""
        query = "SELECT round, step, outcome FROM steps"
        args: tuple[int, ...] = ()
        if round is not None:
            query += " WHERE round = ?"
            args = (round,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY at, rowid", args).fetchall()
        return [(int(r), str(s), dict(json.loads(o))) for r, s, o in rows]

    # ---------------------------------------------------------------- transactions

    @property
    def current(self) -> tuple[int, str] | None:
        """The (round, step) whose transactions are being signed now, if any."""
        return self._current

    @contextlib.contextmanager
    def step(self, round: int, step: str) -> Iterator[None]:
        """Transactions signed inside are journaled under (round, step)."""
        previous = self._current
        self._current = (round, step)
        try:
            yield
        finally:
            self._current = previous

    def record(self, tx_hash: bytes, nonce: int) -> None:
        """The ledger's hook: record a signed transaction before it is broadcast."""
        round, step = self._current if self._current is not None else (0, "unattributed")
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO txs (tx_hash, round, step, nonce, at) "
                "VALUES (?, ?, ?, ?, ?)",
                ("0x" + tx_hash.hex(), round, step, nonce, time.time()),
            )

    journal = record  # the name of the hook before the journal became an object

    def signed_at(self, nonce: int) -> list[bytes]:
        """Hashes of the transactions signed at `nonce`, oldest first (replacements after).

        The sender looks these up to outbid one still pending instead of letting it mine late.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT tx_hash FROM txs WHERE nonce = ? ORDER BY at, rowid", (nonce,)
            ).fetchall()
        return [bytes.fromhex(str(row[0]).removeprefix("0x")) for row in rows]

    def txs(self, round: int, step: str) -> list[str]:
        """Hashes of the transactions signed for (round, step), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tx_hash FROM txs WHERE round = ? AND step = ? ORDER BY at, rowid",
                (round, step),
            ).fetchall()
        return [str(row[0]) for row in rows]

    # ---------------------------------------------------------------- runs

    def begin_run(self) -> int | None:
        """Mark a process as running; returns the round the last one was in if it was killed.

        `flare-node run --rounds N` counts that round as its first, so a node restarted after
        a crash finishes the round it was in rather than starting a new one. Refuses
        (StateStoreError) while another process runs this node: its run has not ended, and it
        is alive, not killed.
        """
        self._hold_run()
        with self._lock:
            last = self._db.execute(
                "SELECT rowid, ended FROM runs ORDER BY rowid DESC LIMIT 1"
            ).fetchone()
            self._db.execute("INSERT INTO runs (started) VALUES (?)", (time.time(),))
            self._run = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0])
        return None if last is None or last[1] is not None else self.latest_round()

    def end_run(self) -> None:
        """The process stopped at a safe point (the next one starts afresh)."""
        if self._run is not None:
            with self._lock:
                self._db.execute(
                    "UPDATE runs SET ended = ? WHERE rowid = ?", (time.time(), self._run)
                )
        self._release_run()

    def _hold_run(self) -> None:
        """Take run.lock's flock for this process, and write its pid there for the message a
        second process gets. The kernel, not a timeout, decides that a holder is gone."""
        if self._run_lock is not None:
            return
        where = self.path.parent
        try:
            descriptor = os.open(where / RUN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StateStoreError(
                f"cannot open {where / RUN_LOCK}: {error.strerror or error}",
                hint="check that the node's state directory is writable",
            ) from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
            os.close(descriptor)
            pid = holder if holder.isdigit() else None  # None: it has not written it yet
            raise StateStoreError(
                f"another flare-node process (pid {pid or 'unknown'}) is running this node "
                f"(its state is in {where})",
                hint=f"stop it first ({f'kill {pid}' if pid else 'Ctrl-C or SIGTERM'}), or give "
                "this node its own home",
            ) from None
        self._run_lock = descriptor
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            self._release_run()
            raise StateStoreError(
                f"cannot write {where / RUN_LOCK}: {error.strerror or error}",
                hint="check that the disk holding the node's home is writable and not full",
            ) from error

    def _release_run(self) -> None:
        descriptor, self._run_lock = getattr(self, "_run_lock", None), None
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, 0)  # no pid is left to name once nobody runs
            os.close(descriptor)  # drops the flock (a killed process's goes with its death)

    # ---------------------------------------------------------------- errors

    def note_error(self, message: str, hint: str | None = None) -> None:
        """Record a failed step for `flare-node status` (the last few hundred are kept)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO errors (at, message, hint) VALUES (?, ?, ?)",
                (time.time(), message, hint),
            )
            self._db.execute(
                "DELETE FROM errors WHERE rowid NOT IN "
                "(SELECT rowid FROM errors ORDER BY rowid DESC LIMIT 500)"
            )

    def errors(self, limit: int) -> list[tuple[float, str, str | None]]:
        """The last `limit` errors, newest first: (unix time, message, hint)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, message, hint FROM errors ORDER BY rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [(float(at), str(message), hint) for at, message, hint in rows]

    # ---------------------------------------------------------------- gossip

    def note_gossip(self, view: dict[str, Any]) -> None:
        """Keep what the running node's gossip layer sees, for `flare-node status`."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO gossip (id, at, view) VALUES (1, ?, ?)",
                (time.time(), json.dumps(view, sort_keys=True)),
            )

    def gossip(self) -> tuple[float, dict[str, Any]] | None:
        """The last gossip view a running node noted, with when (unix time); None if never."""
        with self._lock:
            row = self._db.execute("SELECT at, view FROM gossip WHERE id = 1").fetchone()
        return None if row is None else (float(row[0]), dict(json.loads(row[1])))
