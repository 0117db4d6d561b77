"""The loop's side of gossip: sign what the node announces, check what it hears.

`Chatter` wraps a `flare.protocol.ports.Gossip` (libp2p or the in-memory twin) with the
deployment's identity: it signs the node's own announcements, verifies every message it hears
against the sender's peer key registered on-chain (`flare.protocol.gossip`), drops forged,
replayed, stale, foreign and oversized ones (counted by reason), keeps the peers it heard from
recently, and holds the update announcements of live rounds for the loop to prefetch.

Nothing here can stop a round: publishing is best effort, and a node that hears nothing
fetches every update by the CIDs in the chain's events anyway.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flare.protocol import gossip as wire
from flare.protocol.errors import FlareError
from flare.protocol.ports import Gossip, NodeLedger, Peer

ALIVE_EVERY = 15.0  # seconds between liveness messages (gossipsub allows ~10 msg/s a topic)
LIVE_FOR = 60.0  # a node heard from within this many seconds counts as live
LOOKUPS_PER_TICK = 16  # peer-key reads from the chain one tick may make: junk costs no more
UNKNOWN_KEPT = 1024  # unregistered senders remembered (a bounded set, oldest forgotten first)
Log = Callable[[str], None]


@dataclass(frozen=True)
class LivePeer:
    """A node heard from recently: its account, the round and phase it said it was in."""

    node: str
    round: int
    phase: str | None
    seen: float  # unix seconds


class Chatter:
    """Signed announcements out, verified announcements in (see the module docstring)."""

    def __init__(
        self,
        gossip: Gossip,
        ledger: NodeLedger,
        *,
        node: str,
        peer_secret: bytes,
        log: Log | None = None,
        clock: Callable[[], float] = time.time,
        alive_every: float = ALIVE_EVERY,
    ) -> None:
        self.gossip = gossip
        self._ledger = ledger
        self._node = node.lower()
        self._secret = peer_secret
        self._log = log or (lambda message: None)
        self._clock = clock
        self._alive_every = alive_every
        self._last_alive = float("-inf")
        self._peer_keys: dict[str, bytes] = {}
        self._unknown: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lookups = 0
        self._round: int | None = None
        self._seen = wire.SeenWindow()
        self._news: dict[int, set[tuple[str, int, str, str]]] = collections.defaultdict(set)
        self.live: dict[str, LivePeer] = {}
        self.updates: dict[int, dict[str, str]] = collections.defaultdict(dict)
        self.rejected: collections.Counter[str] = collections.Counter()
        self.heard = 0
        self.published = 0

    # ---------------------------------------------------------------- out

    def announce_update(self, round_number: int, cid: str) -> None:
        """Say the node's update is registered (call only once the receipt is in)."""
        self._publish("update", round_number, wire.update_body(cid))

    def announce_proposal(self, round_number: int, proposal_id: int, cid: str) -> None:
        self._publish("proposal", round_number, wire.proposal_body(proposal_id, cid))

    def _publish(self, kind: str, round_number: int, body: dict[str, Any]) -> None:
        data = wire.encode(
            kind,
            chain_id=self._ledger.chain_id,
            contract=self._ledger.address,
            round=round_number,
            node=self._node,
            sent=int(self._clock()),
            body=body,
            secret_key=self._secret,
        )
        try:
            self.gossip.publish(data)
            self.published += 1
        except Exception as error:  # gossip is best effort, never fatal
            self._log(f"gossip: could not publish a {kind} message: {error}")

    # ---------------------------------------------------------------- in

    def tick(self, round_number: int, phase: str | None) -> None:
        """Hear what arrived, and say the node is alive when it is time to."""
        now = self._clock()
        if now - self._last_alive >= self._alive_every:
            self._last_alive = now
            self._publish("alive", round_number, wire.alive_body(phase))
        if round_number != self._round:
            # Nodes register between rounds: senders unknown so far are looked up again. (A
            # deregistered node's key stays known: its messages remain hints the chain checks.)
            self._round = round_number
            self._unknown.clear()
        self._lookups = 0
        try:
            inbox = self.gossip.receive()
        except Exception as error:  # a broken gossip layer never stops rounds
            self._log(f"gossip: could not receive: {error}")
            return
        for data in inbox:
            try:
                self._hear(data, round_number, int(now))
            except Exception:  # whatever a hostile message trips over: dropped, never fatal
                self.rejected["malformed"] += 1
        for kept in (self.updates, self._news):
            for r in [r for r in kept if r < round_number - wire.STALE_ROUNDS]:
                del kept[r]
        self.live = {a: p for a, p in self.live.items() if now - p.seen <= LIVE_FOR}

    def _hear(self, data: bytes, round_number: int, now: int) -> None:
        try:
            said = wire.verify(
                data,
                chain_id=self._ledger.chain_id,
                contract=self._ledger.address,
                current_round=round_number,
                now=now,
                peer_key_of=self._peer_key,
            )
            if said.node == self._node:
                raise wire.GossipRejectedError(
                    "own-key", "gossip message dropped: signed with this node's own identity"
                )
            if not self._seen.first_time(said.digest()):
                raise wire.GossipRejectedError("replay", "gossip message dropped: seen before")
        except wire.GossipRejectedError as rejected:
            self.rejected[rejected.reason] += 1
            return
        self.heard += 1
        self.live[said.node] = LivePeer(
            said.node, said.round, said.body.get("phase"), float(self._clock())
        )
        if said.key() in self._news[said.round]:
            return
        self._news[said.round].add(said.key())
        if said.kind == "update":
            # The first CID a node announced for a round is the one kept; the loop checks it
            # against the chain before fetching, so a lying second one changes nothing.
            self.updates[said.round].setdefault(said.node, said.cid)

    def _peer_key(self, node: str) -> bytes | None:
        """The peer key `node` registered, read from the chain once.

        Unregistered senders are remembered for the round (a bounded set), and a tick reads at
        most `LOOKUPS_PER_TICK` keys: a flood of made-up senders costs a few reads, then is
        dropped as `busy` without any.
        """
        if node in self._peer_keys:
            return self._peer_keys[node]
        if node in self._unknown:
            return None
        if self._lookups >= LOOKUPS_PER_TICK:
            raise wire.GossipRejectedError("busy", "gossip message dropped: too many new senders")
        self._lookups += 1
        try:
            info = self._ledger.get_node(node)
        except FlareError:
            raise wire.GossipRejectedError(
                "busy", "gossip message dropped: the chain did not answer"
            ) from None
        if not info.registered:
            self._unknown[node] = None
            if len(self._unknown) > UNKNOWN_KEPT:
                self._unknown.popitem(last=False)
            return None
        self._peer_keys[node] = info.peer_key
        return info.peer_key

    def view(self) -> dict[str, Any]:
        """What `flare-node status` shows: this node's gossip address, connected peers, the
        nodes heard from lately, and counts of messages heard, published and dropped."""
        now = self._clock()
        return {
            "address": getattr(self.gossip, "address", None),
            "running": bool(getattr(self.gossip, "running", True)),
            "connected": [{"peer_id": p.peer_id, "addr": p.addr} for p in self.peers()],
            "live": [
                {"node": p.node, "round": p.round, "phase": p.phase, "ago": round(now - p.seen, 1)}
                for p in sorted(self.live.values(), key=lambda p: p.node)
            ],
            "heard": self.heard,
            "published": self.published,
            "rejected": dict(sorted(self.rejected.items())),
        }

    def peers(self) -> list[Peer]:
        try:
            return self.gossip.peers()
        except Exception:
            return []

    def close(self) -> None:
        self.gossip.close()
