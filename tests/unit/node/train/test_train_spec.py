"""The model spec hash: stable across machines, sensitive to everything that must match."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from flare.node.train.backbone import config_digest as backbone_digest
from flare.node.train.dataset import DatasetSource, open_metadata
from flare.node.train.errors import SpecMismatchError
from flare.node.train.policy import (
    LoadedPolicy,
    check_spec,
    load_policy,
    new_policy,
    save_policy,
)
from flare.node.train.spec import (
    BACKBONE_FORMAT,
    config_digest,
    frozen_digest,
    model_spec,
)
from flare.protocol.modelspec import ModelSpec


def test_same_build_same_spec_and_it_survives_save_and_load(
    fresh_policy: Callable[..., LoadedPolicy], tmp_path: Path
) -> None:
    first, second = fresh_policy(seed=1), fresh_policy(seed=1)

    reloaded = load_policy(save_policy(first, tmp_path / "checkpoint"), device="cpu")

    assert first.spec.hash == second.spec.hash == reloaded.spec.hash
    assert len(first.spec.hash) == 32


def test_the_spec_lists_exactly_the_trainable_layout(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    loaded = fresh_policy()

    spec = loaded.spec

    trainable = loaded.trainable()
    assert spec.names == tuple(trainable)
    assert [p.shape for p in spec.params] == [tuple(t.shape) for t in trainable.values()]
    assert {p.dtype for p in spec.params} == {"float32"}
    assert spec.backbone.startswith(BACKBONE_FORMAT + ";config=")


def test_the_hash_is_recomputable_without_torch_from_layout_and_digests(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    loaded = fresh_policy()
    layout = [(p.name, p.shape, p.dtype) for p in loaded.spec.params]

    rebuilt = model_spec(layout, config_digest(loaded), frozen_digest(loaded))
    parsed = ModelSpec.from_json(loaded.spec.canonical_json())

    assert rebuilt.hash == parsed.hash == loaded.spec.hash


def test_other_frozen_weights_give_another_spec(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    a, b = fresh_policy(seed=1), fresh_policy(seed=2)  # different random frozen backbones

    assert a.spec.names == b.spec.names
    assert a.spec.hash != b.spec.hash


def test_normalization_statistics_are_part_of_the_frozen_state(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    loaded = fresh_policy()
    before = frozen_digest(loaded)
    normalizer = next(s for s in loaded.preprocessor.steps if type(s).__name__.startswith("Norm"))

    # The statistics the step normalizes with (what its state_dict saves).
    normalizer._tensor_stats["observation.state"]["mean"] += 1.0

    assert frozen_digest(loaded) != before


def test_an_architecture_setting_changes_the_spec(
    tiny_backbone: Path, synth_source: DatasetSource, fresh_policy: Callable[..., LoadedPolicy]
) -> None:
    meta = open_metadata(synth_source)
    shorter = new_policy(
        tiny_backbone, meta, preset="tiny", device="cpu", seed=0,
        overrides={"chunk_size": 5, "n_action_steps": 5},
    )  # fmt: skip

    assert shorter.spec.names == fresh_policy().spec.names  # same tensors ...
    assert shorter.spec.hash != fresh_policy().spec.hash  # ... but another trained function


def test_a_base_model_of_another_spec_is_refused(
    fresh_policy: Callable[..., LoadedPolicy], tmp_path: Path
) -> None:
    deployed = fresh_policy(seed=1).spec.hash
    other = save_policy(fresh_policy(seed=2), tmp_path / "other")

    with pytest.raises(SpecMismatchError, match="the deployment expects") as caught:
        load_policy(other, device="cpu", expected_spec=deployed)

    assert caught.value.expected == deployed
    assert deployed.hex() in str(caught.value)
    check_spec(load_policy(other, device="cpu"), caught.value.actual, what="same")


def test_backbone_digest_ignores_the_writer_version(tiny_backbone: Path, tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_backbone, copy)
    config = json.loads((copy / "config.json").read_text())
    config["transformers_version"] = "0.0.0"
    (copy / "config.json").write_text(json.dumps(config, indent=7))

    assert backbone_digest(copy) == backbone_digest(tiny_backbone)
    config["text_config"]["rms_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    assert backbone_digest(copy) != backbone_digest(tiny_backbone)


def test_trainable_weights_do_not_change_the_spec(
    fresh_policy: Callable[..., LoadedPolicy],
) -> None:
    loaded = fresh_policy()
    before = loaded.spec.hash
    with torch.no_grad():
        for parameter in loaded.trainable().values():
            parameter.add_(1.0)

    loaded._spec = None  # recompute

    assert loaded.spec.hash == before
