"""A node's side of a round, in torch: the genesis model, loading a global model, an update.

The protocol layer speaks numpy (`flare.protocol.model`, `.bundle`, `.committee`); this module
moves a policy's trainable weights into and out of those formats without changing a bit, and
runs the training-side step of a round: start from the round's base model, train locally,
compress the delta with PowerSGD and write the `flare-update/1` bundle the node registers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from numpy.typing import NDArray

from flare.node.compress import CompressorState, PowerSGDConfig, bundle_bytes, compress
from flare.node.delta import from_numpy, to_numpy
from flare.protocol.errors import ConfigError
from flare.protocol.model import GlobalModel, ModelMeta, write_model

if TYPE_CHECKING:
    from flare.node.train.dataset import DatasetSource
    from flare.node.train.local import StepReport, TrainMetrics, TrainOptions
    from flare.node.train.policy import LoadedPolicy

__all__ = ["LocalUpdate", "genesis_model", "load_model", "local_update", "model_weights"]


def model_weights(loaded: LoadedPolicy) -> dict[str, NDArray[Any]]:
    """The trainable weights as the model file stores them (bfloat16 as its bit patterns)."""
    return {name: to_numpy(parameter) for name, parameter in loaded.trainable().items()}


def genesis_model(loaded: LoadedPolicy) -> bytes:
    """The `flare-model/1` bytes of the policy's current trainable weights, as round 0."""
    return write_model(ModelMeta.genesis(loaded.spec), loaded.spec, model_weights(loaded))


def load_model(loaded: LoadedPolicy, model: GlobalModel) -> None:
    """Set the policy's trainable weights to the model's, exactly."""
    if model.spec.hash != loaded.spec.hash:
        raise ConfigError(
            f"the model is for spec 0x{model.spec.hash.hex()}, the policy has "
            f"0x{loaded.spec.hash.hex()}",
            hint="the policy must be built on the deployment's backbone and settings",
        )
    with torch.no_grad():
        for name, parameter in loaded.trainable().items():
            parameter.copy_(from_numpy(model.weights[name], parameter.dtype))


@dataclass(frozen=True)
class LocalUpdate:
    """What a node registers (the bundle), how training went, and the state to carry."""

    bundle: bytes
    metrics: TrainMetrics
    state: CompressorState


def local_update(
    loaded: LoadedPolicy,
    base: GlobalModel,
    base_cid: str,
    source: DatasetSource,
    options: TrainOptions,
    *,
    round_number: int,
    node: str,
    seed: bytes,
    config: PowerSGDConfig | None = None,
    state: CompressorState | None = None,
    episodes: list[int] | None = None,
    on_step: Callable[[StepReport], None] | None = None,
) -> LocalUpdate:
    """Train from `base` on the node's data and return the bundle of the compressed delta.

    `seed` is the round's seed: PowerSGD's initial factors derive from it. The returned state
    should be persisted only once the bundle is stored and registered.
    """
    from flare.node.train.local import train_local

    load_model(loaded, base)
    result = train_local(loaded, source, options, episodes=episodes, on_step=on_step)
    compressed, next_state = compress(
        result.delta, loaded.spec, config or PowerSGDConfig(), state, seed=seed
    )
    metrics = result.metrics
    data = bundle_bytes(
        compressed,
        loaded.spec,
        round_number=round_number,
        node=node,
        base_model=base_cid,
        num_samples=metrics.samples,
        metrics={"steps": metrics.steps, "first_loss": metrics.losses[0],
                 "final_loss": metrics.final_loss},
    )  # fmt: skip
    return LocalUpdate(data, metrics, next_state)
