"""Full-size SmolVLA (SmolVLM2-500M architecture) trains, saves and reloads on a CPU, offline.

Slow (about a minute here, several GiB of memory): `make test-slow`. The backbone has random
weights, so only the shapes and the mechanics are checked here, not what the policy learns.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest

from flare.node.train.backbone import SMOLVLM2_500M, resolve_backbone
from flare.node.train.dataset import DatasetSource, open_metadata
from flare.node.train.local import TrainOptions, train_local
from flare.node.train.policy import load_policy, new_policy, save_policy
from flare.node.train.synth import SynthOptions, write_synth_dataset

TRAINABLE_TENSORS = 155
TRAINABLE_VALUES = 99_880_992


@pytest.mark.slow
def test_full_size_policy_trains_and_its_checkpoint_reloads_elsewhere(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synth_dataset(data, SynthOptions(episodes=2, frames=20, use_videos=False))
    source = DatasetSource(data)
    backbone = resolve_backbone(SMOLVLM2_500M, tmp_path / "backbones")
    loaded = new_policy(backbone, open_metadata(source), preset="smolvla", device="cpu")
    spec = loaded.spec

    result = train_local(loaded, source, TrainOptions(steps=2, batch_size=1, mu=0.01))

    assert len(result.delta) == TRAINABLE_TENSORS
    assert sum(t.numel() for t in result.delta.values()) == TRAINABLE_VALUES
    assert spec.numel == TRAINABLE_VALUES
    assert result.metrics.samples == 2
    assert all(t.isfinite().all() for t in result.delta.values())

    saved = save_policy(loaded, tmp_path / "a" / "checkpoint")
    moved = tmp_path / "b" / "checkpoint"
    moved.parent.mkdir()
    saved.rename(moved)
    reloaded = load_policy(moved, device="cpu", expected_spec=spec.hash)
    assert reloaded.spec.hash == spec.hash
