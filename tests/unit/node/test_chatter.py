"""`Chatter` against hostile traffic: floods of made-up senders, re-encoded replays, junk."""

from __future__ import annotations

import json
from dataclasses import dataclass

import nacl.signing

from flare.node.chatter import LOOKUPS_PER_TICK, Chatter
from flare.node.gossip.memory import MemoryNetwork
from flare.protocol import gossip as wire

CONTRACT = "0x" + "ab" * 20
ME = "0x" + "01" * 20
PEER = "0x" + "02" * 20
PEER_KEY = nacl.signing.SigningKey(b"\x02" * 32)
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@dataclass
class Info:
    registered: bool
    peer_key: bytes


class Ledger:
    """The chain as the chatter reads it: one registered peer, and a count of lookups."""

    chain_id = 31337
    address = CONTRACT

    def __init__(self) -> None:
        self.lookups = 0

    def get_node(self, node: str) -> Info:
        self.lookups += 1
        if node == PEER:
            return Info(True, bytes(PEER_KEY.verify_key))
        return Info(False, b"")


def chatter() -> tuple[Chatter, Ledger, MemoryNetwork]:
    network, ledger = MemoryNetwork(), Ledger()
    me = Chatter(
        network.join("me"),
        ledger,
        node=ME,
        peer_secret=b"\x01" * 32,
        clock=lambda: 1_000.0,  # type: ignore[arg-type]
    )
    return me, ledger, network


def signed(node: str, key: nacl.signing.SigningKey, *, round: int = 3, cid: str = CID) -> bytes:
    return wire.encode(
        "update", chain_id=31337, contract=CONTRACT, round=round, node=node, sent=1_000,
        body=wire.update_body(cid), secret_key=bytes(key),
    )  # fmt: skip


def test_a_flood_of_made_up_senders_costs_a_bounded_number_of_chain_reads() -> None:
    me, ledger, network = chatter()
    attacker = network.join("attacker")
    junk_key = nacl.signing.SigningKey(b"\x09" * 32)
    for i in range(500):
        attacker.publish(signed(f"0x{i:040x}", junk_key))
    me.tick(3, "TRAINING")
    assert ledger.lookups == LOOKUPS_PER_TICK
    assert me.rejected["unknown-sender"] == LOOKUPS_PER_TICK
    assert me.rejected["busy"] == 500 - LOOKUPS_PER_TICK
    # The same made-up senders again: remembered as unknown, no read at all.
    for i in range(LOOKUPS_PER_TICK):
        attacker.publish(signed(f"0x{i:040x}", junk_key, cid=CID))
    me.tick(3, "TRAINING")
    assert ledger.lookups == LOOKUPS_PER_TICK


def test_a_re_encoded_replay_and_junk_are_dropped_and_the_real_message_kept() -> None:
    me, _, network = chatter()
    peer = network.join("peer")
    data = signed(PEER, PEER_KEY)
    outer = json.loads(data)
    peer.publish(data)
    peer.publish(json.dumps(outer, indent=2).encode())  # the same message, other bytes
    peer.publish(b"[" * 2000)  # deeper than the JSON parser's recursion limit
    peer.publish(b"\xff" * 100)
    me.tick(3, "TRAINING")
    assert me.updates[3] == {PEER: CID}
    assert me.heard == 1
    assert me.rejected == {"replay": 1, "malformed": 2}


def test_news_of_old_rounds_is_forgotten() -> None:
    me, _, network = chatter()
    peer = network.join("peer")
    peer.publish(signed(PEER, PEER_KEY, round=3))
    me.tick(3, "TRAINING")
    me.tick(5, "TRAINING")
    assert dict(me.updates) == {}
    assert all(r >= 4 for r in me._news)
