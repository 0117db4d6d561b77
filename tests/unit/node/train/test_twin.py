"""The torch-free twin trainer keeps its state across rounds exactly as the port asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flare.node.train.twin import TwinTrainer
from flare.protocol.bundle import read_bundle
from flare.protocol.model import ModelMeta, read_model, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.unixfs import file_cid

SPEC = ModelSpec.from_shapes({"layer.weight": (24, 16), "layer.bias": (16,)})
NODE = "0x" + "ab" * 20


def genesis() -> tuple[object, str]:
    weights = {p.name: np.zeros(p.shape, dtype=np.float32) for p in SPEC.params}
    data = write_model(ModelMeta.genesis(SPEC), SPEC, weights)
    return read_model(data, SPEC), file_cid(data).text


def test_round_r_residual_enters_round_r_plus_one(tmp_path: Path) -> None:
    base, cid = genesis()
    carried = TwinTrainer.for_node(SPEC, 1, tmp_path / "carried")
    fresh = TwinTrainer.for_node(SPEC, 1, tmp_path / "fresh")

    carried.train(base, cid, 1, b"", NODE)
    assert carried.residual() == {}  # pending until the update is registered
    carried.commit(1)
    residual = carried.residual()
    assert carried.committed_round() == 1
    assert float(np.abs(residual["layer.weight"]).max()) > 0  # rank 2 of 16 leaves a remainder

    second = read_bundle(carried.train(base, cid, 2, b"", NODE).bundle, SPEC).delta()
    without = read_bundle(fresh.train(base, cid, 2, b"", NODE).bundle, SPEC).delta()
    # The carried update re-sends what round 1 could not: its rank-2 factors of step+residual.
    assert not np.allclose(second["layer.weight"], without["layer.weight"])
    wanted = 0.5 * (carried.target["layer.weight"] - 0.0) + residual["layer.weight"]
    u, s, vt = np.linalg.svd(wanted.astype(np.float64), full_matrices=False)
    expected = (u[:, :2] * s[:2]) @ vt[:2]
    np.testing.assert_allclose(second["layer.weight"], expected, rtol=1e-4, atol=1e-5)


def test_training_again_before_commit_starts_from_the_same_state(tmp_path: Path) -> None:
    base, cid = genesis()
    trainer = TwinTrainer.for_node(SPEC, 2, tmp_path)
    trainer.train(base, cid, 1, b"", NODE)
    trainer.commit(1)
    first = trainer.train(base, cid, 2, b"", NODE).bundle
    again = trainer.train(base, cid, 2, b"", NODE).bundle  # a crash before registering
    assert first == again
