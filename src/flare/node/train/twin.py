"""A torch-free twin of the LeRobot trainer, so node-loop tests and benchmarks run in milliseconds.

It "learns" a quadratic: every node has a target model (a shared one plus its own offset,
non-IID like the demo's data) and a round moves the base a step toward it. The update travels
as a real `flare-update/1` bundle for the deployment's model spec, factored at rank r by a
truncated SVD with error feedback carried between rounds, and the state lasts across rounds
exactly as the real trainer's does: `train` leaves it pending, `commit` makes it current, both
as files in the node's state directory. `evaluate` is the squared distance to the node's own
target, so FedAvg of honest twins improves every node's loss and a poisoned update does not.

`faults` makes the twin misbehave on purpose, for the failure-path tests: a corrupt bundle,
one trained from another base, one far over the norm bound, or one larger than any honest
bundle for the spec can be.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flare.node.atomic import fsync_directory, write_file_atomically
from flare.protocol.bundle import BundleMeta, size_bound, write_bundle
from flare.protocol.model import GlobalModel
from flare.protocol.modelspec import MAX_RANK, ModelSpec
from flare.protocol.ports import Trained
from flare.protocol.unixfs import file_cid

Arrays = dict[str, NDArray[np.float32]]
FAULTS = ("corrupt", "wrong-base", "huge", "oversized")
OTHER_BASE = file_cid(b"a model this round does not start from").text


def random_arrays(spec: ModelSpec, label: str, scale: float) -> Arrays:
    """Gaussian arrays of the spec's shapes, the same for the same label on every machine."""
    seed = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return {p.name: (rng.standard_normal(p.shape) * scale).astype(np.float32) for p in spec.params}


@dataclass
class TwinTrainer:
    """A node's twin trainer: `target` is where its data pulls the model."""

    model_spec: ModelSpec
    target: Arrays
    state_dir: Path
    learning_rate: float = 0.5
    samples: int = 100
    rank: int = 2
    faults: set[str] = field(default_factory=set)

    @classmethod
    def for_node(
        cls, spec: ModelSpec, index: int, state_dir: Path, *, skew: float = 0.3, **settings: Any
    ) -> TwinTrainer:
        """Node `index` of a federation: the shared target plus an offset of its own."""
        shared = random_arrays(spec, "twin/target", 1.0)
        offset = random_arrays(spec, f"twin/offset/{index}", skew)
        target = {name: shared[name] + offset[name] for name in shared}
        return cls(spec, target, state_dir, **settings)

    @property
    def spec(self) -> ModelSpec:
        return self.model_spec

    # ---------------------------------------------------------------- the Trainer port

    def train(
        self, base: GlobalModel, base_cid: str, round_number: int, seed: bytes, node: str
    ) -> Trained:
        residual = self._load("current")
        factors: dict[str, NDArray[np.float32]] = {}
        next_residual: Arrays = {}
        steps = 0.0
        for p in self.spec.params:
            weights = np.asarray(base.weights[p.name], dtype=np.float32)
            step = self.learning_rate * (self.target[p.name] - weights)
            if "huge" in self.faults:
                step = step * 1e6
            wanted = step + residual.get(p.name, 0.0)
            if p.factored(self.rank):
                matrix = wanted.reshape(p.matrix_shape or wanted.shape)
                u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
                factor_p = (u[:, : self.rank] * s[: self.rank]).astype(np.float32)
                factor_q = vt[: self.rank].T.astype(np.float32)
                factors[p.name + ".P"], factors[p.name + ".Q"] = factor_p, factor_q
                sent = (factor_p.astype(np.float64) @ factor_q.astype(np.float64).T).astype(
                    np.float32
                )
                next_residual[p.name] = (matrix - sent).reshape(p.shape)
            else:
                factors[p.name] = wanted.astype(np.float32)
            steps += float(np.square(step).sum())
        meta = BundleMeta(
            round=round_number,
            node=node,
            base_model=OTHER_BASE if "wrong-base" in self.faults else base_cid,
            num_samples=self.samples,
            rank=self.rank,
            model_spec=self.spec.hash,
            metrics={"step_norm": float(np.sqrt(steps))},
        )
        bundle = write_bundle(meta, self.spec, factors)
        if "corrupt" in self.faults:
            bundle = bundle[: len(bundle) // 2]
        if "oversized" in self.faults:
            bundle += bytes(size_bound(self.spec, MAX_RANK))
        self._save(f"pending-{round_number}", next_residual)
        return Trained(bundle, self.samples, {"step_norm": float(np.sqrt(steps))})

    def commit(self, round_number: int) -> None:
        pending = self.state_dir / f"pending-{round_number}.npz"
        if pending.exists():
            pending.replace(self.state_dir / "current.npz")
            fsync_directory(self.state_dir)
        write_file_atomically(
            self.state_dir / "committed.json", json.dumps({"round": round_number}).encode()
        )

    def evaluate(self, model: GlobalModel) -> float:
        total = 0.0
        for p in self.spec.params:
            diff = np.asarray(model.weights[p.name], dtype=np.float64) - self.target[p.name]
            total += float(np.square(diff).sum())
        return total / self.spec.numel

    # ---------------------------------------------------------------- state files

    def committed_round(self) -> int | None:
        """The round whose state the next round starts from (None before any)."""
        path = self.state_dir / "committed.json"
        return int(json.loads(path.read_text())["round"]) if path.exists() else None

    def residual(self) -> Mapping[str, NDArray[np.float32]]:
        """The committed error-feedback residual (empty before any round)."""
        return self._load("current")

    def _load(self, name: str) -> Arrays:
        path = self.state_dir / f"{name}.npz"
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def _save(self, name: str, arrays: Arrays) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.state_dir / f"{name}.npz", buffer.getvalue())
