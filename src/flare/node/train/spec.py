"""The model spec of a SmolVLA policy: the hash a deployment puts on-chain as `modelSpecHash`.

Two nodes can only exchange deltas if they train the same function of the same frozen weights.
The spec pins that with `flare.protocol.modelspec.ModelSpec`: the trainable parameters (names,
shapes, dtypes, in module order) plus a backbone id made of two digests:

- `config`: the backbone's config, tokenizer and processor files, and the SmolVLA fields that
  change what is trained (chunk size, layer counts, features, normalization modes, ...);
- `frozen`: every tensor that does not travel, i.e. the frozen weights and buffers of the
  policy and the normalization statistics of its processors.

`backbone_id` and `model_spec` are pure (no torch): given the two digests and the layout, any
auditor recomputes the hash at the protocol level. The rest reads them off a loaded policy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flare.node.train import backbone as backbones
from flare.protocol.errors import ConfigError
from flare.protocol.modelspec import ModelSpec, ParamSpec

if TYPE_CHECKING:
    import torch


class PolicyParts(Protocol):
    """What a spec is computed from: a loaded policy's modules, config and backbone files.

    `flare.node.train.policy.LoadedPolicy` is one; this module needs only these parts, so it
    does not import the policy module (which imports it).
    """

    @property
    def policy(self) -> Any: ...

    @property
    def preprocessor(self) -> Any: ...

    @property
    def postprocessor(self) -> Any: ...

    @property
    def backbone_dir(self) -> Path: ...

    @property
    def config(self) -> Any: ...

    def trainable(self) -> Mapping[str, torch.nn.Parameter]: ...


BACKBONE_FORMAT = "flare-smolvla/1"
# SmolVLAConfig fields that change the trained function. Inference-only settings (action
# steps per chunk, denoising steps, caching, compilation, device) are left out.
ARCHITECTURE_FIELDS = (
    "n_obs_steps", "chunk_size", "normalization_mapping", "max_state_dim", "max_action_dim",
    "resize_imgs_with_padding", "empty_cameras", "adapt_to_pi_aloha", "tokenizer_max_length",
    "freeze_vision_encoder", "train_expert_only", "train_state_proj", "add_image_special_tokens",
    "attention_mode", "prefix_length", "pad_language_to", "num_expert_layers", "num_vlm_layers",
    "self_attn_every_n_layers", "expert_width_multiplier", "min_period", "max_period",
    "input_features", "output_features",
)  # fmt: skip


def backbone_id(config_digest: bytes, frozen_digest: bytes) -> str:
    """The `backbone` string of the spec: format, config digest, frozen-state digest."""
    return f"{BACKBONE_FORMAT};config={config_digest.hex()};frozen={frozen_digest.hex()}"


def model_spec(
    params: Iterable[tuple[str, tuple[int, ...], str]], config_digest: bytes, frozen_digest: bytes
) -> ModelSpec:
    """The spec from the trainable layout (name, shape, dtype) and the two digests."""
    layout = tuple(ParamSpec(name, tuple(shape), dtype) for name, shape, dtype in params)
    return ModelSpec(layout, backbone_id(config_digest, frozen_digest))


def policy_spec(loaded: PolicyParts) -> ModelSpec:
    """The spec of a loaded policy: the layout as `flare.node.delta` reads it, plus the digests."""
    from flare.node.delta import SPEC_DTYPE, spec_from_parameters  # torch: loaded on use

    for name, parameter in loaded.trainable().items():
        if parameter.dtype not in SPEC_DTYPE:
            raise ConfigError(
                f"trainable parameter {name} has dtype {parameter.dtype}",
                hint="trainable parameters must be float32, bfloat16 or float16",
            )
    backbone = backbone_id(config_digest(loaded), frozen_digest(loaded))
    return spec_from_parameters(loaded.policy.named_parameters(), backbone=backbone)


def config_digest(loaded: PolicyParts) -> bytes:
    """sha256 of the backbone files' digest and the architecture fields of the policy config."""
    import draccus
    from lerobot.configs import PreTrainedConfig

    encoded: dict[str, Any] = draccus.encode(loaded.config, PreTrainedConfig)
    architecture = {key: encoded.get(key) for key in ARCHITECTURE_FIELDS}
    body = json.dumps(
        {"backbone": backbones.config_digest(loaded.backbone_dir).hex(), "smolvla": architecture},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).digest()


def frozen_digest(loaded: PolicyParts) -> bytes:
    """sha256 over every frozen tensor (by name, dtype, shape, bytes) and processor statistics."""
    trainable = set(loaded.trainable())
    digest = hashlib.sha256()
    state = loaded.policy.state_dict()
    for name in sorted(state):
        if name not in trainable:
            _update(digest, f"policy/{name}", state[name])
    for label, pipeline in (("pre", loaded.preprocessor), ("post", loaded.postprocessor)):
        for index, step in enumerate(pipeline.steps):
            step_state = step.state_dict() if hasattr(step, "state_dict") else {}
            for key in sorted(step_state):
                _update(digest, f"{label}/{index}/{key}", step_state[key])
    return digest.digest()


def _update(digest: Any, name: str, tensor: torch.Tensor) -> None:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    header = json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode()
    digest.update(len(header).to_bytes(4, "little") + header)
    digest.update(flat.view(_byte_view(flat)).numpy().tobytes())


def _byte_view(tensor: torch.Tensor) -> torch.dtype:
    """Reinterpret as raw bytes (numpy has no bfloat16); bool is already one byte."""
    import torch

    return torch.uint8 if tensor.dtype != torch.bool else torch.bool
