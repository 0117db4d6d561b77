"""Session fixtures: one tiny backbone, one synthetic dataset and one short training run.

Building these takes seconds; every test that only reads them shares them. Tests that train
or mutate a policy build their own from `fresh_policy` (about half a second).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable
from pathlib import Path

import pytest
from train_support import BATCH, STEPS, SYNTH, TrainedRun, held_out_loss

from flare.node.train.backbone import resolve_backbone
from flare.node.train.dataset import DatasetSource, open_metadata, split_episodes
from flare.node.train.local import TrainOptions, train_local
from flare.node.train.policy import LoadedPolicy, new_policy
from flare.node.train.synth import write_synth_dataset


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve_backbone("tiny", tmp_path_factory.mktemp("backbones"))


@pytest.fixture(scope="session")
def synth_source(tmp_path_factory: pytest.TempPathFactory) -> DatasetSource:
    root = tmp_path_factory.mktemp("synth") / "so100"
    write_synth_dataset(root, SYNTH)
    return DatasetSource(root)


@pytest.fixture(scope="session")
def episode_split(synth_source: DatasetSource) -> tuple[list[int], list[int]]:
    return split_episodes(open_metadata(synth_source), held_out=0.25)


@pytest.fixture(scope="session")
def fresh_policy(tiny_backbone: Path, synth_source: DatasetSource) -> Callable[..., LoadedPolicy]:
    """Build a new tiny policy for the synthetic dataset (same seed, same weights)."""
    meta = open_metadata(synth_source)

    def build(seed: int = 0) -> LoadedPolicy:
        return new_policy(tiny_backbone, meta, preset="tiny", device="cpu", seed=seed)

    return build


@pytest.fixture(scope="session")
def trained_run(
    fresh_policy: Callable[..., LoadedPolicy],
    synth_source: DatasetSource,
    episode_split: tuple[list[int], list[int]],
) -> TrainedRun:
    train_episodes, eval_episodes = episode_split
    loaded = fresh_policy()
    start = {n: p.detach().clone() for n, p in loaded.trainable().items()}
    before = held_out_loss(loaded, synth_source, eval_episodes)
    result = train_local(
        loaded,
        synth_source,
        TrainOptions(steps=STEPS, batch_size=BATCH, seed=0),
        episodes=train_episodes,
    )
    after = held_out_loss(loaded, synth_source, eval_episodes)
    return TrainedRun(dict(start), loaded, result, before, after)
