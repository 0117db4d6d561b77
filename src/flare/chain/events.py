"""Contract logs to the protocol's event dataclasses: the audit log as typed values.

Decoding is by the artifact's ABI (topic 0 = keccak256 of the event signature), so it works on
receipts and on `eth_getLogs` alike and needs no contract object. Logs of other contracts and
events the protocol does not model are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import collapse_if_tuple, event_signature_to_log_topic
from eth_utils.address import to_checksum_address
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


class _Layout:
    """Where one event's fields are in a log, worked out once from the ABI."""

    def __init__(self, cls: type[ChainEvent], inputs: list[dict[str, Any]]) -> None:
        self.cls = cls
        self.indexed = [_field(arg) for arg in inputs if arg.get("indexed")]
        plain = [arg for arg in inputs if not arg.get("indexed")]
        self.plain_types = [collapse_if_tuple(arg) for arg in plain]
        self.plain = [_field(arg)[::2] for arg in plain]


def _field(arg: dict[str, Any]) -> tuple[str, str, Callable[[Any], Any]]:
    """(dataclass field, ABI type, converter) of one event input."""
    name = snake(str(arg["name"]))
    return name, collapse_if_tuple(arg), _converter(str(arg["type"]), name)


class EventDecoder:
    """Decodes the logs of one contract into `flare.protocol.events` values."""

    def __init__(self, abi: list[dict[str, Any]], address: str | None = None) -> None:
        self.address = to_checksum_address(address) if address else None
        self._lower = self.address.lower() if self.address else None
        self._events: dict[bytes, _Layout] = {}
        for item in abi:
            if item.get("type") != "event" or item["name"] not in EVENT_TYPES:
                continue
            types = ",".join(collapse_if_tuple(arg) for arg in item["inputs"])
            topic = event_signature_to_log_topic(f"{item['name']}({types})")
            self._events[bytes(topic)] = _Layout(EVENT_TYPES[item["name"]], list(item["inputs"]))

    @property
    def topics(self) -> list[str]:
        """Topic-0 values of the modeled events, for log filters."""
        return ["0x" + topic.hex() for topic in self._events]

    def decode(self, log: Mapping[str, Any]) -> ChainEvent | None:
        """One log as an event; None for another contract's log or an unmodeled event."""
        if self._lower is not None and str(log["address"]).lower() != self._lower:
            return None
        topics = [_bytes(topic) for topic in log["topics"]]
        layout = self._events.get(topics[0]) if topics else None
        if layout is None:
            return None
        fields: dict[str, Any] = {}
        for (name, kind, convert), topic in zip(layout.indexed, topics[1:], strict=True):
            fields[name] = convert(abi_decode([kind], topic)[0])
        decoded = abi_decode(layout.plain_types, _bytes(log["data"]))
        for (name, convert), value in zip(layout.plain, decoded, strict=True):
            fields[name] = convert(value)
        return layout.cls(
            block=_int(log["blockNumber"]),
            log_index=_int(log["logIndex"]),
            tx_hash=_bytes(log["transactionHash"]),
            **fields,
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[ChainEvent]:
        """The modeled events among `logs`, in the order given."""
        return [event for event in map(self.decode, logs) if event is not None]


LogQuery = Callable[[dict[str, Any]], Sequence[Mapping[str, Any]]]


def fetch_events(
    get_logs: LogQuery, decoder: EventDecoder, address: str, from_block: int, to_block: int
) -> list[ChainEvent]:
    """The events of `address` in [from_block, to_block], fetched in bounded block ranges.

    `get_logs` answers one `eth_getLogs` filter (web3's, or the raw JSON-RPC result: both
    decode). Public endpoints cap eth_getLogs (a block range, a result count) and answer with
    a JSON-RPC error: a refused range is halved and asked again, down to one block, whose
    refusal is raised (the `Transactor` guard turns it into a `RequestRejectedError`).
    """
    found: list[ChainEvent] = []
    start = max(0, from_block)
    span = LOG_CHUNK_BLOCKS
    while start <= to_block:
        end = min(to_block, start + span - 1)
        try:
            logs = get_logs({"address": address, "fromBlock": start, "toBlock": end})
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


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _converter(abi_type: str, field: str) -> Callable[[Any], Any]:
    if field in _CONVERT:
        return _CONVERT[field]
    if abi_type == "address":
        return to_checksum_address
    return _same


def _same(value: Any) -> Any:
    return value
