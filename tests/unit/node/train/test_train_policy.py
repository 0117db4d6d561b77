"""Checkpoints are self-contained: they reload elsewhere, under another path, identically."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from train_support import predict, raw_batch

from flare.node.atomic import DirectoryNotReplaceableError
from flare.node.train.backbone import resolve_backbone
from flare.node.train.dataset import DatasetSource, open_metadata
from flare.node.train.errors import PolicyNotFoundError
from flare.node.train.policy import (
    BACKBONE_DIR,
    LoadedPolicy,
    check_checkpoint_target,
    is_checkpoint,
    load_policy,
    save_policy,
    select_device,
)
from flare.node.train.synth import SynthOptions, write_synth_dataset


@pytest.fixture
def moved_checkpoint(
    tmp_path: Path, fresh_policy: Callable[..., LoadedPolicy]
) -> tuple[LoadedPolicy, Path]:
    """A policy on its own backbone copy, saved, moved elsewhere, the original backbone gone."""
    backbone = resolve_backbone("tiny", tmp_path / "machine-a")
    original = fresh_policy(seed=5)
    original.backbone_dir = backbone
    with torch.no_grad():  # make the trainable weights differ from any fresh build
        for parameter in original.trainable().values():
            parameter.add_(0.01)
    saved = save_policy(original, tmp_path / "machine-a" / "checkpoint")
    moved = tmp_path / "machine-b" / "elsewhere"
    moved.parent.mkdir()
    shutil.move(str(saved), str(moved))
    shutil.rmtree(tmp_path / "machine-a")
    return original, moved


def test_reload_elsewhere_gives_identical_predictions(
    moved_checkpoint: tuple[LoadedPolicy, Path], synth_source: DatasetSource
) -> None:
    original, moved = moved_checkpoint

    reloaded = load_policy(moved, device="cpu")

    batch = raw_batch(original, synth_source)
    expected, actual = (
        predict(original, synth_source, batch),
        predict(reloaded, synth_source, batch),
    )
    assert isinstance(expected, torch.Tensor)
    assert isinstance(actual, torch.Tensor)
    assert torch.equal(expected, actual)
    assert reloaded.backbone_dir == moved / BACKBONE_DIR
    state, reloaded_state = original.policy.state_dict(), reloaded.policy.state_dict()
    assert state.keys() == reloaded_state.keys()
    assert all(torch.equal(state[k], reloaded_state[k]) for k in state)


def test_checkpoint_bundles_the_backbone_and_records_the_spec(
    moved_checkpoint: tuple[LoadedPolicy, Path],
) -> None:
    original, moved = moved_checkpoint

    bundled = sorted(p.name for p in (moved / BACKBONE_DIR).iterdir())
    manifest = json.loads((moved / "flare.json").read_text())

    assert bundled == ["config.json", "processor_config.json", "tokenizer.json",
                       "tokenizer_config.json"]  # fmt: skip
    assert not any(p.suffix == ".safetensors" for p in (moved / BACKBONE_DIR).iterdir())
    assert manifest["model_spec"] == "0x" + original.spec.hash.hex()
    assert load_policy(moved, device="cpu").spec.hash == original.spec.hash


def test_a_lerobot_checkpoint_without_backbone_files_says_where_to_put_them(
    moved_checkpoint: tuple[LoadedPolicy, Path], tmp_path: Path
) -> None:
    _, moved = moved_checkpoint
    backbone = tmp_path / "kept-backbone"
    shutil.move(str(moved / BACKBONE_DIR), str(backbone))

    with pytest.raises(PolicyNotFoundError, match="not available locally") as caught:
        load_policy(moved, device="cpu")

    assert caught.value.hint is not None
    assert "--backbone" in caught.value.hint
    assert load_policy(moved, device="cpu", backbone=backbone).backbone_dir == backbone


def test_dataset_statistics_replace_the_checkpoint_ones_and_change_the_spec(
    moved_checkpoint: tuple[LoadedPolicy, Path], tmp_path: Path
) -> None:
    original, moved = moved_checkpoint
    options = SynthOptions(episodes=2, frames=4, cameras=2, seed=3, skew="region", num_nodes=4,
                           use_videos=False)  # fmt: skip
    other = write_synth_dataset(tmp_path / "other", options)
    stats = open_metadata(DatasetSource(other.root)).stats

    kept = load_policy(moved, device="cpu")
    restated = load_policy(moved, device="cpu", dataset_stats=stats)

    assert kept.spec.hash == original.spec.hash
    assert restated.spec.hash != original.spec.hash
    normalizer = next(s for s in restated.preprocessor.steps if "Normalizer" in type(s).__name__)
    mean = normalizer.state_dict()["observation.state.mean"]
    assert torch.equal(mean, torch.as_tensor(stats["observation.state"]["mean"], dtype=mean.dtype))


def test_saving_over_a_directory_that_is_not_a_checkpoint_touches_nothing(
    tmp_path: Path, fresh_policy: Callable[..., LoadedPolicy]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "episode_000.parquet").write_text("robot data")

    with pytest.raises(DirectoryNotReplaceableError, match="not a flare checkpoint"):
        save_policy(fresh_policy(), data)
    with pytest.raises(DirectoryNotReplaceableError, match="not a flare checkpoint"):
        check_checkpoint_target(data)

    assert [p.name for p in data.iterdir()] == ["episode_000.parquet"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_saving_again_swaps_the_checkpoint_with_its_extra_files(
    tmp_path: Path, fresh_policy: Callable[..., LoadedPolicy]
) -> None:
    target = tmp_path / "checkpoint"
    first, second = fresh_policy(seed=1), fresh_policy(seed=2)
    save_policy(first, target, extra=lambda staging: (staging / "train.json").write_text("1"))
    assert is_checkpoint(target)
    check_checkpoint_target(target)  # an old checkpoint may be replaced

    save_policy(second, target, extra=lambda staging: (staging / "train.json").write_text("2"))

    reloaded = load_policy(target, device="cpu").trainable()
    expected = second.trainable()
    assert all(torch.equal(reloaded[name], expected[name]) for name in expected)
    assert not all(torch.equal(reloaded[n], first.trainable()[n]) for n in expected)
    assert (target / "train.json").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_a_directory_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyNotFoundError, match="not a policy checkpoint"):
        load_policy(tmp_path, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_asking_for_cuda_without_a_gpu_is_refused() -> None:
    assert select_device(None) == "cpu"
    with pytest.raises(PolicyNotFoundError, match="CUDA is not available"):
        select_device("cuda")
