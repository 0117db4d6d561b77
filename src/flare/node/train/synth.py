"""A synthetic SO-100 dataset with learnable structure, written with `LeRobotDataset.create`.

Demos and tests need robot data without a robot or the Hub. Each episode is one task: a cube
of the task's colour sits somewhere on the table, and the arm servoes towards a goal posture
that depends on the task (posture, gripper) and on where the cube is in the image:

    goal   = HOME + TASK_OFFSET[task] + REACH @ (u - 1/2, v - 1/2)     (u, v) = cube position
    action = state + GAIN * (goal - state) + noise
    next state = action + sensor noise

So an action chunk is a function of state, task and image, and a policy that reads all three
can drive its loss far down; one that ignores the image or the task cannot. The top camera
shows the cube and a dot for the gripper; the wrist camera shows the cube relative to the
gripper. `skew` gives each node of a federation different tasks or a different stripe of the
table, for non-IID experiments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from flare.protocol.errors import ConfigError

JOINTS = (
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
)
FPS = 30
CAMERAS = ("top", "wrist")
Skew = Literal["none", "tasks", "region"]

HOME = np.array([0.0, -30.0, 60.0, 30.0, 0.0, 30.0])
GAIN = 0.15
# (task string, cube colour RGB, posture offset in joint units)
TASKS: tuple[tuple[str, tuple[int, int, int], tuple[float, ...]], ...] = (
    ("pick up the red cube", (200, 40, 40), (0.0, 0.0, 0.0, 0.0, 0.0, -25.0)),
    ("pick up the green cube", (40, 180, 60), (0.0, 10.0, -10.0, 0.0, 30.0, -25.0)),
    ("push the blue cube", (40, 70, 200), (0.0, -10.0, 10.0, -20.0, 0.0, 0.0)),
    ("touch the yellow cube", (220, 200, 40), (0.0, 5.0, 5.0, 10.0, -30.0, -10.0)),
)
# How the cube position (u, v), centred on the table, moves the goal of each joint.
REACH = np.array([[80.0, 0.0], [0.0, 40.0], [0.0, -30.0], [20.0, 10.0], [0.0, 0.0], [0.0, 0.0]])


@dataclass(frozen=True)
class SynthOptions:
    """What to generate; `node_index`/`num_nodes`/`skew` carve one node's share of the world."""

    episodes: int = 12
    frames: int = 60
    cameras: int = 1
    height: int = 64
    width: int = 64
    seed: int = 0
    skew: Skew = "none"
    node_index: int = 0
    num_nodes: int = 1
    use_videos: bool = True
    repo_id: str = "flare/synth-so100"

    def __post_init__(self) -> None:
        problems = []
        if self.episodes < 1 or self.frames < 2:
            problems.append("need at least 1 episode of at least 2 frames")
        if self.cameras not in (1, 2):
            problems.append(f"cameras must be 1 or 2, got {self.cameras}")
        if min(self.height, self.width) < 16:
            problems.append(f"images must be at least 16x16, got {self.height}x{self.width}")
        if self.skew not in ("none", "tasks", "region"):
            problems.append(f"skew must be none, tasks or region, got {self.skew!r}")
        if not 0 <= self.node_index < self.num_nodes:
            problems.append(f"node index {self.node_index} is not in 0..{self.num_nodes - 1}")
        if problems:
            raise ConfigError("invalid synthetic dataset options: " + "; ".join(problems))

    def task_indices(self) -> list[int]:
        """The tasks this node records: all, or its share under task skew."""
        if self.skew != "tasks":
            return list(range(len(TASKS)))
        share = [k for k in range(len(TASKS)) if k % self.num_nodes == self.node_index]
        return share or [self.node_index % len(TASKS)]

    def region(self) -> tuple[float, float]:
        """The stripe of the table (u range) where this node's cubes lie."""
        margin = 0.1
        if self.skew != "region":
            return margin, 1.0 - margin
        width = (1.0 - 2 * margin) / self.num_nodes
        return margin + self.node_index * width, margin + (self.node_index + 1) * width


@dataclass(frozen=True)
class SynthSummary:
    root: Path
    episodes: int
    frames: int
    tasks: tuple[str, ...]
    cameras: tuple[str, ...]
    u_range: tuple[float, float]


def features(options: SynthOptions) -> dict[str, dict[str, object]]:
    """The LeRobot feature spec of an SO-100 recording with one or two cameras."""
    joint = {"dtype": "float32", "shape": (len(JOINTS),), "names": list(JOINTS)}
    spec: dict[str, dict[str, object]] = {"observation.state": dict(joint), "action": dict(joint)}
    for name in CAMERAS[: options.cameras]:
        spec[f"observation.images.{name}"] = {
            "dtype": "video" if options.use_videos else "image",
            "shape": (options.height, options.width, 3),
            "names": ["height", "width", "channels"],
        }
    return spec


def write_synth_dataset(
    root: Path,
    options: SynthOptions,
    *,
    on_episode: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Record `options.episodes` episodes under `root` (which must not exist yet)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise ConfigError(
            f"{root} already exists and is not empty", hint="choose a new directory or delete it"
        )
    if root.exists():
        root.rmdir()  # LeRobot creates the directory itself and refuses an existing one
    dataset = LeRobotDataset.create(
        repo_id=options.repo_id,
        fps=FPS,
        features=features(options),
        root=root,
        robot_type="so100_follower",
        use_videos=options.use_videos,
        video_backend="pyav",
    )
    rng = np.random.default_rng([options.seed, options.node_index])
    tasks = options.task_indices()
    u_low, u_high = options.region()
    cameras = CAMERAS[: options.cameras]
    try:
        for episode in range(options.episodes):
            task = tasks[episode % len(tasks)]
            cube = np.array([rng.uniform(u_low, u_high), rng.uniform(0.2, 0.8)])
            goal = HOME + np.array(TASKS[task][2]) + REACH @ (cube - 0.5)
            state = HOME + rng.normal(0.0, 5.0, size=len(JOINTS))
            for _ in range(options.frames):
                action = state + GAIN * (goal - state) + rng.normal(0.0, 0.1, size=len(JOINTS))
                frame: dict[str, object] = {
                    "observation.state": state.astype(np.float32),
                    "action": action.astype(np.float32),
                    "task": TASKS[task][0],
                }
                for name in cameras:
                    frame[f"observation.images.{name}"] = _render(
                        name, options.height, options.width, TASKS[task][1], cube, state, goal
                    )
                dataset.add_frame(frame)
                state = action + rng.normal(0.0, 0.05, size=len(JOINTS))
            dataset.save_episode(parallel_encoding=False)
            if on_episode is not None:
                on_episode(episode)
    finally:
        dataset.finalize()
    return SynthSummary(
        root=root,
        episodes=options.episodes,
        frames=options.episodes * options.frames,
        tasks=tuple(TASKS[k][0] for k in tasks),
        cameras=tuple(f"observation.images.{c}" for c in cameras),
        u_range=(u_low, u_high),
    )


def _render(
    camera: str,
    height: int,
    width: int,
    colour: tuple[int, int, int],
    cube: NDArray[np.float64],
    state: NDArray[np.float64],
    goal: NDArray[np.float64],
) -> NDArray[np.uint8]:
    """Draw one camera frame: a shaded table, the cube, and (top view) the gripper."""
    rows = np.linspace(150, 210, height, dtype=np.float64)[:, None]
    image = np.repeat(np.broadcast_to(rows, (height, width))[:, :, None], 3, axis=2).copy()
    side = max(3, min(height, width) // 8)
    if camera == "top":
        _square(image, cube[0], cube[1], side, colour)
        # The gripper dot follows shoulder pan (x) and shoulder lift (y).
        gx = 0.5 + float(np.clip(state[0] / 80.0, -0.45, 0.45))
        gy = 0.5 + float(np.clip((state[1] - HOME[1]) / 40.0, -0.45, 0.45))
        _square(image, gx, gy, max(2, side // 2), (20, 20, 20))
    else:
        # The cube as the wrist sees it: offset by how far the arm still has to go.
        offset = np.clip((goal[:2] - state[:2]) / np.array([80.0, 40.0]), -0.45, 0.45)
        _square(image, 0.5 + float(offset[0]), 0.5 + float(offset[1]), side * 2, colour)
    return image.astype(np.uint8)


def _square(
    image: NDArray[np.float64], u: float, v: float, side: int, colour: tuple[int, int, int]
) -> None:
    height, width = image.shape[:2]
    x = min(max(math.floor(u * width) - side // 2, 0), width - side)
    y = min(max(math.floor(v * height) - side // 2, 0), height - side)
    image[y : y + side, x : x + side] = colour
