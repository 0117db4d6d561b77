"""`compute` with an update that overflows the model's float16: left out, listed, never fatal.

The attacker compresses its delta with the node's own PowerSGD and bundles it with the node's
own code; the committed policy's norm bound is loose enough to let it through. The review must
record it beside the other left-out updates, in the same (node, reason) form the node's state
and log read, and propose the model the honest updates make alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from eth_utils.address import to_checksum_address

from flare.node.compress import PowerSGDConfig, bundle_bytes, compress
from flare.node.review import Computed, compute
from flare.protocol.aggregate import Rule
from flare.protocol.cid import decode_cid, encode_cid
from flare.protocol.committee import Submission, next_model
from flare.protocol.errors import FlareError
from flare.protocol.events import UpdateSubmitted
from flare.protocol.model import GlobalModel, ModelMeta, read_model, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.policy import ReviewPolicy
from flare.protocol.rounds import Phase, RoundInfo
from flare.protocol.unixfs import file_cid

SPEC = ModelSpec.from_shapes({"layer.weight": (24, 16), "layer.bias": (16,)}, dtype="float16")
POWER_SGD = PowerSGDConfig(rank=2, power_iterations=2)
POLICY = ReviewPolicy(rule=Rule("fedavg"), norm_bound=1e7, sample_cap=1000)  # a loose bound
SEED = b"\x07" * 32


class MemoryStore:
    """The two calls `compute` makes of a BlobStore, over a dict, verifying CIDs on read."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes, *, pin: bool = True) -> str:
        cid = file_cid(data).text
        self.blobs[cid] = data
        return cid

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        if cid not in self.blobs:
            raise FlareError(f"{cid} is not in the store")
        data = self.blobs[cid]
        if max_bytes is not None and len(data) > max_bytes:
            raise FlareError(f"{cid} is larger than {max_bytes} bytes")
        assert file_cid(data).text == cid
        return data


class FixedLoss:
    """A trainer whose held-out loss is the same for every model: the acceptance test passes."""

    def evaluate(self, model: GlobalModel) -> float:
        return 1.0


def node(i: int) -> str:
    return to_checksum_address("0x" + f"{i + 1:02x}" * 20)


def info(policy_cid: str) -> RoundInfo:
    return RoundInfo(
        round=1, phase=Phase.REVIEW, seed=SEED, base_round=0, opened_at=0, claim_end=60,
        train_end=600, review_start=600, review_end=1200, committee_size=3, quorum=2,
        min_updates=2, max_samples=1000, eligible_nodes=5, update_count=5, seat_count=3,
        proposal_count=0, finalized_proposal=0, vrf_accumulator=b"\x00" * 32,
        review_policy=decode_cid(policy_cid),
    )  # fmt: skip


def update(
    store: MemoryStore, i: int, base_cid: str, delta: dict[str, torch.Tensor], round_number: int = 1
) -> UpdateSubmitted:
    """Compress and bundle `delta` as node i does, store it, and register it."""
    compressed, _ = compress(delta, SPEC, POWER_SGD, None, seed=SEED)
    data = bundle_bytes(
        compressed, SPEC, round_number=round_number, node=node(i), base_model=base_cid,
        num_samples=10,
    )  # fmt: skip
    cid = store.put(data)
    return UpdateSubmitted(
        block=10 + i, log_index=0, tx_hash=bytes(32), round=1, node=node(i),
        cid=decode_cid(cid), num_samples=10,
    )  # fmt: skip


def small(i: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(i)
    return {p.name: torch.randn(p.shape, generator=generator) * 0.01 for p in SPEC.params}


def test_an_overflowing_update_is_listed_with_the_other_left_out_ones() -> None:
    store = MemoryStore()
    weights: dict[str, Any] = {p.name: np.zeros(p.shape, np.float16) for p in SPEC.params}
    base_bytes = write_model(ModelMeta.genesis(SPEC), SPEC, weights)
    base_cid = store.put(base_bytes)
    base = read_model(base_bytes, SPEC)
    policy_cid = store.put(POLICY.to_bytes())
    huge = small(3) | {"layer.weight": torch.full((24, 16), 1e5)}  # rank 1: PowerSGD keeps it
    events = [
        update(store, 0, base_cid, small(0)),
        update(store, 3, base_cid, huge),
        update(store, 1, base_cid, small(1)),
        update(store, 2, base_cid, small(2), round_number=7),  # an ordinary bad update
    ]

    computed = compute(store, FixedLoss(), info(policy_cid), base, base_cid, events)

    assert computed.included == (node(0), node(1))
    reasons = dict(computed.rejected)
    assert set(reasons) == {node(2), node(3)}
    assert reasons[node(3)].startswith("layer.weight overflows float16: its delta reaches")
    assert "built for round 7" in reasons[node(2)]
    assert computed.accepted
    rest = [
        Submission(e.node, e.cid, e.num_samples, store.blobs[encode_cid(e.cid)])
        for e in (events[0], events[2])
    ]
    alone = next_model(base, base_cid, 1, rest, POLICY)
    assert computed.model_cid == file_cid(alone.model).text  # the bytes the rest alone make
    record = computed.outcome()  # what the node's state keeps and its log prints
    assert sorted(record["rejected"]) == sorted([n, why] for n, why in reasons.items())
    assert Computed.from_outcome(record) == computed
