"""`flare-node data synth` and `flare-node train` through the real command tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.node.train.dataset import DatasetSource, open_metadata
from flare.node.train.errors import DatasetMismatchError, SpecMismatchError
from flare.node.train.synth import SynthOptions, write_synth_dataset
from flare.protocol.errors import ConfigError, FlareError


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("FLARE_HOME", "FLARE_DATASET_ROOT", "FLARE_POLICY"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture(scope="module")
def trained_checkpoint(
    synth_source: DatasetSource, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, object], Path]:
    """`flare-node train --json --out` on the session dataset: its JSON and checkpoint."""
    work = tmp_path_factory.mktemp("cli-train")
    result = CliRunner().invoke(app, [
        "train", "--dataset-root", str(synth_source.root), "--steps", "3", "--batch-size", "4",
        "--eval-samples", "8", "--home", str(work / "home"), "--out", str(work / "ckpt"),
        "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary, work / "ckpt"


def assert_fails(result: Result, error: type[FlareError], text: str) -> None:
    assert result.exit_code == error.exit_code, result.output
    assert "Error" in result.output
    assert text in result.output


def test_data_synth_writes_a_dataset_and_reports_it(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "node1"

    result = runner.invoke(app, [
        "data", "synth", str(out), "--episodes", "2", "--frames", "6", "--size", "32",
        "--skew", "tasks", "--node-index", "1", "--num-nodes", "2", "--images", "--json",
    ])  # fmt: skip

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["episodes"] == 2
    assert report["frames"] == 12
    assert report["tasks"] == ["pick up the green cube", "touch the yellow cube"]
    meta = open_metadata(DatasetSource(out))
    assert meta.total_episodes == 2
    assert meta.features["observation.images.top"]["dtype"] == "image"


def test_data_synth_refuses_a_non_empty_directory(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    result = runner.invoke(app, ["data", "synth", str(tmp_path), "--episodes", "1"])

    assert_fails(result, ConfigError, "not empty")


def test_train_json_reports_speed_memory_loss_and_the_delta(
    trained_checkpoint: tuple[dict[str, object], Path],
) -> None:
    summary, checkpoint = trained_checkpoint

    metrics = summary["train"]
    assert isinstance(metrics, dict)
    assert metrics["steps"] == 3
    assert metrics["steps_per_s"] > 0
    assert metrics["peak_memory_bytes"] > 0
    evaluation = summary["eval"]
    assert isinstance(evaluation, dict)
    assert evaluation["loss_before"] > 0
    assert evaluation["loss_after"] > 0
    delta = summary["delta"]
    assert isinstance(delta, dict)
    with safe_open(str(checkpoint / "delta.safetensors"), framework="pt") as saved:
        assert len(list(saved.keys())) == delta["tensors"] == 47
        assert saved.metadata()["model_spec"] == summary["model_spec"]
    assert (
        json.loads((checkpoint / "flare.json").read_text())["model_spec"] == summary["model_spec"]
    )


def test_train_continues_from_a_checkpoint_and_prints_a_summary(
    runner: CliRunner,
    synth_source: DatasetSource,
    trained_checkpoint: tuple[dict[str, object], Path],
) -> None:
    summary, checkpoint = trained_checkpoint

    result = runner.invoke(app, [
        "train", "--dataset-root", str(synth_source.root), "--policy", str(checkpoint),
        "--steps", "2", "--batch-size", "2", "--held-out", "0",
        "--model-spec", str(summary["model_spec"]),
    ])  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "steps/s" in result.stdout
    assert "GiB peak" in result.stdout
    assert f"Model spec   {summary['model_spec']}" in result.stdout


def test_train_refuses_a_policy_of_another_spec(
    runner: CliRunner,
    synth_source: DatasetSource,
    trained_checkpoint: tuple[dict[str, object], Path],
) -> None:
    _, checkpoint = trained_checkpoint

    result = runner.invoke(app, [
        "train", "--dataset-root", str(synth_source.root), "--policy", str(checkpoint),
        "--model-spec", "0x" + "11" * 32,
    ])  # fmt: skip

    assert_fails(result, SpecMismatchError, "the deployment expects 0x" + "11" * 32)


def test_train_refuses_a_dataset_that_lacks_a_policy_camera(
    runner: CliRunner, tmp_path: Path, trained_checkpoint: tuple[dict[str, object], Path]
) -> None:
    _, checkpoint = trained_checkpoint
    one_camera = tmp_path / "one-camera"
    write_synth_dataset(one_camera, SynthOptions(episodes=2, frames=4, cameras=1, height=32,
                                                 width=32, use_videos=False))  # fmt: skip

    result = runner.invoke(app, [
        "train", "--dataset-root", str(one_camera), "--policy", str(checkpoint),
    ])  # fmt: skip

    assert_fails(result, DatasetMismatchError, "camera observation.images.wrist is missing")


def test_train_refuses_an_out_directory_that_is_not_a_checkpoint_before_training(
    runner: CliRunner, synth_source: DatasetSource, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("keep me")

    result = runner.invoke(app, [
        "train", "--dataset-root", str(synth_source.root), "--home", str(tmp_path / "home"),
        "--out", str(data),
    ])  # fmt: skip

    assert_fails(result, ConfigError, "not a flare checkpoint")
    assert "Training" not in result.output
    assert [p.name for p in data.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "home").exists()  # refused before even a backbone was written


def test_train_rejects_malformed_options(runner: CliRunner, synth_source: DatasetSource) -> None:
    root = str(synth_source.root)

    assert_fails(
        runner.invoke(app, ["train", "--dataset-root", root, "--rename-camera", "nothing"]),
        ConfigError, "DATASET_KEY=POLICY_KEY",
    )  # fmt: skip
    assert_fails(
        runner.invoke(app, ["train", "--dataset-root", root, "--model-spec", "0x1234"]),
        ConfigError, "32-byte",
    )  # fmt: skip
