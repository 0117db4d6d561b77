"""Contract logs to the protocol's event dataclasses: the audit log as typed values.

Decoding is by the artifact's ABI (topic 0 = keccak256 of the event signature), so it works on
receipts and on `eth_getLogs` alike and needs no contract object. Logs of other contracts and
events the protocol does not model are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import collapse_if_tuple, event_signature_to_log_topic
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import Web3RPCError

from flare.protocol.events import EVENT_TYPES, ChainEvent
from flare.protocol.rounds import FailureReason, RoundConfig, RoundParams

LOG_CHUNK_BLOCKS = 10_000

_CONVERT: dict[str, Callable[[Any], Any]] = {
    "config": RoundConfig.from_tuple,
    "params": lambda value: RoundParams(*(int(v) for v in value)),
    "reason": FailureReason,
}


def snake(name: str) -> str:
    """`blsKeyHash` -> `bls_key_hash`: ABI names to dataclass field names."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class EventDecoder:
    """Decodes the logs of one contract into `flare.protocol.events` values."""

    def __init__(self, abi: list[dict[str, Any]], address: str | None = None) -> None:
        self.address = to_checksum_address(address) if address else None
        self._events: dict[bytes, tuple[type[ChainEvent], list[dict[str, Any]]]] = {}
        for item in abi:
            if item.get("type") != "event" or item["name"] not in EVENT_TYPES:
                continue
            types = ",".join(collapse_if_tuple(arg) for arg in item["inputs"])
            topic = event_signature_to_log_topic(f"{item['name']}({types})")
            self._events[bytes(topic)] = (EVENT_TYPES[item["name"]], list(item["inputs"]))

    @property
    def topics(self) -> list[str]:
        """Topic-0 values of the modeled events, for log filters."""
        return ["0x" + topic.hex() for topic in self._events]

    def decode(self, log: Mapping[str, Any]) -> ChainEvent | None:
        """One log as an event; None for another contract's log or an unmodeled event."""
        if self.address is not None and to_checksum_address(log["address"]) != self.address:
            return None
        topics = [_bytes(topic) for topic in log["topics"]]
        if not topics or topics[0] not in self._events:
            return None
        cls, inputs = self._events[topics[0]]
        indexed = [arg for arg in inputs if arg.get("indexed")]
        plain = [arg for arg in inputs if not arg.get("indexed")]
        values: dict[str, Any] = {}
        for arg, topic in zip(indexed, topics[1:], strict=True):
            values[arg["name"]] = abi_decode([collapse_if_tuple(arg)], topic)[0]
        decoded = abi_decode([collapse_if_tuple(arg) for arg in plain], _bytes(log["data"]))
        values.update({arg["name"]: value for arg, value in zip(plain, decoded, strict=True)})
        types = {arg["name"]: arg["type"] for arg in inputs}
        fields = {snake(name): _plain(types[name], snake(name), v) for name, v in values.items()}
        return cls(
            block=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash=_bytes(log["transactionHash"]),
            **fields,
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[ChainEvent]:
        """The modeled events among `logs`, in the order given."""
        return [event for event in map(self.decode, logs) if event is not None]


def fetch_events(
    w3: Web3, decoder: EventDecoder, address: str, from_block: int, to_block: int
) -> list[ChainEvent]:
    """The events of `address` in [from_block, to_block], fetched in bounded block ranges.

    Public endpoints cap eth_getLogs (a block range, a result count) and answer with a JSON-RPC
    error: a refused range is halved and asked again, down to one block, whose refusal is
    raised (the `Transactor` guard turns it into a `RequestRejectedError`).
    """
    found: list[ChainEvent] = []
    start = max(0, from_block)
    span = LOG_CHUNK_BLOCKS
    while start <= to_block:
        end = min(to_block, start + span - 1)
        try:
            logs = w3.eth.get_logs(
                {"address": address, "fromBlock": start, "toBlock": end}  # type: ignore[typeddict-item]
            )
        except Web3RPCError:
            if end == start:
                raise
            span = max(1, (end - start + 1) // 2)
            continue
        found.extend(decoder.decode_all(logs))
        start = end + 1
    return sorted(found, key=lambda event: event.position)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _plain(abi_type: str, field: str, value: Any) -> Any:
    if field in _CONVERT:
        return _CONVERT[field](value)
    if abi_type == "address":
        return to_checksum_address(value)
    return value
