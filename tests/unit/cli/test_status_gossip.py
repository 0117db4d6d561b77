"""`flare-node status` shows the node's peer id and what its running gossip layer last saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from flare.cli import status
from flare.node.gossip.libp2p import peer_id_of
from flare.node.state import NodeState

PEER_KEY = bytes(nacl.signing.SigningKey(b"\x05" * 32).verify_key)
VIEW = {
    "address": "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWSelf",
    "connected": [{"peer_id": "12D3KooWA", "addr": None}, {"peer_id": "12D3KooWB", "addr": None}],
    "live": [{"node": "0xaa", "round": 3, "phase": "TRAINING", "ago": 2.5}],
    "heard": 7,
    "published": 4,
    "rejected": {"bad-signature": 2},
}


def report(gossip: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": "0xNode", "registered": True, "contract": "0xC", "chain_id": 1, "round": 0,
        "balance_wei": 10**18, "balance_covers_next_round": True, "round_cost_wei": 10**15,
        "steps_done": [], "last_errors": [], "gossip": gossip,
    }  # fmt: skip


def test_the_noted_view_is_shown_with_its_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with NodeState(tmp_path / "state") as state:
        assert state.gossip() is None
        state.note_gossip(VIEW)
        noted = state.gossip()
    assert noted is not None
    assert noted[1] == VIEW
    shown = status._gossip(PEER_KEY, noted)
    assert shown["peer_id"] == peer_id_of(PEER_KEY)
    assert shown["age_seconds"] >= 0
    assert shown["live"] == VIEW["live"]

    status._print(report(shown))
    out = capsys.readouterr().out
    assert f"gossip      {VIEW['address']} (as of" in out
    assert "peers       2 connected; live nodes: 0xaa (round 3 TRAINING, 2.5s ago)" in out
    assert "dropped     2 bad-signature" in out


def test_without_gossip_the_peer_id_is_still_shown(capsys: pytest.CaptureFixture[str]) -> None:
    shown = status._gossip(PEER_KEY, None)
    assert shown == {"peer_id": peer_id_of(PEER_KEY)}
    status._print(report(shown))
    assert f"peer id {peer_id_of(PEER_KEY)}; no gossip seen" in capsys.readouterr().out
