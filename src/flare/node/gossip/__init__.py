"""The gossip adapters behind `flare.protocol.ports.Gossip`: in-memory and libp2p."""

from __future__ import annotations

import collections
import threading


class Inbox:
    """Received messages waiting for the loop, bounded: when it overflows the oldest go, as a
    slow gossipsub subscriber loses messages (gossip is a hint; the chain has the facts)."""

    def __init__(self, size: int) -> None:
        self._messages: collections.deque[bytes] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def put(self, data: bytes) -> None:
        with self._lock:
            self._messages.append(data)

    def drain(self) -> list[bytes]:
        with self._lock:
            messages = list(self._messages)
            self._messages.clear()
        return messages
