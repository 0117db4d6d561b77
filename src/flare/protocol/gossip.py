"""Gossip messages: what nodes announce to each other, signed and bound to one deployment.

Gossip only speeds things up; the chain stays the source of truth, and a node that hears
nothing still completes rounds from the events. So a message is worth acting on only when it
is provably from a registered node, about this deployment and a live round, and new:

- **signed** with the sender's ed25519 peer key, the one it registered on-chain, over a
  domain-separated encoding (`DOMAIN`), so a signature from another protocol never verifies;
- **bound** to (chain id, contract, round), so a message replayed on another deployment, a
  fork of it, or a later round is refused;
- **fresh**: rounds far behind the receiver's are stale, a message seen before is a replay;
- **small**: anything over `MAX_MESSAGE_BYTES` is dropped before it is parsed.

Three kinds travel: `update` (a node's update CID, sent only after its registration is
mined, so nobody can copy an update before its owner registered it), `proposal` (a seat
holder's proposed model) and `alive` (liveness: the round and phase a node is in).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from flare.protocol.cid import decode_cid, encode_cid
from flare.protocol.errors import FlareError
from flare.protocol.rounds import Phase

VERSION = 1
DOMAIN = b"flare-gossip/1\x00"
MAX_MESSAGE_BYTES = 2048
KINDS = ("update", "proposal", "alive")
STALE_ROUNDS = 1  # messages of rounds more than this far behind the receiver's are stale
MAX_CLOCK_SKEW = 300  # seconds a message's send time may lie ahead of the receiver's clock
MAX_AGE = 900  # seconds a message may have travelled: older ones are stale (or replayed)
PHASES = frozenset(phase.name for phase in Phase)
_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")


class GossipRejectedError(FlareError):
    """A gossip message the node drops; `reason` is a short label for logs and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def topic(chain_id: int, contract: str) -> str:
    """The deployment's gossip topic: one per (chain, contract), so deployments never mix."""
    return f"/flare/{VERSION}/{chain_id}/{contract.lower()}"


@dataclass(frozen=True)
class Announcement:
    """A verified message: who sent it (the node's address) and what it says."""

    kind: str
    chain_id: int
    contract: str
    round: int
    node: str  # the sender's account, lower-case hex
    sent: int  # the sender's clock, unix seconds
    body: Mapping[str, Any]

    @property
    def cid(self) -> str:
        """The CID an `update` or `proposal` names (base32 CIDv1)."""
        return str(self.body["cid"])

    def key(self) -> tuple[str, int, str, str]:
        """What makes two messages the same news: a node re-announcing it adds nothing."""
        return (self.kind, self.round, self.node, json.dumps(self.body, sort_keys=True))

    def digest(self) -> bytes:
        """The signed content's hash: the same message however its bytes were re-encoded."""
        payload = {
            "v": VERSION, "kind": self.kind, "chain": self.chain_id, "contract": self.contract,
            "round": self.round, "node": self.node, "sent": self.sent, "body": dict(self.body),
        }  # fmt: skip
        return hashlib.sha256(DOMAIN + _canonical(payload)).digest()


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode(
    kind: str,
    *,
    chain_id: int,
    contract: str,
    round: int,
    node: str,
    sent: int,
    body: Mapping[str, Any],
    secret_key: bytes,
) -> bytes:
    """A signed message, ready to publish; `secret_key` is the 32-byte ed25519 seed."""
    if kind not in KINDS:
        raise ValueError(f"unknown gossip kind {kind!r}")
    payload = {
        "v": VERSION,
        "kind": kind,
        "chain": chain_id,
        "contract": contract.lower(),
        "round": round,
        "node": node.lower(),
        "sent": sent,
        "body": dict(body),
    }
    message = _canonical(payload)
    signature = nacl.signing.SigningKey(secret_key).sign(DOMAIN + message).signature
    data = _canonical({"m": payload, "sig": signature.hex()})
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a {kind} message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def update_body(cid: str) -> dict[str, Any]:
    return {"cid": cid}


def proposal_body(proposal_id: int, cid: str) -> dict[str, Any]:
    return {"proposal": proposal_id, "cid": cid}


def alive_body(phase: str | None) -> dict[str, Any]:
    return {"phase": phase}


PeerKeyOf = Callable[[str], bytes | None]
"""The ed25519 key a node registered on-chain, or None for an unregistered address."""


def _reject(reason: str, message: str) -> GossipRejectedError:
    return GossipRejectedError(reason, f"gossip message dropped: {message}")


def _parse(data: bytes) -> tuple[dict[str, Any], bytes]:
    if len(data) > MAX_MESSAGE_BYTES:
        raise _reject("oversized", f"{len(data)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        outer = json.loads(data)
        payload = outer["m"]
        signature = bytes.fromhex(outer["sig"])
        if not isinstance(payload, dict) or len(signature) != 64 or set(outer) != {"m", "sig"}:
            raise ValueError("bad envelope")
        if set(payload) != {"v", "kind", "chain", "contract", "round", "node", "sent", "body"}:
            raise ValueError("bad fields")
        if payload["v"] != VERSION:
            raise _reject("version", f"version {payload['v']!r}, this node speaks {VERSION}")
        if payload["kind"] not in KINDS or not isinstance(payload["body"], dict):
            raise ValueError("bad kind or body")
        for name in ("chain", "round", "sent"):
            if type(payload[name]) is not int or payload[name] < 0:
                raise ValueError(f"bad {name}")
        for name in ("contract", "node"):
            if not isinstance(payload[name], str) or not _ADDRESS.match(payload[name]):
                raise ValueError(f"bad {name}")
        _check_body(payload["kind"], payload["body"])
    except GossipRejectedError:
        raise
    except Exception as error:  # anything a hostile byte string can make a parser raise,
        # RecursionError from a deep nest of brackets included: dropped, never fatal
        raise _reject("malformed", f"not a flare gossip message ({type(error).__name__})") from None
    return payload, signature


def _check_body(kind: str, body: dict[str, Any]) -> None:
    expected = {"update": {"cid"}, "proposal": {"proposal", "cid"}, "alive": {"phase"}}[kind]
    if set(body) != expected:
        raise ValueError(f"a {kind} body has {sorted(expected)}")
    if "cid" in body:
        if not isinstance(body["cid"], str):
            raise ValueError("bad cid")
        try:
            if encode_cid(decode_cid(body["cid"])) != body["cid"]:
                raise ValueError("a CID not in canonical form")
        except FlareError as error:
            raise ValueError(f"bad cid: {error.message}") from None
    if "proposal" in body and (type(body["proposal"]) is not int or body["proposal"] < 1):
        raise ValueError("bad proposal id")
    if "phase" in body and not (body["phase"] is None or body["phase"] in PHASES):
        raise ValueError("bad phase")


def verify(
    data: bytes,
    *,
    chain_id: int,
    contract: str,
    current_round: int,
    now: int,
    peer_key_of: PeerKeyOf,
) -> Announcement:
    """The announcement `data` carries, or `GossipRejectedError` saying why it is dropped.

    Cheap checks (size, shape, deployment, round) come before the signature, and the
    signature before the chain lookup is trusted: a flood of junk costs no RPC calls beyond
    one peer-key lookup per claimed sender (which the caller caches).
    """
    payload, signature = _parse(data)
    if payload["chain"] != chain_id or payload["contract"] != contract.lower():
        raise _reject(
            "wrong-deployment",
            f"it is bound to chain {payload['chain']} contract {payload['contract']}",
        )
    if payload["round"] < current_round - STALE_ROUNDS or payload["sent"] < now - MAX_AGE:
        raise _reject(
            "stale", f"round {payload['round']} sent at {payload['sent']}, this node is in "
            f"round {current_round} at {now}",
        )  # fmt: skip
    if payload["round"] > current_round + 1 or payload["sent"] > now + MAX_CLOCK_SKEW:
        raise _reject("future", f"round {payload['round']} sent at {payload['sent']}")
    peer_key = peer_key_of(payload["node"])
    if peer_key is None:
        raise _reject("unknown-sender", f"{payload['node']} is not a registered node")
    try:
        nacl.signing.VerifyKey(peer_key).verify(DOMAIN + _canonical(payload), signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise _reject(
            "bad-signature", f"the signature is not {payload['node']}'s registered peer key"
        ) from None
    return Announcement(
        kind=payload["kind"],
        chain_id=chain_id,
        contract=payload["contract"],
        round=payload["round"],
        node=payload["node"],
        sent=payload["sent"],
        body=payload["body"],
    )


class SeenWindow:
    """The digests (`Announcement.digest`) of the last `size` messages accepted: a message seen
    twice, in whatever encoding, is a replay. Only accepted messages enter, so junk cannot
    flush the window; older ones are refused as stale by `MAX_AGE` anyway."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def first_time(self, digest: bytes) -> bool:
        if digest in self._seen:
            self._seen.move_to_end(digest)
            return False
        self._seen[digest] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True
