"""PowerSGD: shapes and rank, the error-feedback invariant, determinism, learning preserved."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.node.compress import (
    DeltaMismatchError,
    InvalidCompressionConfigError,
    NonFiniteDeltaError,
    PowerSGDConfig,
    compress,
    decompress,
    initial_q,
    orthogonalize,
)
from flare.protocol.modelspec import ModelSpec

SEED = bytes(range(32))


def random_delta(spec: ModelSpec, seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {p.name: torch.randn(p.shape, generator=generator) * scale for p in spec.params}


matrix_shapes = st.tuples(st.integers(8, 40), st.integers(8, 40))


@settings(max_examples=30, deadline=None)
@given(
    shape=matrix_shapes,
    rank=st.integers(1, 4),
    iterations=st.integers(1, 3),
    dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
    seed=st.integers(0, 2**31),
    scale=st.sampled_from([1e-6, 1.0, 1e3]),
)
def test_factors_shape_rank_and_exact_error_feedback(
    shape: tuple[int, int], rank: int, iterations: int, dtype: str, seed: int, scale: float
) -> None:
    spec = ModelSpec.from_shapes({"w": shape, "b": (shape[1],)})
    delta = random_delta(spec, seed, scale)
    previous = random_delta(spec, seed + 1, scale * 0.1)
    config = PowerSGDConfig(rank=rank, power_iterations=iterations, factor_dtype=dtype)
    state_in = compress(previous, spec, config, None, seed=SEED)[1]
    compressed, state = compress(delta, spec, config, state_in, seed=SEED)
    m, n = shape
    approx = decompress(compressed, spec)
    if spec.param("w").factored(rank):
        assert compressed.tensors["w.P"].shape == (m, rank)
        assert compressed.tensors["w.Q"].shape == (n, rank)
        assert str(compressed.tensors["w.P"].dtype) == f"torch.{dtype}"
        # rank of the float32 product, ignoring its float32 rounding noise
        assert torch.linalg.matrix_rank(approx["w"].double(), rtol=1e-4) <= rank
        carried = delta["w"] + state_in.residual["w"]
        # the invariant, bit for bit: residual == fl32(M - approx), approx as receivers rebuild it
        assert torch.equal(state.residual["w"], carried - approx["w"])
        # hence approx + residual is M up to the rounding of that one subtraction
        for a, r, d in zip(
            approx["w"].flatten(), state.residual["w"].flatten(), carried.flatten(), strict=True
        ):
            exact = math.fsum([float(a), float(r), -float(d)])
            assert abs(exact) <= float(np.spacing(np.float32(abs(float(r))))) / 2
    else:
        assert torch.equal(compressed.tensors["w"], delta["w"] + state_in.residual.get("w", 0))
        assert "w" not in state.residual
    assert torch.equal(compressed.tensors["b"], delta["b"])  # 1-D travels dense and exact
    assert all(torch.isfinite(t.float()).all() for t in compressed.tensors.values())


@settings(max_examples=20, deadline=None)
@given(shape=matrix_shapes, rank=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_same_inputs_same_factors_and_inputs_untouched(
    shape: tuple[int, int], rank: int, seed: int
) -> None:
    spec = ModelSpec.from_shapes({"w": shape})
    delta = random_delta(spec, seed)
    kept = {k: v.clone() for k, v in delta.items()}
    config = PowerSGDConfig(rank=rank)
    first, state = compress(delta, spec, config, None, seed=SEED)
    second, _ = compress(delta, spec, config, None, seed=SEED)
    assert first.tensors.keys() == second.tensors.keys()
    assert all(torch.equal(first.tensors[k], second.tensors[k]) for k in first.tensors)
    assert all(torch.equal(delta[k], kept[k]) for k in delta)
    compress(delta, spec, config, state, seed=SEED)
    assert all(torch.equal(delta[k], kept[k]) for k in delta)


def test_decompress_into_given_memory_gives_the_same_bits() -> None:
    spec = ModelSpec.from_shapes({"w": (30, 20), "v": (6, 5, 8), "b": (20,)})
    compressed, _ = compress(random_delta(spec, 9), spec, PowerSGDConfig(rank=2), None, seed=SEED)
    fresh = decompress(compressed, spec)
    out = {p.name: torch.full(p.shape, float("nan")) for p in spec.params}
    into = decompress(compressed, spec, out=out)
    assert all(torch.equal(fresh[name], into[name]) for name in spec.names)
    assert into["w"].data_ptr() == out["w"].data_ptr()


def test_initial_q_depends_on_seed_and_name_only() -> None:
    assert torch.equal(initial_q(SEED, "a", 7, 3), initial_q(SEED, "a", 7, 3))
    assert not torch.equal(initial_q(SEED, "a", 7, 3), initial_q(SEED, "b", 7, 3))
    assert not torch.equal(initial_q(SEED, "a", 7, 3), initial_q(b"\x01" * 32, "a", 7, 3))


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(4, 50), cols=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_orthogonalize_gives_orthonormal_columns_even_when_degenerate(
    rows: int, cols: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(rows, cols, generator=generator)
    matrix[:, 0] = 0.0  # a zero column (a vanishing gradient block) must not produce NaN
    if cols > 1:
        matrix[:, -1] = matrix[:, -2] * 1e-30
    q = orthogonalize(matrix)
    gram = q.T @ q
    assert torch.allclose(gram, torch.eye(cols), atol=1e-5)


def test_exactly_low_rank_matrix_is_recovered() -> None:
    generator = torch.Generator().manual_seed(3)
    spec = ModelSpec.from_shapes({"w": (60, 40)})
    low_rank = torch.randn(60, 3, generator=generator) @ torch.randn(3, 40, generator=generator)
    compressed, state = compress({"w": low_rank}, spec, PowerSGDConfig(rank=3), None, seed=SEED)
    error = torch.linalg.norm(decompress(compressed, spec)["w"] - low_rank) / torch.linalg.norm(
        low_rank
    )
    assert error < 1e-5
    assert torch.linalg.norm(state.residual["w"]) / torch.linalg.norm(low_rank) < 1e-5


def test_power_iterations_reach_the_best_rank_r_error() -> None:
    generator = torch.Generator().manual_seed(4)
    u, _ = torch.linalg.qr(torch.randn(80, 80, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(60, 60, generator=generator))
    singular = torch.tensor([10.0, 8, 6, 4] + [0.5 / (i + 1) for i in range(56)])
    matrix = (u[:, :60] * singular) @ v.T
    spec = ModelSpec.from_shapes({"w": (80, 60)})
    best = float(torch.linalg.norm(singular[4:]))
    errors = []
    for iterations in (1, 6):
        config = PowerSGDConfig(rank=4, power_iterations=iterations, error_feedback=False)
        compressed, _ = compress({"w": matrix}, spec, config, None, seed=SEED)
        errors.append(float(torch.linalg.norm(decompress(compressed, spec)["w"] - matrix)))
    assert errors[1] <= errors[0]
    assert errors[1] == pytest.approx(best, rel=1e-3)


def test_error_feedback_sends_everything_over_rounds() -> None:
    """A constant delta D every round: with error feedback the sent sum telescopes,
    sum(sent) + residual == T * D (to rounding), and the relative gap shrinks like 1/T;
    without it the part of D outside the rank-r subspace is lost for good."""
    generator = torch.Generator().manual_seed(5)
    spec = ModelSpec.from_shapes({"w": (48, 32)})
    target = torch.randn(48, 32, generator=generator)
    gaps: dict[tuple[bool, int], float] = {}
    for feedback in (True, False):
        state = None
        sent = torch.zeros(48, 32, dtype=torch.float64)
        config = PowerSGDConfig(rank=2, error_feedback=feedback)
        for t in range(1, 41):
            compressed, state = compress({"w": target}, spec, config, state, seed=SEED)
            sent += decompress(compressed, spec)["w"].double()
            total = target.double() * t
            gaps[feedback, t] = float(torch.linalg.norm(sent - total) / torch.linalg.norm(total))
            if feedback:
                telescoped = sent + state.residual["w"].double()
                assert torch.allclose(telescoped, total, rtol=0, atol=1e-5 * t)
    assert gaps[True, 40] < 0.5 * gaps[True, 10]
    assert gaps[True, 40] < 0.3 * gaps[False, 40]
    assert gaps[False, 40] > 0.9 * gaps[False, 10]


def test_zero_delta_compresses_to_zero() -> None:
    spec = ModelSpec.from_shapes({"w": (32, 24), "b": (24,)})
    zeros = {p.name: torch.zeros(p.shape) for p in spec.params}
    compressed, state = compress(zeros, spec, PowerSGDConfig(), None, seed=SEED)
    assert all(torch.isfinite(t).all() for t in compressed.tensors.values())
    assert torch.equal(decompress(compressed, spec)["w"], torch.zeros(32, 24))
    assert torch.equal(state.residual["w"], torch.zeros(32, 24))


def test_n_d_tensors_are_seen_as_first_dim_by_the_rest() -> None:
    spec = ModelSpec.from_shapes({"conv": (16, 4, 3, 3)})
    compressed, _ = compress(random_delta(spec, 6), spec, PowerSGDConfig(rank=2), None, seed=SEED)
    assert compressed.tensors["conv.P"].shape == (16, 2)
    assert compressed.tensors["conv.Q"].shape == (36, 2)
    assert decompress(compressed, spec)["conv"].shape == (16, 4, 3, 3)


def test_bfloat16_dense_parameters_carry_their_rounding_as_residual() -> None:
    spec = ModelSpec.from_shapes({"b": (64,)}, dtype="bfloat16")
    delta = random_delta(spec, 7)
    compressed, state = compress(delta, spec, PowerSGDConfig(), None, seed=SEED)
    assert compressed.tensors["b"].dtype == torch.bfloat16
    assert torch.equal(state.residual["b"], delta["b"] - compressed.tensors["b"].float())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", [(0, 0), (7, 3), (15, 15)])
def test_one_non_finite_value_anywhere_is_refused(bad: float, where: tuple[int, int]) -> None:
    spec = ModelSpec.from_shapes({"w": (16, 16), "b": (16,)})
    for name in ("w", "b"):
        delta = {"w": torch.zeros(16, 16), "b": torch.zeros(16)}
        delta[name][where if name == "w" else where[0]] = bad
        with pytest.raises(NonFiniteDeltaError, match=f"delta of {name}"):
            compress(delta, spec, PowerSGDConfig(), None, seed=SEED)


def test_float16_overflow_names_the_dtype() -> None:
    spec = ModelSpec.from_shapes({"w": (16, 16)})
    huge = {"w": torch.full((16, 16), 1e5)}
    with pytest.raises(InvalidCompressionConfigError, match="overflow float16"):
        compress(huge, spec, PowerSGDConfig(factor_dtype="float16"), None, seed=SEED)
    compressed, _ = compress(huge, spec, PowerSGDConfig(factor_dtype="bfloat16"), None, seed=SEED)
    assert torch.isfinite(compressed.tensors["w.Q"].float()).all()


def test_bad_inputs_are_refused_with_a_reason() -> None:
    spec = ModelSpec.from_shapes({"w": (16, 16)})
    with pytest.raises(DeltaMismatchError, match="shape"):
        compress({"w": torch.zeros(16, 15)}, spec, PowerSGDConfig(), None, seed=SEED)
    with pytest.raises(DeltaMismatchError, match="differ"):
        compress({"v": torch.zeros(16, 16)}, spec, PowerSGDConfig(), None, seed=SEED)
    for bad in ({"rank": 0}, {"power_iterations": 0}, {"factor_dtype": "int8"}):
        with pytest.raises(InvalidCompressionConfigError):
            PowerSGDConfig(**bad)  # type: ignore[arg-type]
