"""The in-memory twin of the gossip topic: the demo's nodes and the loop tests share one.

It behaves as gossipsub does for the loop: a published message reaches every other member
(never the sender itself), each member's inbox is bounded (the oldest message is dropped when
it overflows, as a slow gossipsub subscriber loses messages) and a member cut off by `cut`
neither sends nor receives until `join_again`: the partition tests' switch.
"""

from __future__ import annotations

import threading

from flare.node.gossip import Inbox
from flare.protocol.ports import Peer

INBOX = 1024


class MemoryNetwork:
    """One topic; `join` gives each node its end of it."""

    def __init__(self, inbox: int = INBOX) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, MemoryGossip] = {}
        self._cut: set[str] = set()
        self._inbox = inbox
        self.published = 0  # messages published in all (the benchmarks' count)

    def join(self, peer_id: str) -> MemoryGossip:
        with self._lock:
            member = MemoryGossip(self, peer_id, self._inbox)
            self._members[peer_id] = member
            return member

    def cut(self, peer_id: str) -> None:
        """Partition `peer_id` off: what it sends is lost, nothing reaches it."""
        with self._lock:
            self._cut.add(peer_id)

    def join_again(self, peer_id: str) -> None:
        with self._lock:
            self._cut.discard(peer_id)

    def _publish(self, sender: str, data: bytes) -> None:
        with self._lock:
            self.published += 1
            if sender in self._cut:
                return
            for peer_id, member in self._members.items():
                if peer_id != sender and peer_id not in self._cut:
                    member._deliver(data)

    def _peers(self, of: str) -> list[Peer]:
        with self._lock:
            if of in self._cut:
                return []
            return [Peer(p) for p in self._members if p != of and p not in self._cut]

    def _leave(self, peer_id: str) -> None:
        with self._lock:
            self._members.pop(peer_id, None)


class MemoryGossip:
    """One node's end of a `MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, peer_id: str, inbox: int) -> None:
        self._network = network
        self.peer_id = peer_id
        self._inbox = Inbox(inbox)

    def publish(self, data: bytes) -> None:
        self._network._publish(self.peer_id, data)

    def receive(self) -> list[bytes]:
        return self._inbox.drain()

    def peers(self) -> list[Peer]:
        return self._network._peers(self.peer_id)

    def close(self) -> None:
        self._network._leave(self.peer_id)

    def _deliver(self, data: bytes) -> None:
        self._inbox.put(data)
