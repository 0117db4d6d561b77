"""The model spec: the trainable-parameter layout every node of a deployment shares.

An update is only meaningful against the exact parameters it was trained for, so the contract
stores `modelSpecHash` and every bundle names it. The spec also decides, for a given PowerSGD
rank, which tensors travel as low-rank factors and which travel dense: sender and reader derive
the same layout from the same spec, so a bundle never has to describe its own layout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from eth_utils.crypto import keccak

from flare.protocol.errors import ConfigError

SPEC_FORMAT = "flare-modelspec/1"
DTYPES = ("float32", "bfloat16", "float16")
ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
MAX_RANK = 64
MIN_COMPRESSION = 2  # a tensor is factored only if its factors are at least 2x smaller
FACTOR_SUFFIXES = (".P", ".Q")
_MAX_NAME = 512


class InvalidModelSpecError(ConfigError):
    """A model spec that cannot describe a real set of parameters."""


@dataclass(frozen=True)
class ParamSpec:
    """One trainable parameter: its name, shape and dtype in the model."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def matrix_shape(self) -> tuple[int, int] | None:
        """(m, n) for a tensor PowerSGD can see as a matrix: first dim by the rest; else None."""
        if len(self.shape) < 2:
            return None
        return self.shape[0], math.prod(self.shape[1:])

    def factored(self, rank: int) -> bool:
        """Whether this parameter travels as factors at `rank` (at least 2x smaller than dense)."""
        matrix = self.matrix_shape
        if matrix is None:
            return False
        m, n = matrix
        return MIN_COMPRESSION * (m + n) * rank <= m * n


@dataclass(frozen=True)
class ModelSpec:
    """Ordered trainable parameters plus an identifier of the frozen backbone they sit on.

    `backbone` is whatever pins the frozen part (a digest of its weights, a checkpoint CID);
    it enters the hash so two deployments on different backbones never accept each other.
    """

    params: tuple[ParamSpec, ...]
    backbone: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        names = [p.name for p in self.params]
        if not names:
            problems.append("it has no parameters")
        if len(set(names)) != len(names):
            problems.append("a parameter name appears twice")
        for p in self.params:
            if not p.name or len(p.name) > _MAX_NAME or not p.name.isascii():
                problems.append(f"name {p.name[:40]!r} is empty, too long or not ASCII")
            elif p.name.startswith("__") or not p.name.isprintable() or " " in p.name:
                problems.append(f"name {p.name!r} has spaces, control characters or a __ prefix")
            if p.name.endswith(FACTOR_SUFFIXES) and p.name[:-2] in names:
                problems.append(f"name {p.name!r} collides with the factors of {p.name[:-2]!r}")
            if not p.shape or any(not isinstance(d, int) or d < 1 for d in p.shape):
                problems.append(f"{p.name}: shape {p.shape} needs at least one dim, all >= 1")
            if p.dtype not in DTYPES:
                problems.append(f"{p.name}: dtype {p.dtype!r} is not one of {', '.join(DTYPES)}")
        if problems:
            raise InvalidModelSpecError(
                "invalid model spec: " + "; ".join(problems[:5]),
                hint="build the spec from the policy's trainable parameters (flare.node.delta)",
            )

    @classmethod
    def from_shapes(
        cls,
        shapes: Mapping[str, Iterable[int]],
        *,
        dtype: str = "float32",
        backbone: str = "",
    ) -> ModelSpec:
        """A spec from name -> shape, keeping the mapping's order."""
        params = tuple(ParamSpec(n, tuple(int(d) for d in s), dtype) for n, s in shapes.items())
        return cls(params, backbone)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def numel(self) -> int:
        return sum(p.numel for p in self.params)

    @cached_property
    def _by_name(self) -> dict[str, ParamSpec]:
        return {p.name: p for p in self.params}

    def param(self, name: str) -> ParamSpec:
        """The parameter called `name` (KeyError if the spec has none)."""
        return self._by_name[name]

    def canonical_json(self) -> bytes:
        """The bytes the hash is taken over: sorted keys, no spaces, parameters in order."""
        body = {
            "backbone": self.backbone,
            "format": SPEC_FORMAT,
            "params": [[p.name, list(p.shape), p.dtype] for p in self.params],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @property
    def hash(self) -> bytes:
        """`modelSpecHash`: keccak256 of the canonical JSON (32 bytes, as the contract stores)."""
        return keccak(self.canonical_json())

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelSpec:
        """Parse what `canonical_json` wrote (a spec file shipped with a deployment)."""
        try:
            body = json.loads(data)
            if body.get("format") != SPEC_FORMAT:
                raise ValueError(f"format is {body.get('format')!r}, expected {SPEC_FORMAT}")
            params = tuple(
                ParamSpec(str(n), tuple(int(d) for d in s), str(t)) for n, s, t in body["params"]
            )
            return cls(params, str(body.get("backbone", "")))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise InvalidModelSpecError(
                f"cannot read model spec: {error}",
                hint="the file must be a spec written by ModelSpec.canonical_json",
            ) from error

    def check_rank(self, rank: int) -> None:
        """Refuse a PowerSGD rank outside 1..MAX_RANK."""
        if not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
            raise InvalidModelSpecError(
                f"PowerSGD rank {rank!r} is not in 1..{MAX_RANK}",
                hint="rank 4 is the default; higher ranks trade size for accuracy",
            )

    def wire_layout(self, rank: int, factor_dtype: str) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Every tensor an update bundle holds at this rank, wire name -> (dtype, shape), sorted
        by name (the file order): `name.P` (m x r) and `name.Q` (n x r) for factored
        parameters in `factor_dtype`, the parameter itself in its own dtype otherwise."""
        self.check_rank(rank)
        layout: dict[str, tuple[str, tuple[int, ...]]] = {}
        for p in self.params:
            matrix = p.matrix_shape
            if matrix is not None and p.factored(rank):
                layout[p.name + ".P"] = (factor_dtype, (matrix[0], rank))
                layout[p.name + ".Q"] = (factor_dtype, (matrix[1], rank))
            else:
                layout[p.name] = (p.dtype, p.shape)
        return dict(sorted(layout.items()))

    def wire_bytes(self, rank: int, factor_dtype: str = "float32") -> int:
        """Tensor bytes of an update bundle at this rank."""
        layout = self.wire_layout(rank, factor_dtype).values()
        return sum(math.prod(shape) * ITEMSIZE[dtype] for dtype, shape in layout)
