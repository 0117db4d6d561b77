"""The in-process chain's provider: eth-tester (py-evm) behind one lock.

Kept apart from `connect` (which must not import web3 at module level, so `flare-node --help`
stays fast) and from `devchain` (dev keys and clocks, which need `connect`).
"""

from __future__ import annotations

import threading
from typing import Any

from web3 import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse


class SerializedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe; nodes may call it from worker threads, so serialize."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)
