"""The loop's event log reads the chain only when its tip moved: only the new blocks while the
chain extends the tip it read, the reorg window again when the history under it changed."""

from __future__ import annotations

from typing import Any

from flare.node.round import REORG_WINDOW, REREAD_SECONDS, EventLog


class Chain:
    """A canonical chain of block hashes, and the (from, to) ranges the log asked events for."""

    def __init__(self) -> None:
        self.hashes = {n: b"\x01" + n.to_bytes(31, "big") for n in range(101)}
        self.queries: list[tuple[int, int | None]] = []
        self.lookups: list[int] = []

    @property
    def tip(self) -> tuple[int, bytes]:
        last = max(self.hashes)
        return last, self.hashes[last]

    def grow(self, blocks: int, fork: int = 0) -> None:
        """`blocks` new blocks on top; with `fork`, the last `fork` blocks replaced first."""
        last = max(self.hashes)
        for n in range(last - fork + 1, last + blocks + 1):
            self.hashes[n] = b"\x02" + n.to_bytes(31, "big")

    def head(self) -> tuple[int, bytes]:
        return self.tip

    def block_hash(self, number: int) -> bytes | None:
        self.lookups.append(number)
        return self.hashes.get(number)

    def events(self, from_block: int, to_block: int | None = None) -> list[Any]:
        self.queries.append((from_block, to_block))
        return []


def event_log(chain: Chain, now: list[float] | None = None, from_block: int = 0) -> EventLog:
    clock = (lambda: now[0]) if now is not None else (lambda: 0.0)
    return EventLog(chain, from_block=from_block, clock=clock)  # type: ignore[arg-type]


def test_an_unchanged_tip_costs_no_event_query() -> None:
    chain = Chain()
    log = event_log(chain, from_block=10)
    log.refresh()
    log.refresh()
    log.updates(1)
    assert chain.queries == [(10, 100)]


def test_an_unchanged_tip_is_read_again_after_a_while() -> None:
    """An endpoint whose log index lagged gets another chance, even if no block comes."""
    chain, now = Chain(), [0.0]
    log = event_log(chain, now)
    log.refresh()
    now[0] += REREAD_SECONDS - 1
    log.refresh()
    assert len(chain.queries) == 1
    now[0] += 1
    log.refresh()
    assert chain.queries[-1] == (100 + 1 - REORG_WINDOW, 100)


def test_a_chain_that_extends_the_tip_costs_only_its_new_blocks() -> None:
    chain = Chain()
    log = event_log(chain)
    log.refresh()
    chain.grow(3)
    log.refresh()
    assert chain.lookups == [100]  # the old tip, still canonical
    assert chain.queries[-1] == (101, 103)
    chain.grow(1)
    log.refresh()
    assert chain.queries[-1] == (104, 104)


def test_extending_reads_still_reread_the_window_after_a_while() -> None:
    chain, now = Chain(), [0.0]
    log = event_log(chain, now)
    log.refresh()
    now[0] += REREAD_SECONDS
    chain.grow(1)
    log.refresh()
    assert chain.queries[-1] == (101 - REORG_WINDOW, 101)


def test_a_reorg_under_a_higher_tip_rereads_the_window() -> None:
    """The old tip was replaced: events read from it may be gone, whatever the new height."""
    chain = Chain()
    log = event_log(chain)
    log.refresh()
    chain.grow(2, fork=1)  # block 100 replaced, 101 and 102 on top
    log.refresh()
    assert chain.queries[-1] == (100 + 1 - REORG_WINDOW, 102)


def test_a_reorg_to_the_same_height_is_read_again() -> None:
    chain = Chain()
    log = event_log(chain)
    log.refresh()
    chain.grow(0, fork=1)  # another block 100: its events may differ
    log.refresh()
    assert len(chain.queries) == 2
    assert chain.queries[-1] == (100 + 1 - REORG_WINDOW, 100)


def test_events_outside_a_reread_window_are_kept_and_inside_replaced() -> None:
    class Recording(Chain):
        def events(self, from_block: int, to_block: int | None = None) -> list[Any]:
            super().events(from_block, to_block)
            last = max(self.hashes) if to_block is None else to_block
            return [Event(n, self.hashes[n]) for n in range(from_block, last + 1)]

    chain = Recording()
    log = event_log(chain)
    log.refresh()
    chain.grow(1, fork=2)
    log.refresh()
    assert [e.block for e in log.events] == list(range(102))
    assert all(e.hash == chain.hashes[e.block] for e in log.events)  # none from a lost block


class Event:
    def __init__(self, block: int, hash: bytes) -> None:
        self.block, self.hash = block, hash
