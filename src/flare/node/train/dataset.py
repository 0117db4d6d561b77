"""Open a LeRobot v3 dataset on disk and check, before any training, that it fits the policy.

A round is wasted if training fails halfway on a missing camera or an action of the wrong
size, so every problem is collected up front and reported together. Episodes are split into
training and held-out ones per task (the last episodes of each task are held out), the rule
`lerobot-train` uses for its own `eval_split`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flare.node.train.errors import DatasetMismatchError, PolicyNotFoundError
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

STATE = "observation.state"
ACTION = "action"


@dataclass(frozen=True)
class DatasetSource:
    """A dataset directory plus how its camera names map onto the policy's."""

    root: Path
    rename: Mapping[str, str] = field(default_factory=dict)  # dataset key -> policy key

    def policy_key(self, key: str) -> str:
        return self.rename.get(key, key)


def open_metadata(source: DatasetSource) -> LeRobotDatasetMetadata:
    """The dataset's metadata, read from disk only; a clear error if it is not LeRobot v3."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    info_path = Path(source.root) / "meta" / "info.json"
    if not info_path.is_file():
        raise PolicyNotFoundError(
            f"{source.root} is not a LeRobot dataset (no meta/info.json)",
            hint="pass the root of a LeRobot v3 dataset, or write one with `flare-node data synth`",
        )
    version = str(json.loads(info_path.read_text()).get("codebase_version", "?"))
    if not version.startswith("v3"):
        raise DatasetMismatchError(
            [f"codebase version is {version}, flare-node reads v3 datasets"],
            hint="convert it with LeRobot's convert_dataset_v21_to_v30 script",
        )
    return LeRobotDatasetMetadata(f"local/{Path(source.root).name}", root=source.root)


def check_fit(
    config: SmolVLAConfig,
    features: Mapping[str, Mapping[str, Any]],
    num_tasks: int,
    rename: Mapping[str, str] | None = None,
) -> None:
    """Raise `DatasetMismatchError` listing every way the dataset's features miss the policy's."""
    renamed = {(rename or {}).get(k, k): v for k, v in features.items()}  # as the policy sees it
    cameras = [k for k, f in renamed.items() if f.get("dtype") in ("image", "video")]
    problems: list[str] = []
    for key in config.image_features or {}:
        if key not in cameras:
            problems.append(
                f"camera {key} is missing (the dataset has {', '.join(cameras) or 'no cameras'})"
            )
        elif 3 not in (renamed[key]["shape"][0], renamed[key]["shape"][-1]):
            problems.append(f"camera {key} has shape {tuple(renamed[key]['shape'])}, not RGB")
    wanted = {STATE: config.robot_state_feature, ACTION: config.action_feature}
    for key, feature in wanted.items():
        found = renamed.get(key)
        label = "state" if key == STATE else "action"
        if feature is None:
            continue
        if found is None:
            problems.append(f"the dataset has no {key}")
        elif tuple(found["shape"]) != tuple(feature.shape):
            problems.append(
                f"{label} size is {found['shape'][0]} in the dataset, "
                f"{feature.shape[0]} in the policy"
            )
    if num_tasks == 0:
        problems.append("no task strings (SmolVLA is conditioned on a task per frame)")
    if problems:
        raise DatasetMismatchError(problems)


def check_metadata(
    config: SmolVLAConfig, meta: LeRobotDatasetMetadata, source: DatasetSource
) -> None:
    """`check_fit` on an opened dataset."""
    num_tasks = 0 if meta.tasks is None else len(meta.tasks)
    check_fit(config, meta.features, num_tasks, source.rename)


def split_episodes(meta: LeRobotDatasetMetadata, held_out: float) -> tuple[list[int], list[int]]:
    """(training, held-out) episode indices: the last ceil(n * held_out) of each task held out."""
    if not 0.0 <= held_out < 1.0:
        raise ConfigError(f"held-out fraction {held_out} is not in [0, 1)")
    by_task: dict[str, list[int]] = {}
    for index in range(meta.total_episodes):
        tasks = meta.episodes["tasks"][index]
        by_task.setdefault(tasks[0] if tasks else "", []).append(index)
    train: list[int] = []
    evaluate: list[int] = []
    for episodes in by_task.values():
        n_eval = math.ceil(len(episodes) * held_out)
        train.extend(episodes[: len(episodes) - n_eval])
        evaluate.extend(episodes[len(episodes) - n_eval :])
    if not train:
        raise ConfigError(
            f"holding out {held_out:.0%} of {meta.total_episodes} episodes leaves none to train on",
            hint="record more episodes or lower --held-out",
        )
    return sorted(train), sorted(evaluate)


def load_frames(
    config: SmolVLAConfig,
    meta: LeRobotDatasetMetadata,
    source: DatasetSource,
    episodes: list[int] | None,
) -> LeRobotDataset:
    """The frames of `episodes`, each with its action chunk, as `lerobot-train` loads them."""
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(
        meta.repo_id,
        root=source.root,
        episodes=episodes,
        delta_timestamps=resolve_delta_timestamps(config, meta),
        video_backend="pyav",
        return_uint8=True,
    )


def open_frames(
    config: SmolVLAConfig, source: DatasetSource, episodes: list[int] | None
) -> LeRobotDataset:
    """Open the dataset, check it fits the policy, load the frames of `episodes`.

    Every training and evaluation pass starts here, so none can skip the check; the opened
    metadata is `frames.meta`.
    """
    meta = open_metadata(source)
    check_metadata(config, meta, source)
    return load_frames(config, meta, source, episodes)


def to_policy_batch(
    batch: dict[str, Any],
    preprocessor: Any,
    camera_keys: list[str],
    source: DatasetSource,
) -> dict[str, Any]:
    """A collated batch as the policy reads it: cameras renamed, bytes to [0, 1], processed."""
    import torch

    for key in camera_keys:
        if key in batch and batch[key].dtype == torch.uint8:
            batch[key] = batch[key].to(dtype=torch.float32) / 255.0
    if source.rename:
        batch = {source.policy_key(k): v for k, v in batch.items()}
    result: dict[str, Any] = preprocessor(batch)
    return result
