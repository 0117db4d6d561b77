"""The loop's event log reads the chain only when its tip moved, and re-reads a reorged tip."""

from __future__ import annotations

from typing import Any

from flare.node.round import REORG_WINDOW, REREAD_SECONDS, EventLog


class Chain:
    """A tip and the (from, to) ranges the log asked events for."""

    def __init__(self) -> None:
        self.tip = (100, b"\x01" * 32)
        self.queries: list[tuple[int, int | None]] = []

    def head(self) -> tuple[int, bytes]:
        return self.tip

    def events(self, from_block: int, to_block: int | None = None) -> list[Any]:
        self.queries.append((from_block, to_block))
        return []


def test_an_unchanged_tip_costs_no_event_query() -> None:
    chain = Chain()
    log = EventLog(chain, from_block=10)  # type: ignore[arg-type]
    log.refresh()
    log.refresh()
    log.updates(1)
    assert chain.queries == [(10, 100)]


def test_an_unchanged_tip_is_read_again_after_a_while() -> None:
    """An endpoint whose log index lagged gets another chance, even if no block comes."""
    chain, now = Chain(), [0.0]
    log = EventLog(chain, from_block=10, clock=lambda: now[0])  # type: ignore[arg-type]
    log.refresh()
    now[0] += REREAD_SECONDS - 1
    log.refresh()
    assert len(chain.queries) == 1
    now[0] += 1
    log.refresh()
    assert len(chain.queries) == 2


def test_a_new_block_rereads_the_reorg_window() -> None:
    chain = Chain()
    log = EventLog(chain, from_block=0)  # type: ignore[arg-type]
    log.refresh()
    chain.tip = (101, b"\x02" * 32)
    log.refresh()
    assert chain.queries[-1] == (100 + 1 - REORG_WINDOW, 101)  # the old window and the new block


def test_a_reorg_to_the_same_height_is_read_again() -> None:
    chain = Chain()
    log = EventLog(chain, from_block=0)  # type: ignore[arg-type]
    log.refresh()
    chain.tip = (100, b"\x03" * 32)  # another block 100: its events may differ
    log.refresh()
    assert len(chain.queries) == 2
    assert chain.queries[-1] == (100 + 1 - REORG_WINDOW, 100)
