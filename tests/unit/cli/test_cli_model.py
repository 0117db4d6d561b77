"""`flare-node model genesis` and `model info` through the real command tree.

One tiny genesis is made per module (a fresh tiny SmolVLA on a small synthetic dataset, about
ten seconds); the other tests read it, or fail before any policy is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.cli.model import NotAModelError
from flare.node.store.embedded import EmbeddedStore
from flare.node.train.synth import SynthOptions, write_synth_dataset
from flare.protocol.errors import ConfigError, FlareError
from flare.protocol.model import InvalidModelError, read_model
from flare.protocol.modelspec import ModelSpec


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("FLARE_HOME", "FLARE_STORE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-model")


@pytest.fixture(scope="module")
def dataset(work: Path) -> Path:
    root = work / "reference"
    write_synth_dataset(root, SynthOptions(episodes=2, frames=6, use_videos=False, seed=0))
    return root


@pytest.fixture(scope="module")
def made(work: Path, dataset: Path) -> dict[str, Any]:
    """`model genesis --policy tiny --json`: the deployer's genesis, as JSON."""
    result = CliRunner().invoke(app, [
        "model", "genesis", "--policy", "tiny", "--dataset", str(dataset),
        "--out", str(work / "base"), "--spec-out", str(work / "spec.json"),
        "--home", str(work / "home"), "--data-dir", str(work / "store"), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def invoke(runner: CliRunner, work: Path, *args: str) -> Result:
    return runner.invoke(
        app, [*args, "--home", str(work / "home"), "--data-dir", str(work / "store")]
    )


def assert_fails(result: Result, error: type[FlareError], text: str) -> None:
    assert result.exit_code == error.exit_code, result.output
    assert "Error" in result.output
    assert text in result.output


def test_genesis_pins_a_round_0_model_of_the_saved_checkpoint(
    made: dict[str, Any], work: Path
) -> None:
    spec = ModelSpec.from_json((work / "spec.json").read_bytes())
    assert made["model_spec"] == "0x" + keccak(spec.canonical_json()).hex()
    assert made["preset"] == "tiny"
    assert made["round"] == 0
    assert made["tensors"] == len(spec.params)
    assert made["parameters"] == spec.numel
    with EmbeddedStore(work / "store") as store:
        assert made["cid"] in store.pins()
        model = read_model(store.get(made["cid"]), spec)
    assert model.meta.round == 0
    assert model.meta.parent == ""
    # The checkpoint is what nodes load: it has the spec the deployment will commit to.
    manifest = json.loads((work / "base" / "flare.json").read_text())
    assert manifest["model_spec"] == made["model_spec"]
    assert made["policy"] == str((work / "base").resolve())


def test_genesis_of_the_checkpoint_is_the_same_model(
    made: dict[str, Any], work: Path, runner: CliRunner
) -> None:
    result = invoke(runner, work, "model", "genesis", "--policy", str(work / "base"), "--json")

    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert (again["cid"], again["model_spec"]) == (made["cid"], made["model_spec"])
    assert again["preset"] is None


def test_genesis_text_output_names_what_contract_deploy_takes(
    made: dict[str, Any], work: Path, runner: CliRunner
) -> None:
    result = invoke(runner, work, "model", "genesis", "--policy", str(work / "base"))

    assert result.exit_code == 0, result.output
    assert f"--model-spec-hash {made['model_spec']}" in result.stdout
    assert f"--genesis-model {made['cid']}" in result.stdout


def test_info_reads_the_header_without_a_spec(
    made: dict[str, Any], work: Path, runner: CliRunner
) -> None:
    result = invoke(runner, work, "model", "info", made["cid"], "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "flare-model/1"
    assert report["metadata"]["round"] == "0"
    assert report["metadata"]["model_spec"] == made["model_spec"]
    assert report["parameters"] == made["parameters"]
    assert report["dtypes"] == ["float32"]
    assert report["checked"] is None
    text = invoke(runner, work, "model", "info", made["cid"])
    assert "Round          0 (genesis)" in text.stdout


def test_info_checks_every_weight_against_a_spec(
    made: dict[str, Any], work: Path, runner: CliRunner
) -> None:
    result = invoke(
        runner, work, "model", "info", made["cid"], "--spec", str(work / "spec.json"), "--json"
    )

    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout)["checked"]
    assert checked["valid"] is True
    assert checked["model_spec"] == made["model_spec"]
    assert checked["norm"] > 0


def test_info_refuses_a_model_of_another_spec(
    made: dict[str, Any], work: Path, runner: CliRunner, tmp_path: Path
) -> None:
    other = ModelSpec.from_shapes({"layer.weight": (4, 4)})
    (tmp_path / "other.json").write_bytes(other.canonical_json())

    result = invoke(
        runner, work, "model", "info", made["cid"], "--spec", str(tmp_path / "other.json")
    )

    assert_fails(result, InvalidModelError, "model spec")


def test_info_refuses_content_that_is_not_a_model(work: Path, runner: CliRunner) -> None:
    with EmbeddedStore(work / "store") as store:
        cid = store.put(b'{"not": "a model"}')

    assert_fails(invoke(runner, work, "model", "info", cid), NotAModelError, "not a flare model")


def test_preset_without_dataset_or_out_is_refused_before_any_work(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = invoke(runner, tmp_path, "model", "genesis", "--policy", "tiny")

    assert_fails(result, ConfigError, "needs --dataset")
    assert not (tmp_path / "store").exists()


def test_an_existing_out_is_never_replaced_without_force(
    runner: CliRunner, tmp_path: Path, dataset: Path
) -> None:
    out = tmp_path / "models"
    out.mkdir()
    (out / "keep.txt").write_text("an operator's file")

    result = invoke(runner, tmp_path, "model", "genesis", "--policy", "tiny",
                    "--dataset", str(dataset), "--out", str(out))  # fmt: skip

    assert_fails(result, ConfigError, "already exists")
    assert (out / "keep.txt").read_text() == "an operator's file"
    forced = invoke(runner, tmp_path, "model", "genesis", "--policy", "tiny",
                    "--dataset", str(dataset), "--out", str(out), "--force")  # fmt: skip
    assert_fails(forced, ConfigError, str(out))  # --force replaces checkpoints only
    assert (out / "keep.txt").exists()


def test_a_policy_that_is_neither_a_directory_nor_a_preset_is_refused(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = invoke(runner, tmp_path, "model", "genesis", "--policy", str(tmp_path / "nope"))

    assert_fails(result, ConfigError, "neither a checkpoint directory nor a preset")


def test_a_checkpoint_copied_to_out_keeps_its_model(
    made: dict[str, Any], work: Path, runner: CliRunner, tmp_path: Path
) -> None:
    result = invoke(runner, work, "model", "genesis", "--policy", str(work / "base"),
                    "--out", str(tmp_path / "copy"), "--json")  # fmt: skip

    assert result.exit_code == 0, result.output
    copied = json.loads(result.stdout)
    assert (copied["cid"], copied["model_spec"]) == (made["cid"], made["model_spec"])
    assert copied["policy"] == str((tmp_path / "copy").resolve())
    assert (tmp_path / "copy" / "backbone" / "config.json").is_file()


@pytest.mark.slow
def test_full_size_genesis_has_smolvlas_trainable_layout(
    runner: CliRunner, tmp_path: Path, dataset: Path
) -> None:
    """The smolvlm2-500m preset (about a minute and 6 GiB on a CPU): SmolVLA's own layout."""
    out = str(tmp_path / "base")
    result = invoke(runner, tmp_path, "model", "genesis", "--policy", "smolvlm2-500m",
                    "--dataset", str(dataset), "--out", out, "--json")  # fmt: skip

    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert (made["parameters"], made["tensors"]) == (99_880_992, 155)
    info = invoke(runner, tmp_path, "model", "info", made["cid"], "--json")
    assert json.loads(info.stdout)["metadata"]["model_spec"] == made["model_spec"]
