"""The LeRobot trainer behind the node loop: state carried from round to round, exactly.

Round r's PowerSGD residual must enter round r+1 (what rank r could not send is sent later),
and the learning-rate schedule must continue where the last round left it rather than warm up
and decay again every round. Both are checked against a direct computation, not by trust.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flare.node.compress import PowerSGDConfig, load_state
from flare.node.federation import genesis_model, load_model
from flare.node.train.dataset import DatasetSource
from flare.node.train.local import StepReport, TrainOptions, train_local
from flare.node.train.policy import LoadedPolicy
from flare.node.train.trainer import (
    COMPRESSOR,
    LeRobotTrainer,
    StateFileError,
    TrainerSettings,
    _training_seed,
)
from flare.protocol.bundle import read_bundle
from flare.protocol.model import read_model
from flare.protocol.unixfs import file_cid

NODE = "0x" + "5e" * 20
SEEDS = {1: b"\x01" * 32, 2: b"\x02" * 32}
SETTINGS = TrainerSettings(
    steps=3, batch_size=4, schedule_steps=6, eval_samples=16,
    compression=PowerSGDConfig(rank=1),
)  # fmt: skip


@pytest.fixture
def trainer(
    fresh_policy: Callable[..., LoadedPolicy], synth_source: DatasetSource, tmp_path: Path
) -> LeRobotTrainer:
    return LeRobotTrainer(fresh_policy(), synth_source, tmp_path / "trainer", SETTINGS)


def base_of(trainer: LeRobotTrainer) -> tuple[object, str]:
    data = genesis_model(trainer.loaded)
    return read_model(data, trainer.spec), file_cid(data).text


def test_round_r_residual_enters_round_r_plus_one(trainer: LeRobotTrainer) -> None:
    base, cid = base_of(trainer)
    trainer.train(base, cid, 1, SEEDS[1], NODE)
    assert trainer.committed_round() is None  # pending until registered
    trainer.commit(1)
    carried = load_state(trainer.state_dir / COMPRESSOR, trainer.spec).residual
    assert trainer.committed_round() == 1

    second = read_bundle(trainer.train(base, cid, 2, SEEDS[2], NODE).bundle, trainer.spec)
    left = load_state(trainer.state_dir / f"pending-2.{COMPRESSOR}", trainer.spec).residual

    # Round 2's raw delta, trained again the same way: sent + left over == raw + carried.
    load_model(trainer.loaded, base)
    options = TrainOptions(
        steps=3, batch_size=4, seed=_training_seed(SEEDS[2], NODE),
        schedule_steps=6, schedule_offset=3,
    )  # fmt: skip
    raw = train_local(trainer.loaded, trainer.source, options, episodes=trainer.train_episodes)
    sent = second.delta()
    factored = [p for p in trainer.spec.params if p.factored(1)]
    assert factored
    for p in factored:
        own = raw.delta[p.name].numpy().astype(np.float64)
        before = carried[p.name].numpy().astype(np.float64)
        after = left[p.name].numpy().astype(np.float64)
        np.testing.assert_allclose(sent[p.name] + after, own + before, rtol=0, atol=1e-6)
    biggest = max(float(np.abs(carried[p.name].numpy()).max()) for p in factored)
    assert biggest > 1e-4  # the carried residual is far above the tolerance: it really counts


def test_the_schedule_continues_across_rounds(
    fresh_policy: Callable[..., LoadedPolicy], synth_source: DatasetSource, tmp_path: Path
) -> None:
    rates: list[float] = []

    def record(report: StepReport) -> None:
        rates.append(report.lr)

    trainer = LeRobotTrainer(
        fresh_policy(), synth_source, tmp_path / "trainer", SETTINGS, on_step=record
    )
    base, cid = base_of(trainer)
    trainer.train(base, cid, 1, SEEDS[1], NODE)
    trainer.commit(1)
    trainer.train(base, cid, 2, SEEDS[2], NODE)
    trainer.commit(2)
    assert trainer.steps_done() == 6

    once: list[float] = []
    single = fresh_policy()
    train_local(
        single, synth_source, TrainOptions(steps=6, batch_size=4, schedule_steps=6),
        episodes=trainer.train_episodes, on_step=lambda report: once.append(report.lr),
    )  # fmt: skip
    assert rates == pytest.approx(once, rel=1e-12)
    assert rates[3] < rates[2]  # round 2 goes on decaying; it does not warm up again


def test_training_a_round_again_before_commit_gives_the_same_bundle(
    trainer: LeRobotTrainer,
) -> None:
    base, cid = base_of(trainer)
    first = trainer.train(base, cid, 1, SEEDS[1], NODE).bundle
    again = trainer.train(base, cid, 1, SEEDS[1], NODE).bundle  # a crash before registering
    assert first == again
    trainer.commit(1)
    trainer.commit(1)  # a restarted node may commit again
    assert trainer.committed_round() == 1
    assert trainer.steps_done() == 3


def test_evaluate_is_the_node_own_held_out_loss_and_repeats_exactly(
    trainer: LeRobotTrainer,
) -> None:
    base, _ = base_of(trainer)
    assert set(trainer.held_out_episodes).isdisjoint(trainer.train_episodes)
    assert trainer.evaluate(base) == trainer.evaluate(base)


def test_a_damaged_schedule_file_is_refused_with_what_to_do(trainer: LeRobotTrainer) -> None:
    trainer.state_dir.mkdir(parents=True)
    (trainer.state_dir / "schedule.json").write_text("{not json")
    with pytest.raises(StateFileError) as raised:
        trainer.steps_done()
    assert "delete it" in str(raised.value.hint)
