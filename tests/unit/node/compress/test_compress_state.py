"""The compressor state survives a restart bit for bit, and a foreign one is refused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from flare.node.compress import (
    PowerSGDConfig,
    StaleCompressorStateError,
    compress,
    load_state,
    save_state,
)
from flare.protocol.modelspec import ModelSpec

SPEC = ModelSpec.from_shapes({"w": (40, 30), "v": (2, 20, 10), "b": (30,)})
SEED = b"\x07" * 32


def delta(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {p.name: torch.randn(p.shape, generator=generator) for p in SPEC.params}


def test_restart_from_saved_state_gives_the_same_next_bundle(tmp_path: Path) -> None:
    config = PowerSGDConfig(rank=2)
    _, state = compress(delta(1), SPEC, config, None, seed=SEED)
    path = tmp_path / "state" / "compressor.safetensors"
    save_state(state, path, SPEC)
    loaded = load_state(path, SPEC)
    assert loaded.residual.keys() == state.residual.keys()
    assert loaded.q.keys() == state.q.keys() == {"w"}
    assert all(torch.equal(loaded.residual[k], state.residual[k]) for k in state.residual)
    continued, _ = compress(delta(2), SPEC, config, state, seed=SEED)
    restarted, _ = compress(delta(2), SPEC, config, loaded, seed=SEED)
    assert all(torch.equal(continued.tensors[k], restarted.tensors[k]) for k in continued.tensors)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_missing_state_is_a_fresh_start(tmp_path: Path) -> None:
    state = load_state(tmp_path / "absent.safetensors", SPEC)
    assert state.residual == {}
    assert state.q == {}


def test_state_of_another_model_or_damaged_is_refused(tmp_path: Path) -> None:
    _, state = compress(delta(1), SPEC, PowerSGDConfig(), None, seed=SEED)
    path = tmp_path / "compressor.safetensors"
    save_state(state, path, SPEC)
    other = ModelSpec.from_shapes({"w": (40, 30), "v": (2, 20, 10), "b": (31,)})
    with pytest.raises(StaleCompressorStateError, match="another model") as caught:
        load_state(path, other)
    assert caught.value.hint is not None
    assert "delete" in caught.value.hint
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StaleCompressorStateError, match="cannot read"):
        load_state(path, SPEC)


def test_changing_the_rank_keeps_residuals_and_restarts_q() -> None:
    _, state = compress(delta(1), SPEC, PowerSGDConfig(rank=2), None, seed=SEED)
    compressed, next_state = compress(delta(2), SPEC, PowerSGDConfig(rank=3), state, seed=SEED)
    assert compressed.tensors["w.Q"].shape == (30, 3)
    assert next_state.q["w"].shape == (30, 3)


def test_a_failed_save_keeps_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = PowerSGDConfig(rank=2)
    _, first = compress(delta(1), SPEC, config, None, seed=SEED)
    _, second = compress(delta(2), SPEC, config, first, seed=SEED)
    path = tmp_path / "compressor.safetensors"
    save_state(first, path, SPEC)
    assert not torch.equal(second.residual["w"], first.residual["w"])

    def disk_full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_state(second, path, SPEC)
    monkeypatch.undo()

    kept = load_state(path, SPEC)
    assert all(torch.equal(kept.residual[k], first.residual[k]) for k in first.residual)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
