"""Constants and helpers shared by the training tests (the fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

from flare.node.train.dataset import DatasetSource
from flare.node.train.evaluate import EvalResult, evaluate
from flare.node.train.local import TrainResult
from flare.node.train.policy import LoadedPolicy
from flare.node.train.synth import SynthOptions

# Small enough for seconds of CPU, large enough to learn from: 12 episodes (4 tasks x 3),
# one per task held out, 30 frames each, two 64x64 cameras.
SYNTH = SynthOptions(episodes=12, frames=30, cameras=2, seed=7)
STEPS = 40
BATCH = 8
EVAL_SAMPLES = 64


def held_out_loss(loaded: LoadedPolicy, source: DatasetSource, episodes: list[int]) -> EvalResult:
    return evaluate(loaded, source, episodes, seed=0, batch_size=BATCH, max_samples=EVAL_SAMPLES)


@dataclass
class TrainedRun:
    """A policy trained for STEPS steps with mu = 0, and its held-out loss before and after."""

    start: dict[str, object]
    policy: LoadedPolicy
    result: TrainResult
    before: EvalResult
    after: EvalResult


def raw_batch(loaded: LoadedPolicy, source: DatasetSource, size: int = 4) -> dict[str, object]:
    """The first `size` frames of the dataset, collated, as the data loader gives them."""
    import torch

    from flare.node.train.dataset import load_frames, open_metadata

    meta = open_metadata(source)
    frames = load_frames(loaded.config, meta, source, None)
    batch: dict[str, object] = next(iter(torch.utils.data.DataLoader(frames, batch_size=size)))
    return batch


def predict(loaded: LoadedPolicy, source: DatasetSource, batch: dict[str, object]) -> object:
    """Unnormalized action chunks for `batch`, with fixed denoising noise."""
    import torch

    from flare.node.train.dataset import open_metadata, to_policy_batch

    cameras = list(open_metadata(source).camera_keys)
    processed = to_policy_batch(dict(batch), loaded.preprocessor, cameras, source)
    config = loaded.config
    size = len(batch["index"])  # type: ignore[arg-type]
    noise = torch.randn(
        (size, config.chunk_size, config.max_action_dim), generator=torch.Generator().manual_seed(1)
    )
    loaded.policy.reset()
    chunk = loaded.policy.predict_action_chunk(processed, noise=noise)
    return loaded.postprocessor(chunk)
