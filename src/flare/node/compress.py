"""PowerSGD compression of a round's delta, with error feedback and warm start across rounds.

Each trainable tensor the model spec marks as factored (seen as first dim x the rest) is
approximated at rank r by `P Qᵀ`: Q starts from a generator seeded by the round seed and the
parameter name (or from last round's Q when warm-starting), then each power iteration
orthogonalizes Q, sets `P = M Q`, orthogonalizes P (Householder QR: stable, and a zero or
rank-deficient block still yields orthonormal columns) and sets `Q = Mᵀ P`. The rest travels
dense in the spec dtype.

Error feedback: the node adds last round's residual to this round's delta before compressing,
and keeps `residual = M - approx`, where `approx` is exactly what `decompress` rebuilds from the
wire factors (same dtype cast, same matmul) and the subtraction is one float32 operation. So
nothing the receivers miss is dropped: it is sent in a later round. The invariant, per element:
`residual == fl32(M - approx)`, hence |approx + residual - M| <= ulp(residual) / 2.

`compress` does not mutate its inputs: it returns the bundle tensors and the next state, and the
caller persists that state only once the bundle is stored, so a crash replays the same round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from flare.node.atomic import write_file_atomically
from flare.node.delta import TORCH_DTYPE, to_numpy
from flare.protocol.bundle import BundleMeta, write_bundle
from flare.protocol.errors import ConfigError, FlareError
from flare.protocol.modelspec import DTYPES, MAX_RANK, ModelSpec

MAX_POWER_ITERATIONS = 16
STATE_FORMAT = "flare-compressor-state/1"


class InvalidCompressionConfigError(ConfigError):
    """PowerSGD settings out of range."""


class DeltaMismatchError(ConfigError):
    """A delta whose parameters do not match the model spec."""


class StaleCompressorStateError(ConfigError):
    """A saved compressor state that belongs to another model spec or is unreadable."""


class NonFiniteDeltaError(FlareError, ArithmeticError):
    """Training produced NaN or infinite values; nothing sensible can be sent."""


@dataclass(frozen=True)
class PowerSGDConfig:
    """How a node compresses: rank, power iterations per round, factor dtype on the wire."""

    rank: int = 4
    power_iterations: int = 1
    factor_dtype: str = "float32"
    error_feedback: bool = True
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= MAX_RANK:
            raise InvalidCompressionConfigError(
                f"rank {self.rank} is not in 1..{MAX_RANK}", hint="rank 4 is the default"
            )
        if not 1 <= self.power_iterations <= MAX_POWER_ITERATIONS:
            raise InvalidCompressionConfigError(
                f"power iterations {self.power_iterations} not in 1..{MAX_POWER_ITERATIONS}",
                hint="1 is enough with warm start; 2-3 help on the first round",
            )
        if self.factor_dtype not in DTYPES:
            raise InvalidCompressionConfigError(
                f"factor dtype {self.factor_dtype!r} is not one of {', '.join(DTYPES)}",
                hint="float32 is exact on the wire; bfloat16 halves the bundle",
            )


@dataclass
class CompressorState:
    """What a node carries between rounds: residuals (param shape) and warm-start Qs (n x r)."""

    residual: dict[str, torch.Tensor] = field(default_factory=dict)
    q: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Compressed:
    """One round's compressed delta: the exact tensors the bundle carries, by wire name."""

    tensors: dict[str, torch.Tensor]
    rank: int
    factor_dtype: str


def orthogonalize(matrix: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning `matrix`'s (m x r, m >= r) column space, via Householder QR."""
    q: torch.Tensor = torch.linalg.qr(matrix, mode="reduced").Q
    return q


def initial_q(seed: bytes, name: str, n: int, rank: int) -> torch.Tensor:
    """Gaussian n x r start for `name`, the same on every machine for a given round seed."""
    digest = hashlib.sha256(seed + b"\x00" + name.encode()).digest()
    generator = torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little"))
    return torch.randn(n, rank, generator=generator, dtype=torch.float32)


def _refuse_non_finite(name: str) -> NonFiniteDeltaError:
    return NonFiniteDeltaError(
        f"the delta of {name} holds NaN or infinite values (or overflows float32)",
        hint="training diverged: lower the learning rate or check the data; "
        "this round's update is not sent",
    )


def _check_delta(delta: Mapping[str, torch.Tensor], spec: ModelSpec) -> None:
    if set(delta) != set(spec.names):
        odd = sorted(set(delta) ^ set(spec.names))
        raise DeltaMismatchError(
            f"delta parameters differ from the model spec: {odd[:3]}",
            hint="train with the policy the model spec was built from",
        )
    for p in spec.params:
        tensor = delta[p.name]
        if tuple(tensor.shape) != p.shape:
            raise DeltaMismatchError(
                f"{p.name} has shape {tuple(tensor.shape)}, the model spec says {p.shape}",
                hint="train with the policy the model spec was built from",
            )


def compress(
    delta: Mapping[str, torch.Tensor],
    spec: ModelSpec,
    config: PowerSGDConfig,
    state: CompressorState | None,
    *,
    seed: bytes,
) -> tuple[Compressed, CompressorState]:
    """Compress `delta` (+ the carried residual); return the wire tensors and the next state."""
    _check_delta(delta, spec)
    state = state if state is not None else CompressorState()
    rank, wire_dtype = config.rank, TORCH_DTYPE[config.factor_dtype]
    tensors: dict[str, torch.Tensor] = {}
    next_state = CompressorState()
    for p in spec.params:
        with torch.no_grad():
            carried = state.residual.get(p.name) if config.error_feedback else None
            source = delta[p.name].detach()
            if carried is not None:
                m = torch.add(source.to(torch.float32), carried.reshape(p.shape).to(source.device))
            else:
                m = source.to(torch.float32, copy=True)
            matrix = p.matrix_shape
            if matrix is None or not p.factored(rank):
                if not torch.isfinite(m).all():
                    raise _refuse_non_finite(p.name)
                wire = m.to(TORCH_DTYPE[p.dtype])
                tensors[p.name] = wire
                if config.error_feedback and wire.dtype != torch.float32:
                    next_state.residual[p.name] = m.sub_(wire.to(torch.float32))
                continue
            m = m.reshape(matrix)
            warm = state.q.get(p.name) if config.warm_start else None
            if warm is not None and tuple(warm.shape) == (matrix[1], rank):
                q = warm.to(device=m.device, dtype=torch.float32)
            else:
                q = initial_q(seed, p.name, matrix[1], rank).to(m.device)
            for _ in range(config.power_iterations):
                factor_p = orthogonalize(m @ orthogonalize(q))
                q = m.T @ factor_p
            wire_p, wire_q = factor_p.to(wire_dtype), q.to(wire_dtype)
            # a NaN or inf anywhere in M reaches every column of M Q (x * 0 is NaN for x = inf
            # or NaN), so checking the small factors is enough and saves a pass over M
            if not (torch.isfinite(wire_p).all() and torch.isfinite(wire_q).all()):
                if torch.isfinite(q).all() and torch.isfinite(factor_p).all():
                    raise InvalidCompressionConfigError(
                        f"the factors of {p.name} overflow {config.factor_dtype}",
                        hint="use bfloat16 or float32 factors for deltas this large",
                    )
                raise _refuse_non_finite(p.name)
            tensors[p.name + ".P"], tensors[p.name + ".Q"] = wire_p, wire_q
            if config.warm_start:
                next_state.q[p.name] = q
            if config.error_feedback:
                approx = wire_p.to(torch.float32) @ wire_q.to(torch.float32).T
                next_state.residual[p.name] = m.sub_(approx).reshape(p.shape)
    return Compressed(tensors, rank, config.factor_dtype), next_state


def decompress(
    compressed: Compressed, spec: ModelSpec, out: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Rebuild the float32 delta the bundle carries (what the node's own residual assumes).

    With `out` (float32 tensors of the spec shapes), factored parameters are written into it
    instead of into fresh memory; the values are the same bits either way.
    """
    result: dict[str, torch.Tensor] = {}
    for p in spec.params:
        if p.name in compressed.tensors:
            result[p.name] = compressed.tensors[p.name].to(torch.float32)
            continue
        wire_p = compressed.tensors[p.name + ".P"].to(torch.float32)
        wire_q = compressed.tensors[p.name + ".Q"].to(torch.float32)
        if out is None:
            result[p.name] = (wire_p @ wire_q.T).reshape(p.shape)
        else:
            target = out[p.name]
            torch.matmul(wire_p, wire_q.T, out=target.view(wire_p.shape[0], -1))
            result[p.name] = target
    return result


def bundle_bytes(
    compressed: Compressed,
    spec: ModelSpec,
    *,
    round_number: int,
    node: str,
    base_model: str,
    num_samples: int,
    metrics: Mapping[str, float] | None = None,
) -> bytes:
    """The canonical `flare-update/1` bytes of a compressed delta (same inputs, same CID)."""
    meta = BundleMeta(
        round=round_number,
        node=node,
        base_model=base_model,
        num_samples=num_samples,
        rank=compressed.rank,
        model_spec=spec.hash,
        factor_dtype=compressed.factor_dtype,
        metrics=dict(metrics or {}),
    )
    arrays = {name: to_numpy(tensor) for name, tensor in compressed.tensors.items()}
    return write_bundle(meta, spec, arrays)


def save_state(state: CompressorState, path: Path, spec: ModelSpec) -> None:
    """Write the state atomically (temp file + rename): a crash leaves the old or the new one."""
    tensors = {f"residual/{k}": v.detach().cpu().contiguous() for k, v in state.residual.items()}
    tensors |= {f"q/{k}": v.detach().cpu().contiguous() for k, v in state.q.items()}
    metadata = {"format": STATE_FORMAT, "model_spec": "0x" + spec.hash.hex()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, save(tensors, metadata=metadata))


def load_state(path: Path, spec: ModelSpec) -> CompressorState:
    """Read a saved state; a missing file is a fresh start, a foreign one is refused."""
    if not path.exists():
        return CompressorState()
    hint = f"the model spec changed or the file is damaged: delete {path} to restart error feedback"
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (OSError, ValueError, SafetensorError) as error:
        raise StaleCompressorStateError(
            f"cannot read compressor state {path}: {error}", hint=hint
        ) from error
    expected = {"format": STATE_FORMAT, "model_spec": "0x" + spec.hash.hex()}
    if metadata != expected:
        raise StaleCompressorStateError(f"compressor state {path} is for another model", hint=hint)
    state = CompressorState()
    for key, tensor in tensors.items():
        kind, _, name = key.partition("/")
        p = spec.param(name) if name in spec.names else None
        if kind == "residual" and p is not None and tuple(tensor.shape) == p.shape:
            state.residual[name] = tensor
        elif kind == "q" and p is not None and p.matrix_shape is not None:
            state.q[name] = tensor  # a Q of another rank is ignored by compress()
        else:
            raise StaleCompressorStateError(
                f"compressor state {path} has odd entry {key}", hint=hint
            )
    return state
