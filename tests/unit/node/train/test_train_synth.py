"""The synthetic SO-100 dataset: LeRobot layout, a learnable rule, per-node skew."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from train_support import SYNTH

from flare.node.train.dataset import DatasetSource, open_metadata
from flare.node.train.synth import (
    GAIN,
    JOINTS,
    TASKS,
    SynthOptions,
    _render,
    write_synth_dataset,
)
from flare.protocol.errors import ConfigError


def test_layout_is_an_so100_recording(synth_source: DatasetSource) -> None:
    meta = open_metadata(synth_source)

    assert meta.fps == 30
    assert meta.robot_type == "so100_follower"
    assert meta.total_episodes == SYNTH.episodes
    assert meta.total_frames == SYNTH.episodes * SYNTH.frames
    for key in ("observation.state", "action"):
        assert meta.features[key]["names"] == list(JOINTS)
        assert tuple(meta.features[key]["shape"]) == (6,)
    assert meta.camera_keys == ["observation.images.top", "observation.images.wrist"]
    assert all(meta.features[k]["dtype"] == "video" for k in meta.camera_keys)
    assert sorted(meta.tasks.index) == sorted(task for task, _, _ in TASKS)


def test_actions_servo_to_one_goal_per_episode(synth_source: DatasetSource) -> None:
    """action = state + GAIN * (goal - state) + noise, with the goal fixed within an episode."""
    columns = _columns(synth_source)
    goals = []
    for episode in range(SYNTH.episodes):
        rows = columns["episode_index"] == episode
        state, action = columns["observation.state"][rows], columns["action"][rows]
        implied_goal = state + (action - state) / GAIN

        assert implied_goal.std(axis=0).max() < 2.0  # noise 0.1 / GAIN ~ 0.7 per joint
        goals.append(implied_goal.mean(axis=0))
    # Different tasks and cube positions give goals far apart compared with that noise.
    spread = np.ptp(np.array(goals), axis=0)
    assert spread[:4].min() > 5.0


def test_cameras_show_the_cube_where_the_goal_says(synth_source: DatasetSource) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    frames = LeRobotDataset("local/so100", root=synth_source.root, video_backend="pyav")
    first = frames[0]
    task = next(k for k, (name, _, _) in enumerate(TASKS) if name == first["task"])
    image = (first["observation.images.top"].permute(1, 2, 0).numpy() * 255).astype(np.int16)
    colour = np.array(TASKS[task][1])

    close = np.abs(image - colour).sum(axis=2) < 60  # AV1 is lossy: near the colour
    assert close.sum() >= (SYNTH.height // 8) ** 2 // 2


def test_render_draws_the_cube_at_its_position() -> None:
    state = np.zeros(6)
    colour = (200, 40, 40)

    image = _render("top", 64, 64, colour, np.array([0.25, 0.75]), state, state)

    ys, xs = np.nonzero((image == np.array(colour)).all(axis=2))
    assert abs(xs.mean() - 16) <= 1
    assert abs(ys.mean() - 48) <= 1
    assert image.dtype == np.uint8


@given(num_nodes=st.integers(1, 4))
def test_task_skew_partitions_the_tasks(num_nodes: int) -> None:
    shares = [
        set(SynthOptions(skew="tasks", node_index=i, num_nodes=num_nodes).task_indices())
        for i in range(num_nodes)
    ]

    assert set().union(*shares) == set(range(len(TASKS)))
    assert sum(len(s) for s in shares) == len(TASKS)


@given(num_nodes=st.integers(1, 16))
def test_region_skew_gives_disjoint_stripes_covering_the_table(num_nodes: int) -> None:
    stripes = [
        SynthOptions(skew="region", node_index=i, num_nodes=num_nodes).region()
        for i in range(num_nodes)
    ]

    assert stripes[0][0] == pytest.approx(0.1)
    assert stripes[-1][1] == pytest.approx(0.9)
    for (_, high), (low, _) in itertools.pairwise(stripes):
        assert high == pytest.approx(low)


def test_region_skew_places_every_cube_in_the_node_stripe(tmp_path: Path) -> None:
    options = SynthOptions(episodes=4, frames=4, skew="region", node_index=2, num_nodes=4)

    summary = write_synth_dataset(tmp_path / "node2", options)

    low, high = summary.u_range
    assert (low, high) == options.region()
    # The pan joint's goal is 80 * (u - 1/2) plus the task's posture (0 for pan).
    columns = _columns(DatasetSource(summary.root))
    for episode in range(options.episodes):
        rows = columns["episode_index"] == episode
        state, action = columns["observation.state"][rows], columns["action"][rows]
        pan_goal = (state + (action - state) / GAIN)[:, 0].mean()
        assert 80 * (low - 0.5) - 2 <= pan_goal <= 80 * (high - 0.5) + 2


def test_bad_options_and_existing_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cameras"):
        SynthOptions(cameras=3)
    with pytest.raises(ConfigError, match="node index"):
        SynthOptions(node_index=2, num_nodes=2)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("data")
    with pytest.raises(ConfigError, match="not empty"):
        write_synth_dataset(tmp_path / "full", SynthOptions(episodes=1, frames=2))


def _columns(source: DatasetSource) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(Path(source.root, "data").rglob("*.parquet"))]
    names = ("episode_index", "observation.state", "action")
    return {
        name: np.array([np.array(v) for t in tables for v in t.column(name).to_pylist()])
        for name in names
    }
