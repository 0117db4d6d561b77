"""Locally written SmolVLM backbones: what SmolVLA needs, deterministic, the real sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flare.node.atomic import DirectoryNotReplaceableError
from flare.node.train.backbone import (
    SMOLVLM2_500M,
    check_backbone,
    config_digest,
    has_weights,
    resolve_backbone,
    write_backbone,
)
from flare.node.train.errors import PolicyNotFoundError


def test_tiny_backbone_loads_offline_with_smolvlm_image_tokens(tiny_backbone: Path) -> None:
    from transformers import AutoConfig, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_backbone)
    config = AutoConfig.from_pretrained(tiny_backbone)
    tokenizer = processor.tokenizer

    assert type(processor).__name__ == "SmolVLMProcessor"
    assert config.text_config.hidden_size == 64
    assert config.vision_config.image_size == 64
    for name in ("fake_image_token", "image_token", "global_image_token", "end_of_utterance_token"):
        token = getattr(tokenizer, name)
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
    ids = tokenizer("pick up the red cube\n")["input_ids"]
    assert tokenizer.decode(ids) == "pick up the red cube\n"
    assert max(ids) < config.text_config.vocab_size
    assert not has_weights(tiny_backbone)


def test_writing_twice_gives_the_same_backbone(tiny_backbone: Path, tmp_path: Path) -> None:
    again = write_backbone("tiny", tmp_path / "again")

    assert config_digest(again) == config_digest(tiny_backbone)
    assert resolve_backbone("tiny", tmp_path) == tmp_path / "tiny"


def test_rewriting_replaces_a_backbone_but_never_another_directory(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    target = write_backbone("tiny", tmp_path / "backbone")
    (target / "stale.json").write_text("{}")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cube.png").write_bytes(b"png")

    write_backbone("tiny", target)
    with pytest.raises(DirectoryNotReplaceableError, match="not a SmolVLM backbone"):
        write_backbone("tiny", other)

    assert not (target / "stale.json").exists()
    assert config_digest(target) == config_digest(tiny_backbone)
    assert [p.name for p in other.iterdir()] == ["cube.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone", "photos"]


def test_full_size_backbone_gives_the_published_smolvla_sizes(tmp_path: Path) -> None:
    """SmolVLM2-500M under SmolVLA: 450,046,176 parameters, 99,880,992 trainable (155 tensors)."""
    import torch
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    backbone = resolve_backbone(SMOLVLM2_500M, tmp_path)
    config = SmolVLAConfig(
        vlm_model_name=str(backbone), device="cpu", push_to_hub=False,
        input_features={
            "observation.state": PolicyFeature(FeatureType.STATE, (6,)),
            "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 480, 640)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (6,))},
    )  # fmt: skip

    with torch.device("meta"):  # shapes only: no 1.8 GB of random weights
        policy = SmolVLAPolicy(config)

    parameters = list(policy.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    assert sum(p.numel() for p in parameters) == 450_046_176
    assert sum(p.numel() for p in trainable) == 99_880_992
    assert len(trainable) == 155
    assert sum(p.ndim == 2 for p in trainable) == 117


def test_missing_backbone_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyNotFoundError, match="does not exist"):
        resolve_backbone(tmp_path / "nowhere", tmp_path)
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(PolicyNotFoundError, match=r"tokenizer\.json, processor_config\.json"):
        check_backbone(tmp_path / "partial")
    with pytest.raises(PolicyNotFoundError, match="unknown backbone"):
        write_backbone("huge", tmp_path / "huge")
