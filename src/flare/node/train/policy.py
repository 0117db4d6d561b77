"""Build, save and load SmolVLA through LeRobot's own policy, config and processor APIs.

LeRobot stores the backbone as an absolute `vlm_model_name` path (or a Hub id), so its
checkpoints only reload where they were written. Ours copy the backbone's config, tokenizer
and processor files into `<checkpoint>/backbone` and point the config and the tokenizer step
there on every load: a checkpoint directory reloads on another machine and under another path,
with the Hub unreachable. Weights are never copied twice: the policy's `model.safetensors`
already holds the backbone weights, so a loaded policy never reads backbone weight files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flare.node.atomic import check_replaceable, replace_directory
from flare.node.train import backbone as backbones
from flare.node.train.errors import PolicyNotFoundError, SpecMismatchError
from flare.node.train.spec import policy_spec

if TYPE_CHECKING:
    import torch
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.processor import PolicyProcessorPipeline

    from flare.protocol.modelspec import ModelSpec

CHECKPOINT_FORMAT = "flare-policy/1"
BACKBONE_DIR = "backbone"
MANIFEST = "flare.json"
_CHECKPOINT = "flare checkpoint (a directory with flare.json)"

# SmolVLAConfig fields per preset. "smolvla" is LeRobot's default (50-step chunks, 16 VLM
# layers); "tiny" shortens the chunk and raises the learning rate so a CPU learns in seconds,
# and keeps the decay floor at a tenth of the peak (SmolVLA's 2.5e-6 is 1/1200 of 3e-3: late
# federated rounds would barely move).
PRESETS: dict[str, dict[str, Any]] = {
    "smolvla": {},
    "tiny": {
        "chunk_size": 10,
        "n_action_steps": 10,
        "optimizer_lr": 3e-3,
        "scheduler_decay_lr": 3e-4,
    },
}


@dataclass
class LoadedPolicy:
    """A SmolVLA policy with the processors that feed it and the backbone it was built on."""

    policy: SmolVLAPolicy
    preprocessor: PolicyProcessorPipeline[dict[str, Any], dict[str, Any]]
    postprocessor: PolicyProcessorPipeline[Any, Any]
    backbone_dir: Path
    _spec: ModelSpec | None = field(default=None, repr=False)

    @property
    def config(self) -> SmolVLAConfig:
        return self.policy.config

    @property
    def device(self) -> str:
        return str(self.policy.config.device)

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        """name -> parameter for every parameter the optimizer moves, in module order."""
        return {n: p for n, p in self.policy.named_parameters() if p.requires_grad}

    @property
    def spec(self) -> ModelSpec:
        """The model spec (computed once: it hashes every frozen weight)."""
        if self._spec is None:
            self._spec = policy_spec(self)
        return self._spec


def select_device(requested: str | None = None) -> str:
    """The device to train on: the one asked for, else CUDA when present, else the CPU."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise PolicyNotFoundError(
                f"device {requested} was asked for but CUDA is not available",
                hint="leave --device out to pick the CPU automatically",
            )
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def lerobot_quiet() -> Iterator[None]:
    """Send LeRobot's progress prints to stderr, so stdout stays parseable (`--json`)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def new_policy(
    backbone_dir: Path,
    meta: LeRobotDatasetMetadata,
    *,
    preset: str = "smolvla",
    device: str | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedPolicy:
    """A fresh SmolVLA for the dataset's features, normalized with the dataset's statistics.

    The backbone's vision `image_size` fixes the image resize and its layer count caps the
    VLM layers used; weights are loaded only when the backbone directory has them.
    """
    import torch
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    if preset not in PRESETS:
        raise PolicyNotFoundError(f"unknown preset {preset!r}", hint=f"use one of {list(PRESETS)}")
    backbones.check_backbone(backbone_dir)
    vlm = json.loads((backbone_dir / "config.json").read_text())
    size = int(vlm.get("vision_config", {}).get("image_size", 512))
    layers = int(vlm.get("text_config", {}).get("num_hidden_layers", 16))
    fields: dict[str, Any] = {
        "vlm_model_name": str(backbone_dir.resolve()),
        "load_vlm_weights": backbones.has_weights(backbone_dir),
        "resize_imgs_with_padding": (size, size),
        "num_vlm_layers": min(16, layers),
        "push_to_hub": False,
        "device": select_device(device),
        **PRESETS[preset],
        **dict(overrides or {}),
    }
    config = SmolVLAConfig(**fields)
    torch.manual_seed(seed)
    with lerobot_quiet():
        policy = make_policy(config, ds_meta=meta)
        preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=meta.stats)
    return LoadedPolicy(policy, preprocessor, postprocessor, backbone_dir.resolve())


def save_policy(
    loaded: LoadedPolicy, directory: Path, *, extra: Callable[[Path], None] | None = None
) -> Path:
    """Write a self-contained checkpoint (policy, processors, backbone files, spec manifest).

    Built in a sibling directory and swapped in (`flare.node.atomic.replace_directory`): a
    crash leaves the old checkpoint or the new one, never half of one. `extra(staging)` may add
    files (a delta, a training record) that then appear together with the rest. An existing
    `directory` is replaced only if it is empty or a flare checkpoint (it has `flare.json`):
    `train --out ~/data` refuses rather than wiping ~/data.
    """
    directory = Path(directory).expanduser().resolve()

    def build(staging: Path) -> None:
        (staging / BACKBONE_DIR).mkdir()
        for path in backbones.backbone_files(loaded.backbone_dir):
            shutil.copy2(path, staging / BACKBONE_DIR / path.name)
        # In place, LeRobot's own tools (lerobot-train --policy.path) read the absolute path.
        config = loaded.config
        original = config.vlm_model_name
        config.vlm_model_name = str(directory / BACKBONE_DIR)
        try:
            loaded.policy.save_pretrained(staging)
        finally:
            config.vlm_model_name = original
        loaded.preprocessor.save_pretrained(staging)
        loaded.postprocessor.save_pretrained(staging)
        _point_tokenizer(staging, directory / BACKBONE_DIR)
        manifest = {
            "format": CHECKPOINT_FORMAT,
            "backbone": BACKBONE_DIR,
            "model_spec": "0x" + loaded.spec.hash.hex(),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if extra is not None:
            extra(staging)

    return replace_directory(directory, build, replaceable=is_checkpoint, what=_CHECKPOINT)


def check_checkpoint_target(directory: Path) -> None:
    """Refuse, before any training, an output directory `save_policy` would not replace."""
    path = Path(directory).expanduser().resolve()
    check_replaceable(path, is_checkpoint, _CHECKPOINT)


def is_checkpoint(directory: Path) -> bool:
    """Whether `directory` holds a checkpoint `save_policy` wrote (its manifest names it)."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == CHECKPOINT_FORMAT


def load_policy(
    directory: Path,
    *,
    device: str | None = None,
    backbone: Path | None = None,
    expected_spec: bytes | None = None,
    dataset_stats: Mapping[str, Any] | None = None,
) -> LoadedPolicy:
    """Load a SmolVLA checkpoint directory (ours, or a LeRobot one such as smolvla_base).

    With `expected_spec`, a checkpoint of any other model spec is refused before use. The
    checkpoint's normalization statistics are kept (nodes of one deployment must share them);
    `dataset_stats` replaces them, as `lerobot-train` does when fine-tuning, which makes a new
    model spec: that is how a deployment's base model is made from a published checkpoint.
    """
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    directory = Path(directory).expanduser().resolve()
    for name in ("config.json", "model.safetensors", "policy_preprocessor.json"):
        if not (directory / name).is_file():
            raise PolicyNotFoundError(
                f"{directory} is not a policy checkpoint (no {name})",
                hint="pass a directory written by `flare-node train --out` or lerobot-train "
                "(pretrained_model/), with its processor files",
            )
    config = PreTrainedConfig.from_pretrained(directory)
    if not isinstance(config, SmolVLAConfig):
        raise PolicyNotFoundError(
            f"{directory} holds a {config.type} policy; flare-node trains SmolVLA",
            hint="pass a SmolVLA checkpoint",
        )
    backbone_dir = _find_backbone(directory, config.vlm_model_name, backbone)
    config.vlm_model_name = str(backbone_dir)
    config.load_vlm_weights = False  # every weight comes from the checkpoint itself
    config.push_to_hub = False
    config.device = select_device(device)
    config.pretrained_path = directory
    pre: dict[str, Any] = {
        "device_processor": {"device": config.device},
        "tokenizer_processor": {"tokenizer_name": str(backbone_dir)},
    }
    post: dict[str, Any] = {}
    if dataset_stats is not None:
        norm_map = config.normalization_mapping
        features = {**config.input_features, **config.output_features}
        pre["normalizer_processor"] = {"stats": dataset_stats, "features": features,
                                       "norm_map": norm_map}  # fmt: skip
        post["unnormalizer_processor"] = {"stats": dataset_stats, "norm_map": norm_map,
                                          "features": config.output_features}  # fmt: skip
    with lerobot_quiet():
        policy = SmolVLAPolicy.from_pretrained(directory, config=config)
        preprocessor, postprocessor = make_pre_post_processors(
            config,
            pretrained_path=str(directory),
            preprocessor_overrides=pre,
            postprocessor_overrides=post,
        )
    loaded = LoadedPolicy(policy, preprocessor, postprocessor, backbone_dir)
    if expected_spec is not None:
        check_spec(loaded, expected_spec, what=f"policy {directory.name}")
    return loaded


def _find_backbone(directory: Path, vlm_model_name: str, override: Path | None) -> Path:
    """Where the backbone files are: given, bundled, the recorded path, or the local HF cache."""
    candidates = [override] if override is not None else []
    candidates += [directory / BACKBONE_DIR, Path(vlm_model_name).expanduser()]
    for candidate in candidates:
        if candidate is not None and (candidate / "config.json").is_file():
            backbones.check_backbone(candidate)
            return candidate.resolve()
    from huggingface_hub import try_to_load_from_cache

    # a path that is not a Hub id (ValueError) or an unreadable cache (OSError): just not found
    with contextlib.suppress(ValueError, OSError):
        cached = try_to_load_from_cache(vlm_model_name, "config.json")
        if isinstance(cached, str):
            return Path(cached).parent
    raise PolicyNotFoundError(
        f"the backbone {vlm_model_name!r} of {directory} is not available locally",
        hint=f"copy the backbone's config, tokenizer and processor files into "
        f"{directory / BACKBONE_DIR}, or pass --backbone DIR",
    )


def _point_tokenizer(staging: Path, backbone_dir: Path) -> None:
    """Make the saved tokenizer step name the bundled backbone, not the original path."""
    path = staging / "policy_preprocessor.json"
    pipeline = json.loads(path.read_text())
    for step in pipeline.get("steps", []):
        if step.get("registry_name") == "tokenizer_processor":
            step.setdefault("config", {})["tokenizer_name"] = str(backbone_dir)
    path.write_text(json.dumps(pipeline, indent=4) + "\n")


def check_spec(loaded: LoadedPolicy, expected: bytes, *, what: str) -> None:
    """Refuse a policy whose spec hash is not `expected`."""
    actual = loaded.spec.hash
    if actual != expected:
        raise SpecMismatchError(expected, actual, what=what)
