"""Dataset checks: a dataset that does not fit the policy is refused, with every reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_support import SYNTH

from flare.node.train.dataset import (
    DatasetSource,
    check_fit,
    open_metadata,
    split_episodes,
)
from flare.node.train.errors import DatasetMismatchError, PolicyNotFoundError
from flare.node.train.synth import features
from flare.protocol.errors import ConfigError


def smolvla_config(dataset_features: dict[str, Any]) -> Any:
    """A SmolVLA config whose features are those of `dataset_features` (no model is built)."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.utils.feature_utils import dataset_to_policy_features

    policy_features = dataset_to_policy_features(dataset_features)
    return SmolVLAConfig(
        device="cpu",
        push_to_hub=False,
        input_features={k: v for k, v in policy_features.items() if k != "action"},
        output_features={"action": policy_features["action"]},
    )


TWO_CAMERAS = features(SYNTH)
POLICY = smolvla_config(TWO_CAMERAS)


def test_a_dataset_with_the_policy_features_fits() -> None:
    check_fit(POLICY, TWO_CAMERAS, num_tasks=4)


def test_a_missing_camera_is_named() -> None:
    one_camera = {k: v for k, v in TWO_CAMERAS.items() if not k.endswith("wrist")}

    with pytest.raises(DatasetMismatchError, match=r"camera observation\.images\.wrist is missing"):
        check_fit(POLICY, one_camera, num_tasks=4)


def test_state_and_action_sizes_must_match() -> None:
    wrong = dict(TWO_CAMERAS)
    wrong["observation.state"] = {**wrong["observation.state"], "shape": (7,)}
    wrong["action"] = {**wrong["action"], "shape": (5,)}

    with pytest.raises(DatasetMismatchError) as caught:
        check_fit(POLICY, wrong, num_tasks=4)

    assert caught.value.problems == [
        "state size is 7 in the dataset, 6 in the policy",
        "action size is 5 in the dataset, 6 in the policy",
    ]
    assert caught.value.exit_code == 2


def test_every_problem_is_reported_at_once() -> None:
    bare = {"action": TWO_CAMERAS["action"]}

    with pytest.raises(DatasetMismatchError) as caught:
        check_fit(POLICY, bare, num_tasks=0)

    problems = caught.value.problems
    assert len(problems) == 4  # two cameras, the state, the tasks
    assert "no task strings" in problems[-1]
    assert caught.value.hint is not None


def test_renaming_maps_dataset_cameras_onto_policy_cameras() -> None:
    other_names = {k.replace("wrist", "hand"): v for k, v in TWO_CAMERAS.items()}

    with pytest.raises(DatasetMismatchError):
        check_fit(POLICY, other_names, num_tasks=4)
    check_fit(
        POLICY,
        other_names,
        num_tasks=4,
        rename={"observation.images.hand": "observation.images.wrist"},
    )


def test_split_holds_out_the_last_episodes_of_each_task(synth_source: DatasetSource) -> None:
    meta = open_metadata(synth_source)

    train, held_out = split_episodes(meta, held_out=0.25)

    # 12 episodes, tasks in turn: task k has episodes k, k+4, k+8; the last one is held out.
    assert held_out == [8, 9, 10, 11]
    assert train == list(range(8))
    assert split_episodes(meta, held_out=0.0) == (list(range(12)), [])
    with pytest.raises(ConfigError, match="leaves none"):
        split_episodes(meta, held_out=0.9)


def test_a_directory_that_is_not_a_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyNotFoundError, match="not a LeRobot dataset"):
        open_metadata(DatasetSource(tmp_path))


def test_an_old_dataset_version_is_refused_with_the_conversion_hint(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1"}))

    with pytest.raises(DatasetMismatchError, match=r"v2\.1") as caught:
        open_metadata(DatasetSource(tmp_path))

    assert caught.value.hint is not None
    assert "convert" in caught.value.hint
