"""A node's side of a round with a real tiny SmolVLA: genesis, loading a model, an update."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from flare_testing import cid_of

from flare.node.federation import genesis_model, load_model, local_update
from flare.node.train.dataset import DatasetSource
from flare.node.train.local import TrainOptions
from flare.node.train.policy import LoadedPolicy
from flare.protocol.aggregate import Rule
from flare.protocol.bundle import read_bundle
from flare.protocol.cid import decode_cid
from flare.protocol.committee import Submission, next_model
from flare.protocol.errors import ConfigError
from flare.protocol.model import GlobalModel, ModelMeta, read_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.policy import ReviewPolicy

NODE = "0x" + "ab" * 20


def test_the_genesis_model_holds_the_trainable_weights_exactly(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    loaded = fresh_policy()

    model = read_model(genesis_model(loaded), loaded.spec)

    assert model.meta == ModelMeta.genesis(loaded.spec)
    for name, parameter in loaded.trainable().items():
        np.testing.assert_array_equal(model.weights[name], parameter.detach().float().numpy())


def test_loading_a_model_sets_every_trainable_weight(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    source, target = fresh_policy(), fresh_policy()  # same spec: same frozen weights
    model = read_model(genesis_model(source), source.spec)
    with torch.no_grad():
        for parameter in target.trainable().values():
            parameter.mul_(0.5).add_(0.25)

    load_model(target, model)

    for a, b in zip(source.trainable().values(), target.trainable().values(), strict=True):
        assert torch.equal(a, b)


def test_a_model_of_another_spec_is_refused(fresh_policy: Callable[..., LoadedPolicy]) -> None:
    loaded = fresh_policy()
    other = ModelSpec.from_shapes({"w": (2, 2)})
    model = GlobalModel(ModelMeta.genesis(other), other, {"w": np.zeros((2, 2), np.float32)})

    with pytest.raises(ConfigError, match="the model is for spec"):
        load_model(loaded, model)


def test_an_update_trains_from_the_base_and_aggregates_into_a_new_model(
    fresh_policy: Callable[..., LoadedPolicy], synth_source: DatasetSource
) -> None:
    loaded = fresh_policy()
    genesis = genesis_model(loaded)
    base, base_cid = read_model(genesis, loaded.spec), cid_of(genesis)
    with torch.no_grad():  # the update must start from the base, whatever the policy held
        next(iter(loaded.trainable().values())).add_(1.0)

    update = local_update(
        loaded, base, base_cid, synth_source, TrainOptions(steps=3, batch_size=4),
        round_number=1, node=NODE, seed=b"\x07" * 32,
    )  # fmt: skip

    bundle = read_bundle(update.bundle, loaded.spec)
    assert (bundle.meta.round, bundle.meta.base_model) == (1, base_cid)
    assert bundle.meta.num_samples == update.metrics.samples == 12
    assert bundle.meta.metrics["steps"] == 3
    assert update.state.q  # PowerSGD's warm start is carried to the next round
    proposal = next_model(
        base, base_cid, 1,
        [Submission(NODE, decode_cid(cid_of(update.bundle)), 12, update.bundle)],
        ReviewPolicy(rule=Rule("fedavg"), norm_bound=1e6, sample_cap=1000),
    )  # fmt: skip
    child = read_model(proposal.model, loaded.spec)
    assert proposal.included == (bundle.meta.node,)
    assert child.meta.parent == base_cid
    moved = [float(np.abs(child.weights[name] - base.weights[name]).max()) for name in base.weights]
    assert max(moved) > 0  # the base was moved by the update ...
    assert max(moved) < 1.0  # ... and not by the +1 the policy held before loading the base
