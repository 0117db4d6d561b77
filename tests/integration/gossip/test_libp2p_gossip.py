"""Real py-libp2p gossipsub hosts on 127.0.0.1: discovery, delivery, restarts, bad settings.

Each host runs on its own trio thread behind the synchronous port the node loop uses. Waiting
is on conditions (a message arrived, a peer connected), each with a bound; the bounds are
generous because gossipsub's mesh forms on its heartbeat.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nacl.signing
import pytest

from flare.node.gossip.libp2p import GossipStartError, Libp2pGossip, peer_id_of
from flare.protocol.errors import ConfigError

TOPIC = "/flare/1/31337/0x" + "ab" * 20
BOUND = 30.0  # seconds: a bound on a hang, never a synchronization


def eventually(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {BOUND:g} s: {what}")
        time.sleep(0.05)


def key(i: int) -> bytes:
    return bytes(nacl.signing.SigningKey(bytes([i + 1]) * 32))


@pytest.fixture
def hosts() -> Iterator[list[Libp2pGossip]]:
    started: list[Libp2pGossip] = []
    yield started
    for host in started:
        host.close()


def start(hosts: list[Libp2pGossip], i: int, **kwargs: object) -> Libp2pGossip:
    kwargs.setdefault("listen", "/ip4/127.0.0.1/tcp/0")
    host = Libp2pGossip(secret_key=key(i), topic=TOPIC, **kwargs)  # type: ignore[arg-type]
    hosts.append(host)
    return host


def delivered(sender: Libp2pGossip, receivers: list[Libp2pGossip], data: bytes) -> None:
    """Publish until every receiver has `data` (a mesh still forming may miss the first);
    the sender itself never gets its own message back."""
    got: dict[int, list[bytes]] = {id(r): [] for r in receivers}
    echoed: list[bytes] = []

    def arrived() -> bool:
        sender.publish(data)
        echoed.extend(sender.receive())
        for r in receivers:
            got[id(r)] += r.receive()
        return all(data in messages for messages in got.values())

    eventually(arrived, f"{data!r} reaching every peer")
    # One more after delivery: by the time it reached every peer, an echo would be back too.
    last = data + b" (last)"
    got = {id(r): [] for r in receivers}
    sender.publish(last)

    def last_arrived() -> bool:
        for r in receivers:
            got[id(r)] += r.receive()
        return all(last in messages for messages in got.values())

    eventually(last_arrived, "the last copy delivered")
    echoed.extend(sender.receive())
    assert data not in echoed
    assert last not in echoed


def test_hosts_on_one_machine_find_each_other_through_the_peers_dir(
    hosts: list[Libp2pGossip], tmp_path: Path
) -> None:
    peers = tmp_path / "peers"
    a, b, c = (start(hosts, i, peers_dir=peers) for i in range(3))

    # Identity: the libp2p id is the one derived from the registered ed25519 key.
    assert a.peer_id == peer_id_of(bytes(nacl.signing.SigningKey(key(0)).verify_key))
    assert a.address.startswith("/ip4/127.0.0.1/tcp/")
    assert a.address.endswith(a.peer_id)
    assert sorted(p.stem for p in peers.glob("*.addr")) == sorted(h.peer_id for h in hosts)
    eventually(lambda: all(len(h.peers()) == 2 for h in hosts), "every host connected to two")
    assert {p.peer_id for p in a.peers()} == {b.peer_id, c.peer_id}

    delivered(a, [b, c], b"from a")
    delivered(c, [a, b], b"from c")

    a.close()
    assert not (peers / f"{a.peer_id}.addr").exists()  # a stopped host leaves no stale address


def test_a_bootstrap_address_joins_a_peer_and_a_restarted_peer_rejoins(
    hosts: list[Libp2pGossip], tmp_path: Path
) -> None:
    a = start(hosts, 0)
    b = start(hosts, 1, bootstrap=[a.address])
    eventually(lambda: [p.peer_id for p in a.peers()] == [b.peer_id], "b dialled a")
    delivered(b, [a], b"hello a")

    # a dies and comes back on the same port with the same key: b dials it again by itself.
    port = a.address.split("/tcp/")[1].split("/")[0]
    a.close()
    eventually(lambda: b.peers() == [], "b noticed a is gone")
    again = start(hosts, 0, listen=f"/ip4/127.0.0.1/tcp/{port}")
    assert again.peer_id == a.peer_id
    eventually(lambda: [p.peer_id for p in again.peers()] == [b.peer_id], "b redialled a")
    delivered(again, [b], b"back")


def test_a_taken_port_fails_the_start_naming_it(hosts: list[Libp2pGossip]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GossipStartError) as caught:
            start(hosts, 0, listen=f"/ip4/127.0.0.1/tcp/{port}")
    assert f"/tcp/{port}" in caught.value.message
    assert "[gossip] listen" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"listen": "not-a-multiaddr"}, "[gossip] listen"),
        ({"bootstrap": ["/ip4/127.0.0.1/tcp/4001"]}, "does not name the peer"),
        ({"bootstrap": ["/ip4/999.1.1.1/tcp/1/p2p/x"]}, "[gossip] bootstrap entry"),
        ({"announce": "dns4/no-leading-slash"}, "[gossip] announce"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(
    hosts: list[Libp2pGossip], kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        start(hosts, 0, **kwargs)
    assert named in caught.value.message
    assert caught.value.hint


def test_unreadable_peer_files_are_skipped(hosts: list[Libp2pGossip], tmp_path: Path) -> None:
    peers = tmp_path / "peers"
    peers.mkdir()
    (peers / "junk.addr").write_text("this is not an address\n")
    (peers / "half.addr").write_text("/ip4/127.0.0.1/tcp/")
    a, b = start(hosts, 0, peers_dir=peers), start(hosts, 1, peers_dir=peers)
    eventually(lambda: [p.peer_id for p in a.peers()] == [b.peer_id], "a and b connected")
