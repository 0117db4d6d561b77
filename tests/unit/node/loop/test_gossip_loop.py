"""Node loops with gossip (the in-memory twin): prefetch, partitions, and what attackers send.

The chain stays the source of truth: gossip may only make Review start with the bytes already
verified and pinned. Every attack here is a message a node could put on the topic: a forged
signature, a replay, another deployment's message, a stale round, a CID its sender never
registered, an announcement before registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from loop_harness import Federation, Proxy, acted

from flare.node.gossip.memory import MemoryNetwork
from flare.node.round import Acted, Wait
from flare.protocol import gossip as wire
from flare.protocol.cid import encode_cid
from flare.protocol.events import RoundFinalized, UpdateSubmitted
from flare.protocol.rounds import Phase


class WatchedNetwork(MemoryNetwork):
    """Checks, as each update announcement is published, that the chain already holds it."""

    def __init__(self, federation: Federation) -> None:
        super().__init__()
        self.federation = federation
        self.early: list[str] = []
        self.updates = 0

    def _publish(self, sender: str, data: bytes) -> None:
        said = wire._parse(data)[0]
        if said["kind"] == "update":
            self.updates += 1
            registered = self.federation.owner.update_of(said["round"], said["node"])
            if not any(registered):
                self.early.append(said["body"]["cid"])
        super()._publish(sender, data)


class CountingStore(Proxy):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.gets: list[str] = []

    def get(self, cid: str, **kwargs: Any) -> bytes:
        self.gets.append(cid)
        return bytes(self._inner.get(cid, **kwargs))


def loops_on(
    federation: Federation, network: MemoryNetwork, root: Path, **kwargs: Any
) -> list[Any]:
    return [
        federation.loop(
            m, root / f"node-{m.index}", gossip=network.join(f"peer-{m.index}"), **kwargs
        )
        for m in federation.members
    ]


def updates_of(federation: Federation, r: int) -> dict[str, str]:
    return {
        e.node: encode_cid(e.cid)
        for e in federation.owner.events(federation.block)
        if isinstance(e, UpdateSubmitted) and e.round == r
    }


def test_seat_holders_prefetch_announced_updates_and_rounds_finalize(
    federation: Federation, tmp_path: Path
) -> None:
    network = WatchedNetwork(federation)
    loops = loops_on(federation, network, tmp_path)
    trace: list[tuple[int, Acted | Wait]] = []

    federation.cohort(loops, trace).run_until(federation.until_round(3))

    assert federation.owner.phase(1) is Phase.FINALIZED
    assert federation.owner.phase(2) is Phase.FINALIZED
    # Announced only once registered: nobody could copy an update from gossip first.
    assert network.updates == 2 * len(loops)
    assert network.early == []
    for r in (1, 2):
        registered = updates_of(federation, r)
        for index, loop in enumerate(loops):
            fetched = [a.details for a in acted(trace, "prefetch", index) if a.round == r]
            if not federation.owner.is_seat_holder(r, loop.address):
                assert fetched == []
                continue
            # A seat holder prefetched others' registered updates, each the chain's own CID,
            # verified by the store and pinned before Review read them.
            assert fetched, f"seat holder {index} prefetched nothing in round {r}"
            for details in fetched:
                assert details["node"] != loop.address.lower()
                assert registered[_checksum(details["node"], registered)] == details["cid"]
                assert details["cid"] in federation.store.pins()
            record = loop.state.get(r, "prefetch")
            assert record is not None
            assert record["bytes"] == sum(d["bytes"] for d in fetched)
    # Each node heard the others alive and holds no rejected message.
    for loop in loops:
        assert loop.chatter is not None
        assert len(loop.chatter.live) == len(loops) - 1
        assert loop.chatter.rejected == {}


def _checksum(lower: str, registered: dict[str, str]) -> str:
    return next(a for a in registered if a.lower() == lower)


# test_federation_faults shows the same with real libp2p processes, in the default run
@pytest.mark.slow
def test_a_node_cut_off_gossip_still_finishes_rounds(
    federation: Federation, tmp_path: Path
) -> None:
    network = MemoryNetwork()
    loops = loops_on(federation, network, tmp_path)
    network.cut("peer-1")  # the first member hears nothing and nobody hears it
    trace: list[tuple[int, Acted | Wait]] = []

    federation.cohort(loops, trace).run_until(federation.until_round(3))

    finalized = [
        e for e in federation.owner.events(federation.block) if isinstance(e, RoundFinalized)
    ]
    assert [e.round for e in finalized] == [1, 2]
    cut = loops[0]
    assert acted(trace, "prefetch", 0) == []
    assert cut.chatter is not None
    assert cut.chatter.live == {}
    for r in (1, 2):
        # Its update was registered and is in the round's model: the chain carried it.
        assert cut.address in updates_of(federation, r)
        assert len(acted(trace, "submit", 0)) == 2
        nobody_prefetched_it = all(
            a.details["node"] != cut.address.lower() for a in acted(trace, "prefetch")
        )
        assert nobody_prefetched_it


def forged(
    federation: Federation, *, r: int, node: str, cid: str, secret: bytes, **over: Any
) -> bytes:
    fields: dict[str, Any] = {
        "chain_id": federation.owner.chain_id,
        "contract": federation.address,
        "round": r,
        "node": node,
        "sent": federation.owner.timestamp(),
        "body": wire.update_body(cid),
        "secret_key": secret,
    }
    fields.update(over)
    return wire.encode("update", **fields)


def test_forged_replayed_foreign_stale_and_lying_messages_are_dropped(
    federation: Federation, tmp_path: Path
) -> None:
    network = MemoryNetwork()
    store = CountingStore(federation.store)
    loops = loops_on(federation, network, tmp_path, store=store)
    attacker = network.join("attacker")  # on the topic, holding no registered key
    cohort = federation.cohort(loops)
    cohort.run_until(lambda: federation.owner.get_round(1).update_count == len(loops))
    victim, honest = federation.members[1], federation.members[2]
    real = updates_of(federation, 1)
    bogus = federation.store.put(b"not an update: what an attacker wants fetched")
    someone_else = nacl.signing.SigningKey.generate()
    attacks = {
        # signed by a key that is not the victim's registered peer key
        "bad-signature": forged(
            federation, r=1, node=victim.address, cid=bogus, secret=bytes(someone_else)
        ),
        # the victim's own key, but bound to another contract / another chain
        "wrong-deployment": forged(
            federation, r=1, node=victim.address, cid=bogus, secret=victim.peer_secret,
            contract="0x" + "11" * 20,
        ),
        # an unregistered sender
        "unknown-sender": forged(
            federation, r=1, node="0x" + "22" * 20, cid=bogus, secret=bytes(someone_else)
        ),
        # a round far in the future
        "future": forged(
            federation, r=5, node=victim.address, cid=bogus, secret=victim.peer_secret
        ),
        "oversized": b"{" + b" " * wire.MAX_MESSAGE_BYTES + b"}",
        "malformed": b"\x00\x01 not json",
    }  # fmt: skip
    for data in attacks.values():
        attacker.publish(data)
    # A correctly signed announcement of a CID its sender never registered: a lie the chain
    # exposes before anything is fetched.
    lie = forged(federation, r=1, node=honest.address, cid=bogus, secret=honest.peer_secret)
    attacker.publish(lie)
    attacker.publish(lie)  # and the same bytes again: a replay

    trace: list[tuple[int, Acted | Wait]] = []
    federation.cohort(loops, trace).run_until(federation.until_round(2))

    assert federation.owner.phase(1) is Phase.FINALIZED
    assert bogus not in store.gets  # never fetched, by anyone
    for loop in loops:
        assert loop.chatter is not None
        rejected = loop.chatter.rejected
        for reason in attacks:
            assert rejected[reason] >= 1, (reason, dict(rejected))
        if loop.address == honest.address:
            # signed with its own key: refused as such, both copies, whoever sent them
            assert rejected["own-key"] == 2
            continue
        assert rejected["replay"] == 1
        if loop.address != honest.address:
            # the honest node's real announcement came first and is kept; the lie changes nothing
            assert loop.chatter.updates.get(1, {}).get(honest.address.lower()) in (
                None,
                real[honest.address],
            )
    # Every prefetch was of a registered update.
    assert all(a.details["cid"] in real.values() for a in acted(trace, "prefetch"))


def test_a_lying_first_announcement_is_checked_against_the_chain_and_never_fetched(
    federation: Federation, tmp_path: Path
) -> None:
    """The liar's message arrives before the real one: the chain check drops it."""
    network = MemoryNetwork()
    store = CountingStore(federation.store)
    loops = loops_on(federation, network, tmp_path, store=store)
    liar = federation.members[3]
    bogus = federation.store.put(b"the liar's junk")
    network.join("liar").publish(
        forged(federation, r=1, node=liar.address, cid=bogus, secret=liar.peer_secret)
    )
    trace: list[tuple[int, Acted | Wait]] = []

    federation.cohort(loops, trace).run_until(federation.until_round(2))

    assert federation.owner.phase(1) is Phase.FINALIZED
    assert bogus not in store.gets
    holders = [loop for loop in loops[:3] if federation.owner.is_seat_holder(1, loop.address)]
    assert holders
    for loop in holders:
        assert loop.chatter is not None
        assert loop.chatter.rejected["not-registered"] == 1


class BrokenGossip:
    """A gossip layer that fails on every call."""

    def publish(self, data: bytes) -> None:
        raise OSError("the gossip host died")

    def receive(self) -> list[bytes]:
        raise OSError("the gossip host died")

    def peers(self) -> list[Any]:
        raise OSError("the gossip host died")

    def close(self) -> None:
        pass


def test_a_broken_gossip_layer_never_stops_a_round(federation: Federation, tmp_path: Path) -> None:
    loops = [
        federation.loop(m, tmp_path / f"node-{m.index}", gossip=BrokenGossip())
        for m in federation.members
    ]

    federation.cohort(loops).run_until(federation.until_round(2))

    assert federation.owner.phase(1) is Phase.FINALIZED
    for loop in loops:
        assert loop.chatter is not None
        assert loop.chatter.published == 0
        assert loop.chatter.view()["connected"] == []
