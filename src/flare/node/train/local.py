"""One round of local training: N steps of LeRobot's SmolVLA training step plus FedProx.

The step is the one `lerobot-train` runs (same sampler, same processors, the policy's optimizer
and scheduler presets, gradient clipping), with one addition: the FedProx proximal term
mu/2 * ||w - w_base||^2 over the trainable parameters. Its gradient mu * (w - w_base) is added
to the parameters' gradients directly, before clipping, instead of through autograd: the same
update at no extra graph cost. mu = 0 is plain FedAvg local training.

What comes back is exactly the trainable-parameter delta (final - start, name -> tensor on the
CPU) and the metrics an operator or a committee wants to see. On the CPU two runs with the same
seed produce bit-identical deltas (data order, noise and initial state all follow the seed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flare.node.train.dataset import DatasetSource, open_frames, to_policy_batch
from flare.node.train.policy import LoadedPolicy
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class TrainOptions:
    steps: int = 100
    batch_size: int = 8
    seed: int = 0
    mu: float = 0.0  # FedProx strength; 0 = FedAvg
    lr: float | None = None  # None: the policy's optimizer preset
    num_workers: int = 0
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU
    # The learning-rate schedule spans `schedule_steps` steps (None: this call's `steps`) and
    # this call starts `schedule_offset` steps into it: a federated node continues one schedule
    # across rounds instead of restarting warm-up and decay every round.
    schedule_steps: int | None = None
    schedule_offset: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("steps and batch size must be at least 1, workers at least 0")
        if self.schedule_offset < 0 or (
            self.schedule_steps is not None and self.schedule_steps < 1
        ):
            raise ConfigError("the schedule's length must be at least 1 and its offset >= 0")
        if self.mu < 0 or (self.lr is not None and self.lr <= 0):
            raise ConfigError("FedProx mu must be >= 0 and the learning rate > 0")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")

    def autocast_dtype(self, device_type: str) -> str | None:
        """The autocast dtype for this device, or None for full fp32."""
        if self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda"):
            return "bfloat16"
        return None


@dataclass(frozen=True)
class StepReport:
    """What the progress display shows after each optimizer step."""

    step: int
    steps: int
    loss: float
    lr: float


@dataclass
class TrainMetrics:
    steps: int
    samples: int
    seconds: float
    losses: list[float]
    device: str
    autocast: str | None
    peak_memory_bytes: int
    memory_kind: str  # "cuda-allocated" or "process-rss"
    prox: float = 0.0  # mu/2 * ||w - w_base||^2 at the end

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def final_loss(self) -> float:
        """Mean of the last tenth of the loss curve (one step is too noisy to report)."""
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)

    def summary(self) -> dict[str, Any]:
        """Scalars for logs, JSON output and bundle metadata."""
        return {
            "steps": self.steps,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
            "steps_per_s": round(self.steps_per_s, 3),
            "first_loss": self.losses[0],
            "final_loss": self.final_loss,
            "prox": self.prox,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_kind": self.memory_kind,
            "device": self.device,
            "autocast": self.autocast,
        }


@dataclass
class TrainResult:
    delta: dict[str, torch.Tensor]
    metrics: TrainMetrics
    episodes: list[int] = field(default_factory=list)


def train_local(
    loaded: LoadedPolicy,
    source: DatasetSource,
    options: TrainOptions,
    *,
    episodes: list[int] | None = None,
    base: Mapping[str, torch.Tensor] | None = None,
    on_step: Callable[[StepReport], None] | None = None,
) -> TrainResult:
    """Train `loaded` in place for `options.steps` steps on `episodes` of the dataset.

    `base` is w_base of the FedProx term (default: the weights training starts from).
    """
    import torch
    from lerobot.datasets import EpisodeAwareSampler
    from lerobot.utils.random_utils import set_seed
    from lerobot.utils.utils import cycle

    # --- check the data before spending anything on it
    frames = open_frames(loaded.config, source, episodes)
    meta = frames.meta
    set_seed(options.seed)
    device = torch.device(loaded.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as lerobot-train does
        torch.cuda.reset_peak_memory_stats(device)

    sampler = EpisodeAwareSampler(
        frames.meta.episodes["dataset_from_index"],
        frames.meta.episodes["dataset_to_index"],
        episode_indices_to_use=frames.episodes,
        shuffle=True,
        seed=options.seed,
        absolute_to_relative_idx=frames.absolute_to_relative_idx,
    )
    loader = torch.utils.data.DataLoader(
        frames,
        batch_size=options.batch_size,
        sampler=sampler,
        num_workers=options.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=options.num_workers > 0,
    )

    # --- the parameters that move, where they start, and where FedProx pulls them
    params = loaded.trainable()
    names = list(params)
    weights = [params[n] for n in names]
    start = [w.detach().clone() for w in weights]
    anchor = (
        start
        if base is None
        else [base[n].to(device, w.dtype) for n, w in zip(names, weights, strict=True)]
    )

    config = loaded.config
    optimizer_config = config.get_optimizer_preset()
    scheduler_config = config.get_scheduler_preset()
    if options.lr is not None:
        optimizer_config = dataclasses.replace(optimizer_config, lr=options.lr)
        scheduler_config = dataclasses.replace(scheduler_config, peak_lr=options.lr)
    optimizer = optimizer_config.build(weights)
    scheduler = _scheduler(scheduler_config, optimizer, options)
    autocast_dtype = options.autocast_dtype(device.type)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )

    # --- the loop: lerobot-train's update_policy, plus the proximal gradient
    policy = loaded.policy
    policy.train()
    batches = cycle(loader)
    losses: list[float] = []
    samples = 0
    began = time.perf_counter()
    for step in range(1, options.steps + 1):
        batch = next(batches)
        samples += len(batch["index"])
        batch = to_policy_batch(batch, loaded.preprocessor, list(meta.camera_keys), source)
        with autocast:
            loss, _ = policy.forward(batch)
        loss.backward()
        if options.mu > 0:
            _add_proximal_gradient(weights, anchor, options.mu)
        torch.nn.utils.clip_grad_norm_(weights, optimizer_config.grad_clip_norm)
        rate = optimizer.param_groups[0]["lr"]  # the rate this step applies
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        losses.append(float(loss.item()))
        if on_step is not None:
            on_step(StepReport(step, options.steps, losses[-1], rate))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    policy.eval()

    with torch.no_grad():
        delta = {
            n: (w.detach() - s).to("cpu") for n, w, s in zip(names, weights, start, strict=True)
        }
        prox = sum(
            float(((w - a).float() ** 2).sum()) for w, a in zip(weights, anchor, strict=True)
        )
    peak, kind = _peak_memory(device)
    metrics = TrainMetrics(
        steps=options.steps,
        samples=samples,
        seconds=seconds,
        losses=losses,
        device=str(device),
        autocast=autocast_dtype,
        peak_memory_bytes=peak,
        memory_kind=kind,
        prox=options.mu / 2 * prox,
    )
    return TrainResult(delta, metrics, list(frames.episodes or range(meta.total_episodes)))


def _scheduler(config: Any, optimizer: Any, options: TrainOptions) -> Any:
    """The policy's schedule over `schedule_steps`, entered `schedule_offset` steps in.

    LeRobot's presets build a LambdaLR; a second LambdaLR over the same optimizer reads the
    first one's multiplier shifted by the offset, so no step is taken before the optimizer's.
    """
    import torch

    horizon = options.schedule_steps or options.steps
    scheduler = config.build(optimizer, horizon)
    offset = options.schedule_offset
    if offset == 0:
        return scheduler
    preset = scheduler.lr_lambdas[0]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: preset(step + offset))


def _add_proximal_gradient(
    weights: list[torch.nn.Parameter], anchor: list[torch.Tensor], mu: float
) -> None:
    """grad += mu * (w - w_base); a parameter the loss did not reach gets the proximal part."""
    import torch

    with torch.no_grad():
        for w, a in zip(weights, anchor, strict=True):
            pull = (w - a).mul_(mu)
            if w.grad is None:
                w.grad = pull
            else:
                w.grad.add_(pull)


def _peak_memory(device: torch.device) -> tuple[int, str]:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda-allocated"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale, "process-rss"
