"""The update bundle (`flare-update/1`): one safetensors file per node per round.

Bundles come from untrusted peers, so the reader parses the safetensors layout itself: it checks
the header size, the format version, the metadata, every tensor's name, dtype and shape against
the layout the model spec implies, and the exact file size before it creates a single array,
then refuses non-finite values. The writer is canonical (sorted JSON without spaces, tensors in
name order, checksummed address), and the reader insists on that canonical header, so the same
update always has the same bytes and therefore the same CID.

Metadata is str -> str (a safetensors rule). Integers are decimal without sign or leading zeros;
`shapes` and `metrics` are JSON with sorted keys and no spaces; `model_spec` is 0x-hex.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.address import to_checksum_address
from numpy.typing import NDArray

from flare.protocol.errors import IntegrityError
from flare.protocol.modelspec import DTYPES, MAX_RANK, ModelSpec
from flare.protocol.tensorfile import (
    DECIMAL,
    UINT64,
    Layout,
    TensorFileError,
    canonical_json,
    is_canonical_cid,
    read_tensor_file,
    write_tensor_file,
)

FORMAT = "flare-update/1"
_META_KEYS = frozenset(
    {"format", "round", "node", "base_model", "num_samples", "rank", "factor_dtype",
     "model_spec", "shapes", "metrics"}
)  # fmt: skip
_MAX_METRICS = 64
_METRIC = re.compile(r"[A-Za-z0-9_./-]{1,64}")


class InvalidBundleError(IntegrityError):
    """A bundle that is not a well-formed `flare-update/1` file for this model spec."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message, hint=hint or "the update is skipped; its sender must rebuild it with a "
            "flare-node that speaks flare-update/1 for this deployment's model spec"
        )  # fmt: skip


@dataclass(frozen=True)
class BundleMeta:
    """What a bundle says about itself; checked on construction, on both write and read."""

    round: int
    node: str
    base_model: str
    num_samples: int
    rank: int
    model_spec: bytes
    factor_dtype: str = "float32"
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.round <= UINT64:
            problems.append(f"round {self.round} is not a uint64")
        if not 1 <= self.num_samples <= UINT64:
            problems.append(f"numSamples {self.num_samples} is not in 1..2^64-1")
        if not 1 <= self.rank <= MAX_RANK:
            problems.append(f"rank {self.rank} is not in 1..{MAX_RANK}")
        if self.factor_dtype not in DTYPES:
            problems.append(f"factor dtype {self.factor_dtype!r} is not one of {DTYPES}")
        if not is_canonical_cid(self.base_model):
            problems.append(
                f"base model {str(self.base_model)[:70]!r} is not a CID in canonical form "
                "(base32 CIDv1, raw or dag-pb, sha2-256)"
            )
        if len(self.model_spec) != 32:
            problems.append("model spec hash is not 32 bytes")
        try:
            checksummed = to_checksum_address(self.node)
        except ValueError:
            problems.append(f"node {self.node[:50]!r} is not an address")
        else:
            object.__setattr__(self, "node", checksummed)
        if len(self.metrics) > _MAX_METRICS:
            problems.append(f"{len(self.metrics)} metrics (at most {_MAX_METRICS})")
        for key, value in self.metrics.items():
            if not (isinstance(key, str) and _METRIC.fullmatch(key)):
                problems.append(f"metric name {key[:70]!r} is not 1..64 of [A-Za-z0-9_./-]")
            if not _finite_number(value):
                problems.append(
                    f"metric {str(key)[:70]!r} = {str(value)[:40]} is not a finite number"
                )
        if problems:
            raise InvalidBundleError("bad bundle metadata: " + "; ".join(problems[:5]))
        object.__setattr__(self, "metrics", {k: float(v) for k, v in self.metrics.items()})

    def encode(self, spec: ModelSpec) -> dict[str, str]:
        """The safetensors `__metadata__` (str -> str) for this bundle."""
        return {
            "format": FORMAT,
            "round": str(self.round),
            "node": self.node,
            "base_model": self.base_model,
            "num_samples": str(self.num_samples),
            "rank": str(self.rank),
            "factor_dtype": self.factor_dtype,
            "model_spec": "0x" + self.model_spec.hex(),
            "shapes": canonical_json({p.name: list(p.shape) for p in spec.params}),
            "metrics": canonical_json(self.metrics),
        }

    @classmethod
    def decode(cls, metadata: Mapping[str, str], spec: ModelSpec) -> BundleMeta:
        """Parse and check `__metadata__`; the spec's shapes must match the declared ones."""
        version = metadata.get("format")
        if version != FORMAT:
            raise InvalidBundleError(
                f"bundle format {str(version)[:40]!r} is not {FORMAT}",
                hint="the sender runs another flare-node version; the update is skipped",
            )
        if set(metadata) != _META_KEYS:
            odd = sorted(set(metadata) ^ _META_KEYS)
            raise InvalidBundleError(f"metadata keys missing or unexpected: {odd[:5]}")
        for key in ("round", "num_samples", "rank"):
            if not DECIMAL.fullmatch(metadata[key]):
                raise InvalidBundleError(f"metadata {key} = {metadata[key][:30]!r} is not decimal")
        spec_hex = metadata["model_spec"]
        if (
            not re.fullmatch(r"0x[0-9a-f]{64}", spec_hex)
            or bytes.fromhex(spec_hex[2:]) != spec.hash
        ):
            raise InvalidBundleError(
                f"bundle is for model spec {spec_hex[:66]}, not 0x{spec.hash.hex()}",
                hint="the sender trains a different model layout; the update is skipped",
            )
        try:
            metrics = json.loads(metadata["metrics"], parse_constant=_refuse_constant)
            shapes = json.loads(metadata["shapes"])
        except (ValueError, RecursionError) as error:
            raise InvalidBundleError(f"metadata JSON does not parse: {error}") from error
        if not isinstance(metrics, dict):
            raise InvalidBundleError("metadata metrics is not a JSON object")
        if shapes != {p.name: list(p.shape) for p in spec.params}:
            raise InvalidBundleError("metadata shapes differ from the model spec")
        return cls(
            round=int(metadata["round"]),
            node=metadata["node"],
            base_model=metadata["base_model"],
            num_samples=int(metadata["num_samples"]),
            rank=int(metadata["rank"]),
            model_spec=spec.hash,
            factor_dtype=metadata["factor_dtype"],
            metrics=metrics,
        )


def _finite_number(value: object) -> bool:
    """A JSON number a float holds (an integer of 400 digits does not; bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def header_bound(spec: ModelSpec) -> int:
    """Largest header a bundle for this spec can need; anything larger is refused unread."""
    return 65_536 + 2_048 * len(spec.params)


def size_bound(spec: ModelSpec, rank: int, factor_dtype: str = "float32") -> int:
    """Largest bundle for this spec at this rank: what a fetcher should refuse to exceed."""
    return 8 + header_bound(spec) + spec.wire_bytes(rank, factor_dtype)


def write_bundle(
    meta: BundleMeta,
    spec: ModelSpec,
    tensors: Mapping[str, NDArray[Any]],
) -> bytes:
    """The canonical bytes of a bundle holding `tensors` (wire names: `w.P`, `w.Q`, dense `b`).

    Arrays are float32 / float16 for those dtypes, and uint16 bit patterns for bfloat16.
    Anything the reader would refuse is refused here first.
    """
    if meta.model_spec != spec.hash:
        raise InvalidBundleError("bundle metadata names another model spec than the one given")
    layout = spec.wire_layout(meta.rank, meta.factor_dtype)
    try:
        return write_tensor_file(layout, meta.encode(spec), tensors)
    except TensorFileError as error:
        raise InvalidBundleError(str(error)) from error


def read_bundle(data: bytes, spec: ModelSpec, *, max_bytes: int | None = None) -> UpdateBundle:
    """Parse and check an untrusted bundle against the model spec; refuse anything else."""

    def decode(metadata: dict[str, str]) -> tuple[BundleMeta, Layout, dict[str, str]]:
        meta = BundleMeta.decode(metadata, spec)
        return meta, spec.wire_layout(meta.rank, meta.factor_dtype), meta.encode(spec)

    try:
        meta, arrays = read_tensor_file(
            data,
            kind="bundle",
            limit=max_bytes if max_bytes is not None else size_bound(spec, MAX_RANK),
            header_limit=header_bound(spec),
            decode=decode,
        )
    except TensorFileError as error:
        raise InvalidBundleError(str(error)) from error
    return UpdateBundle(meta, spec, arrays)


@dataclass(frozen=True)
class UpdateBundle:
    """A checked bundle: its metadata and its tensors as float32 (exact for every wire dtype)."""

    meta: BundleMeta
    spec: ModelSpec
    tensors: Mapping[str, NDArray[np.float32]]

    def delta(self) -> Mapping[str, NDArray[np.float64]]:
        """The decompressed update, name -> float64 array, computed one tensor at a time."""
        return _Delta(self)


class _Delta(Mapping[str, NDArray[np.float64]]):
    """Lazy: holding every decompressed tensor of a 100M-parameter update would cost 800 MB."""

    def __init__(self, bundle: UpdateBundle) -> None:
        self._bundle = bundle

    def __getitem__(self, name: str) -> NDArray[np.float64]:
        tensors, p = self._bundle.tensors, self._bundle.spec.param(name)
        if name in tensors:
            return tensors[name].astype(np.float64)
        factor_p = tensors[name + ".P"].astype(np.float64)
        factor_q = tensors[name + ".Q"].astype(np.float64)
        # P Q^T summed over the rank in order, elementwise, not by BLAS: products of float32
        # values are exact in float64 and the sums happen in one fixed order, so every seat
        # holder gets the same bits whatever its CPU or BLAS (which may fuse or reorder).
        product = factor_p[:, :1] * factor_q[:, 0]
        for k in range(1, factor_p.shape[1]):
            product += factor_p[:, k : k + 1] * factor_q[:, k]
        return product.reshape(p.shape)

    def factors(self, name: str) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """(P, Q) of a compressed tensor, as float64 (exact): this tensor is P Q^T reshaped.
        None for a tensor sent whole. Lets copy detection compare updates without building
        them (`flare.protocol.aggregate.Factored`)."""
        tensors = self._bundle.tensors
        if name in tensors:
            return None
        return tensors[name + ".P"].astype(np.float64), tensors[name + ".Q"].astype(np.float64)

    def __iter__(self) -> Iterator[str]:
        return iter(self._bundle.spec.names)

    def __len__(self) -> int:
        return len(self._bundle.spec.params)
