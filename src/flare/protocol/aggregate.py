"""Aggregation rules the committee applies to decompressed updates, and the checks before them.

Every seat holder recomputes the aggregate and votes on a proposal only if it matches, so the
rules are pure and deterministic: updates are sorted by `rounds.address_bytes` of their node,
the key `rounds.updates_root` sorts by (so `included` is in the order the root commits to, by
construction), sums run in float64 in that order, and ties are broken by address: reordering
the inputs never changes a bit of the result. Rules work one tensor at a time, so a committee
member holds one tensor per update, never whole decompressed updates (a lazy
`UpdateBundle.delta()` fits). An update that would push the model out of its dtype's range is
left out like any other bad one (`flare.protocol.overflow` says how, and why the same way on
every CPU).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from flare.protocol.errors import ConfigError
from flare.protocol.modelspec import ModelSpec
from flare.protocol.overflow import ModelStep, first_overflow, tensor_overflow
from flare.protocol.rounds import address_bytes

Delta = Mapping[str, NDArray[Any]]
Tensors = dict[str, NDArray[np.float64]]


@runtime_checkable
class Factored(Protocol):
    """A delta that hands out a tensor as its low-rank factors: tensor = (P Q^T) reshaped."""

    def factors(self, name: str) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """(P, Q) of tensor `name`, or None for a tensor sent whole."""
        ...


class InvalidRuleError(ConfigError):
    """An aggregation rule or parameter that cannot be applied to these updates."""


@dataclass(frozen=True)
class Update:
    """One node's decompressed delta and the sample count it claims."""

    node: str
    num_samples: int
    delta: Delta

    @property
    def key(self) -> bytes:
        """Sort key: the address's 20 bytes, as `updates_root` orders its entries.

        Raises `ConfigError` when `node` is not an address (`screen` rejects such updates).
        """
        return address_bytes(self.node)


@dataclass(frozen=True)
class Rejection:
    """An update left out of the aggregate, and why (recorded, never fatal)."""

    node: str
    reason: str


@dataclass(frozen=True)
class Aggregate:
    """The aggregated delta (float64), the nodes it includes in order, and who was left out.

    `weights` are what the rule multiplied each included update by before its division (the
    sample count, clipped for clipped-fedavg; 1 for the unweighted rules), in `included` order:
    how much each one pushes the aggregate, when one must go (`overflowing`).
    """

    delta: Tensors
    included: tuple[str, ...]
    rejected: tuple[Rejection, ...] = ()
    weights: tuple[float, ...] = ()


# A dot product (BLAS, numpy's SIMD sums) adds in an order that depends on the CPU: its result
# may differ between seat holders by up to ~n * 2^-53 relative. Norms closer to a bound than
# this band are recomputed exactly before anything is decided on them.
_CLOSE_CALL = 1e-6


def update_norm(delta: Delta, spec: ModelSpec) -> float:
    """L2 norm over every parameter, the same bits on every machine.

    sqrt of `math.fsum` (the correctly rounded sum, whatever the order) of each tensor's
    squares, then of those sums: slower than a dot product (about 0.1 s per million values),
    so screening uses it only for close calls; clipping, whose result depends on the value,
    always does.
    """
    partial = []
    for name in spec.names:
        flat = np.asarray(delta[name], dtype=np.float64).ravel()
        partial.append(math.fsum(np.square(flat).tolist()))
    return math.sqrt(math.fsum(partial))


def _norm(tensors: Iterable[NDArray[Any]]) -> float:
    """A fast L2 norm, exact only to the CPU's summation order (see `_CLOSE_CALL`)."""
    total = 0.0
    for tensor in tensors:
        flat = np.asarray(tensor, dtype=np.float64).ravel()
        total += float(flat @ flat)
    return math.sqrt(total)


def screen(
    updates: Sequence[Update],
    spec: ModelSpec,
    *,
    norm_bound: float,
    step: ModelStep | None = None,
) -> tuple[list[Update], list[Rejection]]:
    """Pre-aggregation checks: a node address, one update per node, samples >= 1, names and
    shapes of the spec, all values finite and within their dtype's range, the model the update
    would make on its own (with `step`: base + rate * delta) within it too, L2 norm within
    `norm_bound`. Returns (accepted, rejected), both sorted by node address (rejections of
    non-addresses last).

    A node has one update per round; when several claim the same node, none of them can be
    trusted over the others, so all are rejected: which one survived would otherwise depend on
    the order they arrived in.
    """
    keyed: list[tuple[bytes, Update]] = []
    not_addresses: list[Rejection] = []
    for update in updates:
        try:
            keyed.append((update.key, update))
        except ConfigError:
            not_addresses.append(Rejection(update.node, "the node is not an Ethereum address"))
    copies = Counter(key for key, _ in keyed)
    accepted: list[Update] = []
    rejected: list[Rejection] = []
    for key, update in sorted(keyed, key=lambda item: (item[0], item[1].node)):
        if copies[key] > 1:
            reason: str | None = f"{copies[key]} updates claim the same node; all are left out"
        else:
            reason = _check(update, spec, norm_bound, step)
        if reason is None:
            accepted.append(update)
        else:
            rejected.append(Rejection(update.node, reason))
    return accepted, rejected + sorted(not_addresses, key=lambda r: (r.node, r.reason))


def find_copies(
    updates: Sequence[Update], spec: ModelSpec, *, threshold: float
) -> tuple[list[Update], list[Rejection]]:
    """Leave out every update whose cosine similarity with an earlier one reaches `threshold`.

    `updates` come in the order the chain registered them: of two near-identical updates the
    later is the copy, so copying someone else's announced update can never push its author
    out. Returns (kept, copies), both in the order given. The cosine is taken with fast dot
    products; one within `_CLOSE_CALL` of the threshold is recomputed exactly (`math.fsum`),
    so the decision is the same on every CPU. Updates must have passed `screen`.
    """
    kept: list[Update] = []
    copies: list[Rejection] = []
    norms: dict[str, float] = {}
    for update in updates:
        for earlier in kept:
            cosine = _cosine(update, earlier, spec, norms)
            if abs(cosine - threshold) <= _CLOSE_CALL:
                cosine = _cosine_exact(update, earlier, spec)
            if cosine >= threshold:
                copies.append(
                    Rejection(
                        update.node,
                        f"it copies the update of {earlier.node}, registered earlier "
                        f"(cosine similarity {cosine:.6f} >= {threshold:g})",
                    )
                )
                break
        else:
            kept.append(update)
    return kept, copies


def _cosine(a: Update, b: Update, spec: ModelSpec, norms: dict[str, float]) -> float:
    for update in (a, b):
        if update.node not in norms:
            squares = sum(_dot(update.delta, update.delta, name) for name in spec.names)
            norms[update.node] = math.sqrt(max(0.0, squares))
    dot = sum(_dot(a.delta, b.delta, name) for name in spec.names)
    denominator = norms[a.node] * norms[b.node]
    return dot / denominator if denominator > 0.0 else 0.0


def _dot(x: Delta, y: Delta, name: str) -> float:
    """The Frobenius inner product of tensor `name` of two deltas, fast (see `_CLOSE_CALL`).

    Two low-rank tensors are never multiplied out: <Px Qx^T, Py Qy^T> is the sum of
    (Px^T Py) * (Qx^T Qy), r x r matrices, so comparing N updates costs O(N^2 (m+n) r^2)
    instead of O(N^2 m n): the dense form multiplied every update out again for each pair,
    23% of a 64-node round in bench/round.py. Its rounding error is far below `_CLOSE_CALL`,
    so close calls are still settled by `_cosine_exact` and the decision stays the same on
    every CPU.
    """
    fx = x.factors(name) if isinstance(x, Factored) else None
    fy = y.factors(name) if isinstance(y, Factored) else None
    if fx is not None and fy is not None:
        (px, qx), (py, qy) = fx, fy
        return float(np.sum((px.T @ py) * (qx.T @ qy)))
    return float(_flat(x[name]) @ _flat(y[name]))


def _cosine_exact(a: Update, b: Update, spec: ModelSpec) -> float:
    dot = math.fsum(
        math.fsum((_flat(a.delta[name]) * _flat(b.delta[name])).tolist()) for name in spec.names
    )
    denominator = update_norm(a.delta, spec) * update_norm(b.delta, spec)
    return dot / denominator if denominator > 0.0 else 0.0


def _flat(tensor: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(tensor, dtype=np.float64).ravel()


def _check(
    update: Update, spec: ModelSpec, norm_bound: float, step: ModelStep | None
) -> str | None:
    """Why `update` cannot be aggregated, or None; one pass over its tensors."""
    if update.num_samples < 1:
        return f"numSamples {update.num_samples} is below 1"
    if set(update.delta) != set(spec.names):
        odd = sorted(set(update.delta) ^ set(spec.names))
        return f"parameters differ from the model spec: {odd[:3]}"
    problems: list[str] = []
    norm = _norm(_well_formed(update.delta, spec, problems, step))
    if problems:
        return problems[0]
    if abs(norm - norm_bound) <= _CLOSE_CALL * norm_bound:  # too close for a CPU-ordered sum
        norm = update_norm(update.delta, spec)
    if not norm <= norm_bound:
        return f"update norm {norm:.6g} exceeds the bound {norm_bound:.6g}"
    return None


def _well_formed(
    delta: Delta, spec: ModelSpec, problems: list[str], step: ModelStep | None
) -> Iterator[NDArray[np.float64]]:
    """Each tensor in spec order, as float64; stops at the first of the wrong shape, with a
    non-finite value or out of its dtype's range, recording why in `problems` (lazy deltas
    are computed once)."""
    for p in spec.params:
        tensor = np.asarray(delta[p.name], dtype=np.float64)
        if tensor.shape != p.shape:
            problems.append(f"{p.name} has shape {tensor.shape}, the spec says {p.shape}")
            return
        if not np.isfinite(tensor).all():
            problems.append(f"{p.name} holds NaN or infinite values")
            return
        overflow = tensor_overflow(p, tensor, step)
        if overflow is not None:
            problems.append(overflow)
            return
        yield tensor


def _ordered(updates: Sequence[Update], minimum: int = 1) -> list[Update]:
    try:
        keyed = sorted(((u.key, u) for u in updates), key=lambda item: item[0])
    except ConfigError as error:
        raise InvalidRuleError(error.message, hint="run screen() before aggregating") from error
    if any(a[0] == b[0] for a, b in itertools.pairwise(keyed)):
        raise InvalidRuleError(
            "two updates come from the same node", hint="run screen() before aggregating"
        )
    if len(keyed) < minimum:
        raise InvalidRuleError(
            f"this rule needs at least {minimum} updates, got {len(keyed)}",
            hint="the round fails without enough valid updates, or pick a rule that needs fewer",
        )
    return [update for _, update in keyed]


def _stack(updates: Sequence[Update], name: str) -> NDArray[np.float64]:
    return np.stack([np.asarray(u.delta[name], dtype=np.float64) for u in updates])


def _weighted_sum(
    updates: Sequence[Update], spec: ModelSpec, weights: Sequence[float], denominator: float
) -> Tensors:
    """sum_i w_i * u_i / denominator, accumulated in float64 in the given (sorted) order."""
    result: Tensors = {}
    for p in spec.params:
        acc = np.zeros(p.shape, dtype=np.float64)
        for update, weight in zip(updates, weights, strict=True):
            acc += weight * np.asarray(update.delta[p.name], dtype=np.float64)
        result[p.name] = acc / denominator
    return result


def fedavg(updates: Sequence[Update], spec: ModelSpec) -> Aggregate:
    """Sample-weighted FedAvg: sum_i n_i * u_i / sum_i n_i."""
    ordered = _ordered(updates)
    weights = [float(u.num_samples) for u in ordered]
    delta = _weighted_sum(ordered, spec, weights, math.fsum(weights))
    return Aggregate(delta, tuple(u.node for u in ordered), weights=tuple(weights))


def clipped_fedavg(updates: Sequence[Update], spec: ModelSpec, *, clip_norm: float) -> Aggregate:
    """FedAvg of the updates each scaled to an L2 norm of at most `clip_norm`:
    sum_i n_i * min(1, C / |u_i|) * u_i / sum_i n_i."""
    if not clip_norm > 0:
        raise InvalidRuleError(f"clip norm {clip_norm} must be positive")
    ordered = _ordered(updates)
    samples = [float(u.num_samples) for u in ordered]
    weights = []
    for update, n in zip(ordered, samples, strict=True):
        norm = update_norm(update.delta, spec)
        weights.append(n if norm <= clip_norm else n * (clip_norm / norm))
    delta = _weighted_sum(ordered, spec, weights, math.fsum(samples))
    return Aggregate(delta, tuple(u.node for u in ordered), weights=tuple(weights))


def coordinate_median(updates: Sequence[Update], spec: ModelSpec) -> Aggregate:
    """Per-coordinate median (the mean of the two middle values for an even count)."""
    ordered = _ordered(updates)
    result = {p.name: np.median(_stack(ordered, p.name), axis=0) for p in spec.params}
    return Aggregate(result, tuple(u.node for u in ordered), weights=(1.0,) * len(ordered))


def trimmed_mean(updates: Sequence[Update], spec: ModelSpec, *, trim: int) -> Aggregate:
    """Per coordinate: drop the `trim` largest and `trim` smallest values, average the rest."""
    if trim < 0:
        raise InvalidRuleError(f"trim {trim} must be >= 0")
    ordered = _ordered(updates, minimum=Rule("trimmed-mean", trim=trim).minimum_updates)
    result: Tensors = {}
    for p in spec.params:
        kept = np.sort(_stack(ordered, p.name), axis=0)[trim : len(ordered) - trim]
        result[p.name] = np.add.reduce(kept, axis=0) / len(kept)
    return Aggregate(result, tuple(u.node for u in ordered), weights=(1.0,) * len(ordered))


def krum_scores(updates: Sequence[Update], spec: ModelSpec, *, byzantine: int) -> list[float]:
    """Krum score per update (in the given order): the sum of squared distances to its
    n - f - 2 nearest neighbours."""
    n = len(updates)
    distances = np.zeros((n, n), dtype=np.float64)
    for p in spec.params:
        stacked = _stack(updates, p.name).reshape(n, -1)
        for i in range(n):
            diff = stacked[i + 1 :] - stacked[i]
            row = np.einsum("ij,ij->i", diff, diff)
            distances[i, i + 1 :] += row
            distances[i + 1 :, i] += row
    neighbours = n - byzantine - 2
    return [float(np.sort(np.delete(distances[i], i))[:neighbours].sum()) for i in range(n)]


def multi_krum(
    updates: Sequence[Update], spec: ModelSpec, *, byzantine: int, select: int
) -> Aggregate:
    """Multi-Krum: average (unweighted) the `select` updates with the lowest Krum scores,
    tolerating up to `byzantine` bad updates (needs n >= 2f + 3 and n >= m + f).
    Ties go to the lower address."""
    if byzantine < 0 or select < 1:
        raise InvalidRuleError(f"multi-Krum needs f >= 0 and m >= 1, got f={byzantine}, m={select}")
    minimum = Rule("multi-krum", byzantine=byzantine, select=select).minimum_updates
    ordered = _ordered(updates, minimum=minimum)
    scores = krum_scores(ordered, spec, byzantine=byzantine)
    ranking = sorted(range(len(ordered)), key=lambda i: (scores[i], ordered[i].key))
    chosen = sorted(ranking[:select])
    kept = [ordered[i] for i in chosen]
    dropped = tuple(
        Rejection(
            ordered[i].node, f"multi-Krum score {scores[i]:.6g} is not among the {select} lowest"
        )
        for i in sorted(ranking[select:])
    )
    mean = _weighted_sum(kept, spec, [1.0] * len(kept), float(len(kept)))
    return Aggregate(mean, tuple(u.node for u in kept), dropped, (1.0,) * len(kept))


@dataclass(frozen=True)
class Rule:
    """A named rule with its parameters, as a deployment configures it."""

    name: str = "fedavg"
    clip_norm: float = 1.0
    trim: int = 1
    byzantine: int = 1
    select: int = 1

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise InvalidRuleError(
                f"unknown aggregation rule {self.name!r}", hint=f"pick one of {', '.join(RULES)}"
            )

    @property
    def minimum_updates(self) -> int:
        """Accepted updates the rule needs; with fewer, the committee has nothing to propose."""
        if self.name == "trimmed-mean":
            return 2 * self.trim + 1
        if self.name == "multi-krum":
            return max(2 * self.byzantine + 3, self.select + self.byzantine)
        return 1


RULES: dict[str, Callable[[Sequence[Update], ModelSpec, Rule], Aggregate]] = {
    "fedavg": lambda u, s, r: fedavg(u, s),
    "clipped-fedavg": lambda u, s, r: clipped_fedavg(u, s, clip_norm=r.clip_norm),
    "median": lambda u, s, r: coordinate_median(u, s),
    "trimmed-mean": lambda u, s, r: trimmed_mean(u, s, trim=r.trim),
    "multi-krum": lambda u, s, r: multi_krum(u, s, byzantine=r.byzantine, select=r.select),
}


def aggregate(
    updates: Sequence[Update], spec: ModelSpec, rule: Rule, *, norm_bound: float
) -> Aggregate:
    """Screen the updates, then apply the rule to those accepted; every rejection is kept."""
    accepted, rejected = screen(updates, spec, norm_bound=norm_bound)
    result = RULES[rule.name](accepted, spec, rule)
    return Aggregate(result.delta, result.included, tuple(rejected) + result.rejected)


def overflowing(
    result: Aggregate, updates: Sequence[Update], spec: ModelSpec, step: ModelStep
) -> Rejection | None:
    """The update to leave out when base + rate * `result` leaves a dtype's range, or None.

    Rule 3 of `flare.protocol.overflow`: at the first coordinate out of range, the included
    update whose weight times its value there pushes furthest in the overflow's direction (one
    float64 product each, so the same on every CPU); of equal pushes, the first in address
    order. The caller leaves it out and applies the rule again to the rest.
    """
    where = first_overflow(result.delta, spec, step)
    if where is None:
        return None
    by_node = {update.node: update for update in updates}
    weights = result.weights or (1.0,) * len(result.included)
    direction = 1.0 if where.value > 0.0 else -1.0
    culprit, furthest = result.included[0], -math.inf
    for node, weight in zip(result.included, weights, strict=True):
        value = float(_flat(by_node[node].delta[where.name])[where.index])
        push = direction * (weight * value)
        if push > furthest:
            culprit, furthest = node, push
    return Rejection(
        culprit,
        f"{where.describe()}; its weighted value there, {direction * furthest:.6g}, pushes "
        "furthest, so it is left out and the rest aggregated again",
    )
