"""Gossip messages: signed, bound to one deployment and round, small, and never accepted twice."""

from __future__ import annotations

import json
from typing import Any

import nacl.signing
import pytest

from flare.protocol import gossip as wire

CHAIN = 31337
CONTRACT = "0x" + "ab" * 20
NODE = "0x" + "cd" * 20
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
SIGNER = nacl.signing.SigningKey(b"\x07" * 32)
PEER_KEYS = {NODE: bytes(SIGNER.verify_key)}


def message(**over: Any) -> bytes:
    fields: dict[str, Any] = {
        "chain_id": CHAIN,
        "contract": CONTRACT,
        "round": 4,
        "node": NODE,
        "sent": 1_000,
        "body": wire.update_body(CID),
        "secret_key": bytes(SIGNER),
    }
    kind = over.pop("kind", "update")
    fields.update(over)
    return wire.encode(kind, **fields)


def verify(data: bytes, **over: Any) -> wire.Announcement:
    fields: dict[str, Any] = {
        "chain_id": CHAIN,
        "contract": CONTRACT,
        "current_round": 4,
        "now": 1_000,
        "peer_key_of": PEER_KEYS.get,
    }
    fields.update(over)
    return wire.verify(data, **fields)


def rejected(data: bytes, **over: Any) -> str:
    with pytest.raises(wire.GossipRejectedError) as caught:
        verify(data, **over)
    assert caught.value.message.startswith("gossip message dropped")
    return caught.value.reason


def test_a_signed_message_verifies_and_says_what_was_sent() -> None:
    said = verify(message())
    assert (said.kind, said.round, said.node, said.cid) == ("update", 4, NODE, CID)
    proposal = verify(message(kind="proposal", body=wire.proposal_body(2, CID)))
    assert proposal.body == {"proposal": 2, "cid": CID}
    assert verify(message(kind="alive", body=wire.alive_body("TRAINING"))).body["phase"] == (
        "TRAINING"
    )


def test_the_contract_address_case_does_not_matter() -> None:
    assert verify(message(contract=CONTRACT.upper().replace("0X", "0x"))).contract == CONTRACT


def test_a_forged_signature_is_refused() -> None:
    other = nacl.signing.SigningKey(b"\x08" * 32)
    assert rejected(message(secret_key=bytes(other))) == "bad-signature"


def test_a_tampered_message_is_refused() -> None:
    outer = json.loads(message())
    outer["m"]["round"] = 5  # the signature covered round 4
    assert rejected(json.dumps(outer).encode()) == "bad-signature"
    outer = json.loads(message())
    outer["m"]["body"]["cid"] = "bafkreiaaaq5dnvxrvr2r2yjlzdbpmuevwsrlgc4vwnvkhuqh7aq5aenb4y"
    assert rejected(json.dumps(outer).encode()) in ("bad-signature", "malformed")


def test_a_signature_from_another_protocol_never_verifies() -> None:
    """The domain tag: the same key signing the bare payload elsewhere gives no gossip."""
    outer = json.loads(message())
    payload = json.dumps(outer["m"], sort_keys=True, separators=(",", ":")).encode()
    outer["sig"] = SIGNER.sign(payload).signature.hex()
    assert rejected(json.dumps(outer).encode()) == "bad-signature"


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"chain_id": CHAIN + 1}, "wrong-deployment"),  # a fork or another chain
        ({"contract": "0x" + "ef" * 20}, "wrong-deployment"),  # another deployment
        ({"current_round": 6}, "stale"),  # round 4 is two behind
        ({"current_round": 2}, "future"),  # round 4 is two ahead
        ({"now": 1_000 - wire.MAX_CLOCK_SKEW - 1}, "future"),  # sent from the future
        ({"peer_key_of": {}.get}, "unknown-sender"),  # not a registered node
    ],
)
def test_messages_bound_elsewhere_or_elsewhen_are_refused(
    over: dict[str, Any], reason: str
) -> None:
    assert rejected(message(), **over) == reason


def test_the_previous_round_is_still_heard() -> None:
    assert verify(message(), current_round=5).round == 4


def test_a_re_encoded_message_has_the_same_digest() -> None:
    """Replays are recognised by what was signed, not by the bytes that carried it."""
    data = message()
    outer = json.loads(data)
    spaced = json.dumps({"sig": outer["sig"].upper(), "m": outer["m"]}, indent=1).encode()
    assert spaced != data
    assert verify(spaced).digest() == verify(data).digest()


def test_old_messages_are_stale() -> None:
    assert rejected(message(sent=1_000 - wire.MAX_AGE - 1)) == "stale"


@pytest.mark.parametrize(
    "data",
    [
        b"[" * (wire.MAX_MESSAGE_BYTES - 1),  # nested deeper than the parser's recursion limit
        b"{" * 1500,
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"m": {}, "sig": "00"}',
        json.dumps({"m": {"v": 1}, "sig": "00" * 64}).encode(),
    ],
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    assert rejected(data) == "malformed"


def test_unknown_fields_kinds_and_bodies_are_refused() -> None:
    for edit in (
        lambda m: m.update(extra=1),
        lambda m: m.update(kind="vote"),
        lambda m: m["body"].update(extra=1),
        lambda m: m.update(round=-1),
        lambda m: m.update(round=True),
        lambda m: m.update(node="0xnot-an-address"),
        lambda m: m["body"].update(cid="QmNotCanonical"),
        lambda m: m.update(kind="alive", body={"phase": "\x1b]0;owned\x07"}),  # not a phase
    ):
        outer = json.loads(message())
        edit(outer["m"])
        assert rejected(json.dumps(outer).encode()) == "malformed"


def test_another_version_is_named() -> None:
    outer = json.loads(message())
    outer["m"]["v"] = 2
    assert rejected(json.dumps(outer).encode()) == "version"


def test_oversized_messages_are_refused_before_parsing() -> None:
    assert rejected(b"{" + b" " * wire.MAX_MESSAGE_BYTES + b"}") == "oversized"
    with pytest.raises(ValueError, match="exceeds"):
        message(kind="alive", body={"phase": "x" * wire.MAX_MESSAGE_BYTES})


def test_a_replay_is_seen_and_the_window_is_bounded() -> None:
    seen = wire.SeenWindow(size=2)
    first, second, third = (verify(message(sent=t)).digest() for t in (998, 999, 1000))
    assert seen.first_time(first)
    assert not seen.first_time(first)
    assert seen.first_time(second)
    assert seen.first_time(third)  # `first` falls out of a window of 2
    assert seen.first_time(first)


def test_topics_separate_deployments() -> None:
    assert wire.topic(1, CONTRACT) != wire.topic(2, CONTRACT)
    assert wire.topic(1, CONTRACT) == wire.topic(1, CONTRACT.upper().replace("0X", "0x"))
