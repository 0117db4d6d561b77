"""Held-out evaluation: fixed noise, so the same weights always score the same."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from train_support import BATCH, held_out_loss

from flare.node.train.dataset import DatasetSource
from flare.node.train.evaluate import evaluate, fixed_draws
from flare.node.train.policy import LoadedPolicy
from flare.protocol.errors import ConfigError


def test_two_evaluations_agree_exactly_and_the_seed_matters(
    fresh_policy: Callable[..., LoadedPolicy],
    synth_source: DatasetSource,
    episode_split: tuple[list[int], list[int]],
) -> None:
    loaded = fresh_policy()
    held_out = episode_split[1]
    loaded.policy.train()

    first = held_out_loss(loaded, synth_source, held_out)
    second = held_out_loss(fresh_policy(), synth_source, held_out)
    reseeded = evaluate(loaded, synth_source, held_out, seed=1, batch_size=BATCH, max_samples=64)

    assert first.loss == second.loss
    assert first.loss != reseeded.loss
    assert first.samples == 64
    assert first.episodes == tuple(held_out)
    assert loaded.policy.training  # evaluation leaves the mode as it found it


def test_evaluating_nothing_is_an_error(
    fresh_policy: Callable[..., LoadedPolicy], synth_source: DatasetSource
) -> None:
    with pytest.raises(ConfigError, match="no held-out episodes"):
        evaluate(fresh_policy(), synth_source, [])


def test_times_follow_smolvla_beta_schedule() -> None:
    generator = torch.Generator().manual_seed(0)

    noise, time = fixed_draws(generator, size=200_000, chunk=1, dim=1)

    # SmolVLA draws t ~ Beta(1.5, 1) * 0.999 + 0.001: CDF of the Beta part is x^1.5.
    beta = (time - 0.001) / 0.999
    assert float(beta.min()) >= 0.0
    assert float(beta.max()) <= 1.0
    for x in (0.1, 0.5, 0.9):
        assert float((beta <= x).double().mean()) == pytest.approx(x**1.5, abs=0.005)
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(noise.std()) == pytest.approx(1.0, abs=0.01)
