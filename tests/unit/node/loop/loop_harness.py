"""A federation of node loops with twin trainers on the in-process EVM, for the loop tests.

One deployment per test session: four members register their BLS keys once (each
registration checks a pairing in pure Python) and the chain is snapshotted; every test starts
from that snapshot, opens round 1, and uses fresh node state and trainer directories. The store
is shared, like a network everybody pins to.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing
import numpy as np
from web3 import Web3

from flare.chain.connect import connect
from flare.chain.deploy import deploy
from flare.chain.devchain import advance_time, dev_account_key
from flare.chain.ledger import Web3Ledger
from flare.node.chatter import Chatter
from flare.node.cohort import Cohort
from flare.node.round import Acted, Identity, NodeLoop, Retention, Wait
from flare.node.state import NodeState
from flare.node.store.embedded import EmbeddedStore
from flare.node.train.twin import TwinTrainer
from flare.protocol import bls, vrf
from flare.protocol.aggregate import Rule
from flare.protocol.cid import decode_cid
from flare.protocol.model import ModelMeta, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.policy import ReviewPolicy
from flare.protocol.ports import Gossip
from flare.protocol.rounds import Phase, RoundConfig, address_bytes
from flare.protocol.store import BlobStore

SPEC = ModelSpec.from_shapes({"layer.weight": (24, 16), "layer.bias": (16,)})
MEMBERS = 4
CONFIG = {
    "committee_size": 3,
    "quorum_bps": 6000,
    "train_window": 600,
    "review_window": 600,
    "min_claim_window": 60,
    "min_updates": 2,
    "max_samples": 1000,
}
POLICY = ReviewPolicy(rule=Rule("fedavg"), norm_bound=100.0, sample_cap=1000)


@dataclass
class Member:
    index: int
    key: bytes
    secret: bytes
    address: str
    peer_secret: bytes  # the ed25519 seed whose public key the member registered


@dataclass
class Federation:
    """The session's deployment; `loops` builds fresh loops for one test."""

    w3: Web3
    address: str
    block: int
    owner: Web3Ledger
    store: EmbeddedStore
    genesis: str
    members: list[Member]
    snapshot: list[Any] = field(default_factory=list)

    def reset(self) -> None:
        """Back to the snapshot, then open round 1 (the same seed every time: reproducible).

        eth-tester executes with prevrandao 0 but records a random mixHash, and replays blocks
        with it when it reverts: a snapshot after `start()` would not replay to the same state.
        """
        tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]
        tester.revert_to_snapshot(self.snapshot[0])
        self.owner.start()

    def loop(
        self,
        member: Member,
        home: Path,
        *,
        faults: Iterable[str] = (),
        store: BlobStore | None = None,
        ledger: Any = None,
        log: list[str] | None = None,
        bls_secret: bytes | None = None,
        retention: Retention | None = None,
        gossip: Gossip | None = None,
    ) -> NodeLoop:
        state = NodeState(home / "state")
        chain = ledger or Web3Ledger(self.w3, self.address, private_key=member.key, journal=state)
        trainer = TwinTrainer.for_node(SPEC, member.index, home / "trainer", faults=set(faults))
        return NodeLoop(
            chain,
            store or self.store,
            trainer,
            Identity(member.address, bls_secret or member.secret),
            state,
            from_block=self.block,
            log=None if log is None else log.append,
            retention=retention,
            chatter=None
            if gossip is None
            else Chatter(
                gossip,
                chain,
                node=member.address,
                peer_secret=member.peer_secret,
                clock=lambda: float(self.owner.timestamp()),
            ),
        )

    def cohort(
        self, loops: list[NodeLoop], trace: list[tuple[int, Acted | Wait]] | None = None
    ) -> Cohort:
        def record(index: int, result: Acted | Wait) -> None:
            if trace is not None:
                trace.append((index, result))

        return Cohort(
            loops,
            now=self.owner.timestamp,
            advance=lambda seconds: advance_time(self.w3, seconds),
            on_step=record,
        )

    def until_round(self, r: int) -> Callable[[], bool]:
        return lambda: self.owner.current_round() >= r

    def until_phase(self, r: int, phase: Phase) -> Callable[[], bool]:
        return lambda: self.owner.phase(r) is phase


def member_secret(index: int) -> bytes:
    """A fixed BLS key per member: seats, and so every test's committee, are reproducible."""
    digest = hashlib.sha256(f"loop-member/{index}".encode()).digest()
    return (int.from_bytes(digest, "big") % (bls.ORDER - 1) + 1).to_bytes(32, "big")


def member_peer_secret(index: int) -> bytes:
    return hashlib.sha256(f"loop-peer/{index}".encode()).digest()


def build(root: Path) -> Federation:
    w3 = connect(f"eth-tester://loops-{uuid.uuid4().hex[:8]}")
    chain_id = int(w3.eth.chain_id)
    store = EmbeddedStore(root / "store")
    rng = np.random.default_rng(0)
    weights = {p.name: rng.standard_normal(p.shape).astype(np.float32) for p in SPEC.params}
    genesis = store.put(write_model(ModelMeta.genesis(SPEC), SPEC, weights))
    policy_cid = store.put(POLICY.to_bytes())
    record, owner = deploy(
        w3,
        dev_account_key(chain_id, 0),
        model_spec_hash=SPEC.hash,
        genesis_model=decode_cid(genesis),
        config=RoundConfig(**CONFIG, review_policy=decode_cid(policy_cid)),
        allowlist=False,
    )
    members = []
    for i in range(1, MEMBERS + 1):
        key = dev_account_key(chain_id, i)
        ledger = Web3Ledger(w3, record.address, private_key=key)
        secret = member_secret(i)
        address = str(ledger.account)
        possession = vrf.prove_possession(
            secret, chain_id, address_bytes(record.address), address_bytes(address)
        )
        peer_secret = member_peer_secret(i)
        peer_key = bytes(nacl.signing.SigningKey(peer_secret).verify_key)
        ledger.register(vrf.public_key(secret), possession, peer_key)
        members.append(Member(i, key, secret, address, peer_secret))
    federation = Federation(w3, record.address, record.block, owner, store, genesis, members)
    federation.snapshot.append(w3.provider.ethereum_tester.take_snapshot())  # type: ignore[attr-defined]
    return federation


class Proxy:
    """Passes every call to `inner` except the ones a subclass overrides."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def acted(
    trace: list[tuple[int, Acted | Wait]], what: str, index: int | None = None
) -> list[Acted]:
    """The actions named `what` in a trace (of loop `index`, or of all)."""
    return [
        result
        for i, result in trace
        if isinstance(result, Acted) and result.what == what and (index is None or i == index)
    ]
