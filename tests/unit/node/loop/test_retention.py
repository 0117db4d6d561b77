"""Retention: a node unpins old global models and its own old updates, never what a live
round needs.

The members share one store (as a network everybody pins to), so only member 0 keeps a
retention policy here and its unpins are visible to all: the pins that remain are exactly the
ones its policy keeps plus the other members' own updates. The store is this test's own copy
of the session's (its gc must not take the genesis from the other tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from loop_harness import Federation, acted

from flare.node.round import Acted, Retention, Wait
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.store import BlockNotFoundError


def test_old_globals_and_updates_are_unpinned_and_the_base_never(
    federation: Federation, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "store")
    for cid in federation.store.pins():  # the genesis and the review policy
        assert store.put(federation.store.get(cid)) == cid
    keep = Retention(keep_globals=2, keep_update_rounds=1, gc=True)
    loops = [
        federation.loop(
            m, tmp_path / f"node-{m.index}", store=store, retention=keep if i == 0 else None
        )
        for i, m in enumerate(federation.members)
    ]
    trace: list[tuple[int, Acted | Wait]] = []
    bases_pinned_at_retain: list[bool] = []

    def watch(index: int, result: Acted | Wait) -> None:
        trace.append((index, result))
        if index == 0 and isinstance(result, Acted) and result.what == "retain":
            base = loops[0].state.get(result.details["round"], "adopt")
            assert base is not None
            bases_pinned_at_retain.append(base["model"] in store.pins())

    cohort = federation.cohort(loops)
    cohort.on_step = watch
    cohort.run_until(federation.until_round(4))
    cohort.run_until(lambda: bool(acted(trace, "retain", 0)[3:]))  # round 4's retain ran

    state = loops[0].state
    bases = [state.get(r, "adopt")["model"] for r in range(1, 5)]  # type: ignore[index]
    assert len(set(bases)) == 4  # three finalized rounds: four distinct globals
    own = [state.get(r, "train")["cid"] for r in range(1, 4)]  # type: ignore[index]
    pins = set(store.pins())
    assert set(bases[-2:]) <= pins  # the last two globals, the current base among them
    assert not set(bases[:2]) & pins
    assert own[-1] in pins  # the own update of the last finished round stays
    assert not set(own[:2]) & pins
    assert all(bases_pinned_at_retain)
    assert len(bases_pinned_at_retain) == 4
    # gc ran: an unpinned global is gone from the store, the base still reads back whole.
    freed = [a.details.get("freed_bytes", 0) for a in acted(trace, "retain", 0)]
    assert sum(freed) > 0
    with pytest.raises(BlockNotFoundError):
        store.get(bases[0])
    store.get(bases[-1])
    store.close()
