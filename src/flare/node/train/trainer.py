"""The LeRobot trainer behind the node loop's `Trainer` port, with state that lasts across rounds.

A round: load the base model into the policy, train `steps` LeRobot steps (plus FedProx) on the
node's training episodes, PowerSGD-compress the delta with the carried error-feedback residual
and warm-start Q, and write the `flare-update/1` bundle. Two things persist between rounds, in
the trainer's state directory:

- `compressor.safetensors`: the residual and Q (`flare.node.compress`). Dropping them each
  round throws away what rank r could not send, which costs held-out loss round after round.
- `schedule.json`: how many local steps the node has trained. The learning rate follows the
  policy's preset schedule (warm-up, then cosine decay) over `schedule_steps` local steps in
  all, entered where the last round left it, so round 5 neither warms up again nor restarts at
  a rate the previous round had already decayed (docs/training.md).

`train` writes the next state as `pending-<round>.*`; `commit(round)` makes it current once
the update is registered on-chain. Training a round again before `commit` (a crash between
training and registering) starts from the same state and the same seed: on the CPU, the same
bundle. `commit` is idempotent, so a restarted node can repeat it.

`evaluate` is the node's held-out loss (fixed noise and flow times, `flare.node.train.evaluate`)
on episodes it never trains on: the committed review policy's acceptance test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flare.node.atomic import fsync_directory, write_file_atomically
from flare.node.compress import PowerSGDConfig, load_state, save_state
from flare.node.federation import load_model, local_update
from flare.node.train.dataset import DatasetSource, open_metadata, split_episodes
from flare.node.train.evaluate import evaluate
from flare.node.train.local import StepReport, TrainOptions
from flare.protocol.errors import ConfigError
from flare.protocol.model import GlobalModel
from flare.protocol.modelspec import ModelSpec
from flare.protocol.ports import Trained

if TYPE_CHECKING:
    from flare.node.train.policy import LoadedPolicy

COMPRESSOR = "compressor.safetensors"
SCHEDULE = "schedule.json"


@dataclass(frozen=True)
class TrainerSettings:
    """How a node trains each round; `schedule_steps` None: the preset's decay length."""

    steps: int = 100
    batch_size: int = 8
    mu: float = 0.0
    lr: float | None = None
    held_out: float = 0.25
    eval_samples: int = 64
    schedule_steps: int | None = None
    compression: PowerSGDConfig = field(default_factory=PowerSGDConfig)


class StateFileError(ConfigError):
    """A trainer state file is damaged or not one this trainer wrote."""


class LeRobotTrainer:
    """A node's LeRobot training, evaluation and carried state (see the module docstring)."""

    def __init__(
        self,
        loaded: LoadedPolicy,
        source: DatasetSource,
        state_dir: Path,
        settings: TrainerSettings | None = None,
        *,
        on_step: Callable[[StepReport], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.source = source
        self.state_dir = state_dir
        self.settings = settings or TrainerSettings()
        self.on_step = on_step
        self.train_episodes, self.held_out_episodes = split_episodes(
            open_metadata(source), self.settings.held_out
        )
        if not self.held_out_episodes:
            raise ConfigError(
                "the node holds out no episodes, so it cannot run the policy's acceptance test",
                hint="hold out a fraction of the episodes (held_out > 0) or record more",
            )
        self.last_metrics: dict[str, float] = {}

    @property
    def spec(self) -> ModelSpec:
        return self.loaded.spec

    def schedule_steps(self) -> int:
        """The length of the learning-rate schedule, in this node's local steps."""
        if self.settings.schedule_steps is not None:
            return self.settings.schedule_steps
        return int(self.loaded.config.scheduler_decay_steps)

    def steps_done(self) -> int:
        """Local steps trained in committed rounds: where the next round enters the schedule."""
        return int(self._read_json(self.state_dir / SCHEDULE).get("steps_done", 0))

    # ---------------------------------------------------------------- the Trainer port

    def train(
        self, base: GlobalModel, base_cid: str, round_number: int, seed: bytes, node: str
    ) -> Trained:
        settings = self.settings
        done = self.steps_done()
        options = TrainOptions(
            steps=settings.steps,
            batch_size=settings.batch_size,
            seed=_training_seed(seed, node),
            mu=settings.mu,
            lr=settings.lr,
            schedule_steps=self.schedule_steps(),
            schedule_offset=done,
        )
        state = load_state(self.state_dir / COMPRESSOR, self.spec)
        update = local_update(
            self.loaded, base, base_cid, self.source, options,
            round_number=round_number, node=node, seed=seed, config=settings.compression,
            state=state, episodes=self.train_episodes, on_step=self.on_step,
        )  # fmt: skip
        save_state(update.state, self._pending(round_number, COMPRESSOR), self.spec)
        schedule = {"round": round_number, "steps_done": done + settings.steps}
        write_file_atomically(self._pending(round_number, SCHEDULE), json.dumps(schedule).encode())
        metrics = update.metrics
        self.last_metrics = {
            "first_loss": metrics.losses[0],
            "final_loss": metrics.final_loss,
            "seconds": metrics.seconds,
            "steps": float(metrics.steps),
        }
        return Trained(update.bundle, metrics.samples, self.last_metrics)

    def commit(self, round_number: int) -> None:
        for name in (COMPRESSOR, SCHEDULE):  # the schedule last: it names the committed round
            pending = self._pending(round_number, name)
            if pending.exists():
                pending.replace(self.state_dir / name)
                fsync_directory(self.state_dir)  # the rename outlives a power cut

    def evaluate(self, model: GlobalModel) -> float:
        load_model(self.loaded, model)
        result = evaluate(
            self.loaded,
            self.source,
            self.held_out_episodes,
            batch_size=self.settings.batch_size,
            max_samples=self.settings.eval_samples,
        )
        return result.loss

    def committed_round(self) -> int | None:
        """The round whose state the next round starts from (None before any)."""
        value = self._read_json(self.state_dir / SCHEDULE).get("round")
        return None if value is None else int(value)

    # ---------------------------------------------------------------- files

    def _pending(self, round_number: int, name: str) -> Path:
        return self.state_dir / f"pending-{round_number}.{name}"

    @staticmethod
    def _read_json(path: Path) -> dict[str, int]:
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
            return {"round": int(data["round"]), "steps_done": int(data["steps_done"])}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StateFileError(
                f"cannot read the trainer state {path}: {error}",
                hint="the file is damaged; delete it to restart the learning-rate schedule",
            ) from error


def _training_seed(round_seed: bytes, node: str) -> int:
    """Data order and noise for this node's round, from the round's public seed."""
    digest = hashlib.sha256(round_seed + node.lower().encode()).digest()
    return int.from_bytes(digest[:4], "little")
