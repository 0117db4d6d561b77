"""SmolVLM backbones written locally, so SmolVLA builds without the Hugging Face Hub.

SmolVLA reads its backbone from a directory: `config.json` (a SmolVLMConfig), the processor
config and a tokenizer exposing SmolVLM's image tokens. We write two such directories:

- `tiny`: a ~0.4M-parameter policy that trains at tens of steps per second on a laptop CPU;
- `smolvlm2-500m`: the real SmolVLM2-500M architecture with random weights (the published
  tokenizer cannot be fetched offline, so a byte-level tokenizer stands in for it). A local
  copy of the real model directory can be used instead of either, as is.

The tokenizer is byte-level with no merges: it encodes any task string, and building it is
deterministic, so every node that writes the same backbone gets the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from flare.node.atomic import replace_directory
from flare.node.train.errors import PolicyNotFoundError

TINY = "tiny"
SMOLVLM2_500M = "smolvlm2-500m"
BUILTIN = (TINY, SMOLVLM2_500M)

# Files that carry weights: never copied into checkpoints (the policy's own safetensors holds
# every weight) and never part of the config digest (the frozen-weights digest covers them).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".gguf")
_SKIP_NAMES = frozenset({"README.md", ".gitattributes"})
# Keys that name the writer, not the model: left out of the digest.
_VOLATILE_KEYS = frozenset({"transformers_version", "_name_or_path", "_commit_hash"})

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_IMAGE_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}
# SmolLM2's roles: <|im_end|> ends a turn and pads; <|endoftext|> stands for unknown bytes.
_ROLES = {
    "bos_token": "<|im_start|>",
    "eos_token": "<|im_end|>",
    "pad_token": "<|im_end|>",
    "unk_token": "<|endoftext|>",
}
_GRID = 6  # <row_R_col_C> tokens for image splitting up to 6 x 6 tiles


def _tiny_config(vocab_size: int, pad_id: int, image_id: int) -> dict[str, Any]:
    return {
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                          "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        "text_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "head_dim": 16, "vocab_size": vocab_size, "max_position_embeddings": 512,
                        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "pad_token_id": pad_id},
        "scale_factor": 2, "vocab_size": vocab_size, "pad_token_id": pad_id,
        "image_token_id": image_id,
    }  # fmt: skip


def _smolvlm2_500m_config(vocab_size: int, pad_id: int, image_id: int) -> dict[str, Any]:
    """The published SmolVLM2-500M-Video-Instruct architecture (SigLIP-512 + SmolLM2-360M)."""
    return {
        "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
        "text_config": {"model_type": "llama", "hidden_size": 960, "intermediate_size": 2560,
                        "num_hidden_layers": 32, "num_attention_heads": 15,
                        "num_key_value_heads": 5, "head_dim": 64, "vocab_size": vocab_size,
                        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                        "rope_theta": 100000.0, "pad_token_id": pad_id},
        "scale_factor": 4, "vocab_size": vocab_size, "pad_token_id": pad_id,
        "image_token_id": image_id,
    }  # fmt: skip


_SHAPES = {
    TINY: (_tiny_config, 64, None),
    SMOLVLM2_500M: (_smolvlm2_500m_config, 512, 49280),
}


def _tokenizer() -> Any:
    """A byte-level tokenizer with SmolVLM's special tokens, exposed under SmolVLM's names."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(_SPECIAL)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    grid = [f"<row_{r}_col_{c}>" for r in range(1, _GRID + 1) for c in range(1, _GRID + 1)]
    core.add_special_tokens(_SPECIAL + list(_IMAGE_TOKENS.values()) + grid)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        **_ROLES,
        extra_special_tokens=dict(_IMAGE_TOKENS),
        model_max_length=2048,
    )


def write_backbone(name: str, directory: Path) -> Path:
    """Write the built-in backbone `name` (tiny or smolvlm2-500m) into `directory`.

    Built beside it and swapped in, so a crash never leaves half a backbone; an existing
    non-empty `directory` is replaced only if it is a backbone itself.
    """
    from transformers import SmolVLMConfig, SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_smolvlm import SmolVLMImageProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    if name not in _SHAPES:
        raise PolicyNotFoundError(
            f"unknown backbone {name!r}", hint=f"use one of {', '.join(BUILTIN)} or a directory"
        )
    make_config, image_size, vocab_floor = _SHAPES[name]
    tokenizer = _tokenizer()
    vocab_size = max(len(tokenizer), vocab_floor or 0)
    fields = make_config(
        vocab_size, tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<image>")
    )
    config = SmolVLMConfig(**fields)
    vision = fields["vision_config"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    image_seq_len = patches // fields["scale_factor"] ** 2  # image tokens after pixel shuffle
    sizes = {"size": {"longest_edge": image_size}, "max_image_size": {"longest_edge": image_size}}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, **sizes),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(**sizes),
        image_seq_len=image_seq_len,
    )

    def build(staging: Path) -> None:
        config.save_pretrained(staging)
        processor.save_pretrained(staging)

    return replace_directory(
        Path(directory), build, replaceable=is_backbone, what="SmolVLM backbone directory"
    )


def resolve_backbone(name_or_path: str | Path, cache_dir: Path) -> Path:
    """A backbone directory: a built-in name (written under `cache_dir` once) or a path."""
    if str(name_or_path) in BUILTIN:
        directory = Path(cache_dir) / str(name_or_path)
        if not (directory / "config.json").is_file():
            write_backbone(str(name_or_path), directory)
        return directory
    directory = Path(name_or_path).expanduser()
    check_backbone(directory)
    return directory


def is_backbone(directory: Path) -> bool:
    """Whether `directory` holds what SmolVLA builds from (config, tokenizer, processor)."""
    return directory.is_dir() and not _missing_files(directory)


def check_backbone(directory: Path) -> None:
    """Refuse a directory SmolVLA cannot build from, naming what is missing."""
    if not directory.is_dir():
        raise PolicyNotFoundError(
            f"backbone directory {directory} does not exist",
            hint=f"pass one of {', '.join(BUILTIN)} or a local copy of a SmolVLM model directory",
        )
    missing = _missing_files(directory)
    if missing:
        raise PolicyNotFoundError(
            f"backbone directory {directory} lacks {', '.join(missing)}",
            hint="copy the whole SmolVLM model directory (config, tokenizer, processor files)",
        )


def _missing_files(directory: Path) -> list[str]:
    missing = [f for f in ("config.json",) if not (directory / f).is_file()]
    if not any((directory / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        missing.append("tokenizer.json")
    if not any((directory / f).is_file() for f in ("processor_config.json",
                                                   "preprocessor_config.json")):  # fmt: skip
        missing.append("processor_config.json")
    return missing


def has_weights(directory: Path) -> bool:
    """Whether the backbone directory holds real VLM weights to start from."""
    return any(p.suffix in _WEIGHT_SUFFIXES for p in Path(directory).iterdir() if p.is_file())


def backbone_files(directory: Path) -> list[Path]:
    """The non-weight files of a backbone, sorted: what a checkpoint copies and the digest reads."""
    return sorted(
        p
        for p in Path(directory).iterdir()
        if p.is_file()
        and p.suffix not in _WEIGHT_SUFFIXES
        and p.name not in _SKIP_NAMES
        and not p.name.startswith(".")
    )


def config_digest(directory: Path) -> bytes:
    """sha256 over the backbone's config, tokenizer and processor files (JSON canonicalized)."""
    digest = hashlib.sha256()
    for path in backbone_files(directory):
        data = path.read_bytes()
        if path.suffix == ".json":
            data = _canonical(json.loads(data))
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.digest()


def _canonical(value: Any) -> bytes:
    return json.dumps(_strip(value), sort_keys=True, separators=(",", ":")).encode()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
