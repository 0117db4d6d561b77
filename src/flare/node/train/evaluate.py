"""Held-out policy loss with fixed noise: the number committees and operators compare.

SmolVLA's training loss is a flow-matching loss on random noise and random times, so two
evaluations of the same weights would differ. Here the noise and the times come from a
generator seeded by `seed`, drawn in a fixed order over a fixed, evenly spaced set of frames:
the same weights on the same data give the same loss, and two different weights are compared
on exactly the same draws. Times follow SmolVLA's Beta(1.5, 1) schedule, sampled by inverting
its CDF (x^1.5) so they come from the same generator.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flare.node.train.dataset import DatasetSource, open_frames, to_policy_batch
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from flare.node.train.policy import LoadedPolicy

TIME_SCALE, TIME_OFFSET = 0.999, 0.001  # SmolVLA's sample_time: Beta(1.5, 1) * 0.999 + 0.001


def fixed_draws(
    generator: torch.Generator, size: int, chunk: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise (size, chunk, dim) and flow times (size,) drawn from `generator` only."""
    import torch

    noise = torch.randn((size, chunk, dim), generator=generator)
    uniform = torch.rand(size, generator=generator)
    return noise, uniform ** (1 / 1.5) * TIME_SCALE + TIME_OFFSET  # inverse CDF of Beta(1.5, 1)


@dataclass(frozen=True)
class EvalResult:
    loss: float
    samples: int
    episodes: tuple[int, ...]


def evaluate(
    loaded: LoadedPolicy,
    source: DatasetSource,
    episodes: list[int],
    *,
    seed: int = 0,
    batch_size: int = 8,
    max_samples: int = 256,
) -> EvalResult:
    """Mean policy loss over (at most `max_samples` evenly spaced) frames of `episodes`."""
    import torch

    if not episodes:
        raise ConfigError(
            "no held-out episodes to evaluate on",
            hint="hold out a fraction of the episodes (--held-out) or record more episodes",
        )
    frames = open_frames(loaded.config, source, episodes)
    count = len(frames)
    picked = sorted({round(i * (count - 1) / max(1, max_samples - 1)) for i in range(max_samples)})
    picked = [i for i in picked if i < count]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(frames, picked), batch_size=batch_size, shuffle=False
    )
    cameras = list(frames.meta.camera_keys)
    config = loaded.config
    device = torch.device(loaded.device)
    generator = torch.Generator().manual_seed(seed)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    policy = loaded.policy
    was_training = policy.training
    policy.eval()
    total, seen = 0.0, 0
    try:
        with torch.no_grad(), autocast:
            for raw in loader:
                size = len(raw["index"])
                batch = to_policy_batch(raw, loaded.preprocessor, cameras, source)
                noise, time = fixed_draws(generator, size, config.chunk_size, config.max_action_dim)
                loss, _ = policy.forward(batch, noise=noise.to(device), time=time.to(device))
                total += float(loss.item()) * size
                seen += size
    finally:
        policy.train(was_training)
    return EvalResult(loss=total / seen, samples=seen, episodes=tuple(episodes))
