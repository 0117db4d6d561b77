"""The global model (`flare-model/1`): the trainable weights a round finalizes, in one file.

A canonical safetensors file (`flare.protocol.tensorfile`) holding every trainable parameter of
the model spec under its own name, in its spec dtype, in name order; the frozen backbone is
fixed by the spec hash and never travels. Metadata (str -> str):

    format        flare-model/1
    round         the round that finalized it (decimal; 0 for the genesis model)
    parent        CID of the model it was derived from ("" for the genesis model)
    updates_root  0x + 64 hex: the `rounds.updates_root` of the updates it includes (zeros
                  for the genesis model)
    model_spec    0x + 64 hex: the spec hash

Every seat holder computes the next model itself and votes for a proposal only if the proposed
CID is the one it computed, so `apply_delta` is the same to the bit on every machine (given the
same aggregated delta, which `flare.protocol.committee` computes in a fixed order): the
parent's weights widened to float64, the delta added, then a rounding to float32 and, for
narrower dtypes, from there to the spec dtype (round to nearest even, as torch does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flare.protocol.bundle import header_bound
from flare.protocol.errors import IntegrityError
from flare.protocol.modelspec import ModelSpec
from flare.protocol.tensorfile import (
    DECIMAL,
    NP_WIRE,
    UINT64,
    Layout,
    TensorFileError,
    bfloat16_bits,
    is_canonical_cid,
    layout_bytes,
    read_tensor_file,
    write_tensor_file,
)

__all__ = [
    "FORMAT",
    "GlobalModel",
    "InvalidModelError",
    "ModelMeta",
    "apply_delta",
    "model_layout",
    "model_size",
    "read_model",
    "write_model",
]

FORMAT = "flare-model/1"
_META_KEYS = frozenset({"format", "round", "parent", "updates_root", "model_spec"})
_HEX32 = re.compile(r"0x[0-9a-f]{64}")


class InvalidModelError(IntegrityError):
    """A file that is not a well-formed `flare-model/1` model for this model spec."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint
            or "the model is refused; fetch it again, or check that it was built for this "
            "deployment's model spec",
        )


@dataclass(frozen=True)
class ModelMeta:
    """What a global model says about itself; checked on construction."""

    round: int
    parent: str
    updates_root: bytes
    model_spec: bytes

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.round <= UINT64:
            problems.append(f"round {self.round} is not a uint64")
        genesis = self.round == 0
        if genesis and (self.parent or any(self.updates_root)):
            problems.append("the genesis model (round 0) has no parent and no updates")
        if not genesis and not is_canonical_cid(self.parent):
            problems.append(
                f"parent {str(self.parent)[:70]!r} is not a CID in canonical form "
                "(base32 CIDv1, raw or dag-pb, sha2-256)"
            )
        if len(self.updates_root) != 32 or len(self.model_spec) != 32:
            problems.append("updates root and model spec hash must be 32 bytes each")
        if problems:
            raise InvalidModelError("bad model metadata: " + "; ".join(problems))

    @classmethod
    def genesis(cls, spec: ModelSpec) -> ModelMeta:
        return cls(round=0, parent="", updates_root=bytes(32), model_spec=spec.hash)

    def encode(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "round": str(self.round),
            "parent": self.parent,
            "updates_root": "0x" + self.updates_root.hex(),
            "model_spec": "0x" + self.model_spec.hex(),
        }

    @classmethod
    def decode(cls, metadata: Mapping[str, str], spec: ModelSpec) -> ModelMeta:
        version = metadata.get("format")
        if version != FORMAT:
            raise InvalidModelError(f"model format {str(version)[:40]!r} is not {FORMAT}")
        if set(metadata) != _META_KEYS:
            odd = sorted(set(metadata) ^ _META_KEYS)
            raise InvalidModelError(f"metadata keys missing or unexpected: {odd[:5]}")
        if not DECIMAL.fullmatch(metadata["round"]):
            raise InvalidModelError(f"metadata round = {metadata['round'][:30]!r} is not decimal")
        for key in ("updates_root", "model_spec"):
            if not _HEX32.fullmatch(metadata[key]):
                raise InvalidModelError(f"metadata {key} is not 0x and 64 lower-case hex digits")
        if bytes.fromhex(metadata["model_spec"][2:]) != spec.hash:
            raise InvalidModelError(
                f"model is for model spec {metadata['model_spec']}, not 0x{spec.hash.hex()}",
                hint="it was built for another deployment's model layout",
            )
        return cls(
            round=int(metadata["round"]),
            parent=metadata["parent"],
            updates_root=bytes.fromhex(metadata["updates_root"][2:]),
            model_spec=spec.hash,
        )


@dataclass(frozen=True)
class GlobalModel:
    """A checked model: its metadata and its weights as float32 (exact for every dtype)."""

    meta: ModelMeta
    spec: ModelSpec
    weights: Mapping[str, NDArray[np.float32]]


def model_layout(spec: ModelSpec) -> Layout:
    """Every trainable parameter in its spec dtype, in name order."""
    return {p.name: (p.dtype, p.shape) for p in sorted(spec.params, key=lambda p: p.name)}


def model_size(spec: ModelSpec) -> int:
    """Largest model file for this spec: what a fetcher should refuse to exceed."""
    return 8 + header_bound(spec) + layout_bytes(model_layout(spec))


def write_model(meta: ModelMeta, spec: ModelSpec, weights: Mapping[str, NDArray[Any]]) -> bytes:
    """The canonical bytes of a model (wire arrays: float32, float16, bfloat16 as uint16 bits)."""
    if meta.model_spec != spec.hash:
        raise InvalidModelError("model metadata names another model spec than the one given")
    try:
        return write_tensor_file(model_layout(spec), meta.encode(), weights)
    except TensorFileError as error:
        raise InvalidModelError(str(error)) from error


def read_model(data: bytes, spec: ModelSpec, *, max_bytes: int | None = None) -> GlobalModel:
    """Parse and check an untrusted model file against the model spec; refuse anything else."""
    layout = model_layout(spec)

    def decode(metadata: dict[str, str]) -> tuple[ModelMeta, Layout, dict[str, str]]:
        meta = ModelMeta.decode(metadata, spec)
        return meta, layout, meta.encode()

    try:
        meta, weights = read_tensor_file(
            data,
            kind="model",
            limit=max_bytes if max_bytes is not None else model_size(spec),
            header_limit=header_bound(spec),
            decode=decode,
        )
    except TensorFileError as error:
        raise InvalidModelError(str(error)) from error
    return GlobalModel(meta, spec, weights)


def apply_delta(parent: GlobalModel, delta: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """The next model's wire arrays: parent + delta, rounded once per step as the module says.

    Refuses (InvalidModelError) a delta that misses a parameter, has the wrong shape, or
    pushes a weight past what its dtype can hold.
    """
    spec = parent.spec
    if set(delta) != set(spec.names):
        odd = sorted(set(delta) ^ set(spec.names))
        raise InvalidModelError(f"the delta does not cover the model's parameters: {odd[:5]}")
    weights: dict[str, NDArray[Any]] = {}
    for param in spec.params:
        step = np.asarray(delta[param.name], dtype=np.float64)
        if step.shape != param.shape:
            raise InvalidModelError(
                f"delta of {param.name} has shape {list(step.shape)}, not {list(param.shape)}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            summed = (parent.weights[param.name].astype(np.float64) + step).astype(np.float32)
            wire = (
                bfloat16_bits(summed)
                if param.dtype == "bfloat16"
                else summed.astype(NP_WIRE[param.dtype])
            )
        if not np.isfinite(summed).all() or (
            param.dtype == "float16" and not np.isfinite(wire).all()
        ):
            raise InvalidModelError(
                f"{param.name} leaves the range of {param.dtype} after the update",
                hint="the aggregate is refused; a norm bound on updates keeps this from happening",
            )
        if param.dtype == "bfloat16" and ((wire & 0x7F80) == 0x7F80).any():
            raise InvalidModelError(f"{param.name} leaves the range of bfloat16 after the update")
        weights[param.name] = wire
    return weights
