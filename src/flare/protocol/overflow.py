"""Overflow: whether an update, or the aggregate, keeps the next model inside its dtypes' range.

A committed policy may set a loose norm bound, let one update weigh up to 2^64 samples, or
serve a float16 or bfloat16 model, so an update can push a weight past what its dtype holds
(infinity after the cast). Such an update is left out with its reason, like any other bad
update, and the review still produces the model from the rest. Seat holders vote by comparing
bytes, so the decision is taken on values IEEE 754 fixes to the bit (single float64 products
and sums, done in a fixed order), compared with constants: never on what a cast happens to give.

The bound is the dtype's largest finite value, M. Three rules, each applied in turn:

1. The update: every value of its decompressed delta is within [-M, M].
2. The update on its own: base + rate * value, the float64 product and sum `apply_delta`
   computes, is within [-M, M], whatever the rule would later make of it.
3. The aggregate: base + rate * aggregate is within [-M, M]. With rules 1 and 2 this holds in
   exact arithmetic (every rule's aggregate lies between its updates' values, or between them
   and zero), but float64 rounding in the sums can carry it a few ulps past M when updates sit
   right at the edge. Then, at the first coordinate out of range (spec order, then row-major),
   the update whose weighted value there pushes furthest in the overflow's direction is left
   out (ties: the lower address, the first in the rule's order) and the rule is applied again
   to the rest, until the model fits or too few updates remain. Each pass leaves out one
   update, so it ends; only updates within rounding of M can make it run more than once.

The float64 sums themselves never overflow: after rule 1 a value is below 2^128 and a weight
below 2^64, so a term is below 2^192, far from 2^1024 for any number of updates a chain can
register. A value within [-M, M] casts to a finite value of its dtype (M is representable and
rounding is monotone), so a model that passes rule 3 always writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flare.protocol.modelspec import ModelSpec, ParamSpec

# The largest finite value of each model dtype, written exactly.
FINITE_MAX: dict[str, float] = {
    "float32": float.fromhex("0x1.fffffep127"),  # (2 - 2^-23) * 2^127
    "bfloat16": float.fromhex("0x1.fep127"),  # (2 - 2^-7) * 2^127
    "float16": float.fromhex("0x1.ffcp15"),  # 65504
}


@dataclass(frozen=True)
class ModelStep:
    """How an aggregate moves the base model: weight + rate * delta, in float64.

    `scaled` is the step the review hands to `apply_delta` and `moved` the sum `apply_delta`
    then takes, so a check made here sees the bits the model will hold before its cast.
    """

    base: Mapping[str, NDArray[Any]]
    rate: float = 1.0

    def scaled(self, delta: NDArray[Any]) -> NDArray[np.float64]:
        """rate * delta (the delta itself at rate 1)."""
        values = np.asarray(delta, dtype=np.float64)
        if self.rate == 1.0:
            return values
        with np.errstate(over="ignore"):  # an infinite step is found out of range, not warned
            return values * self.rate

    def moved(self, name: str, delta: NDArray[Any]) -> NDArray[np.float64]:
        """The new weights of `name` in float64: base + rate * delta."""
        step = self.scaled(delta)
        with np.errstate(over="ignore", invalid="ignore"):
            return self.base[name].astype(np.float64) + step


def _peak(values: NDArray[np.float64]) -> float:
    """The largest magnitude (NaN if any value is NaN): exact, whatever the order."""
    return float(np.max(np.abs(values))) if values.size else 0.0


def tensor_overflow(
    param: ParamSpec, delta: NDArray[np.float64], step: ModelStep | None
) -> str | None:
    """Why one tensor of an update breaks rule 1 or (with `step`) rule 2, or None."""
    limit = FINITE_MAX[param.dtype]
    peak = _peak(delta)
    if not peak <= limit:
        return (
            f"{param.name} overflows {param.dtype}: its delta reaches {peak:.6g}, beyond the "
            f"largest finite {param.dtype} {limit:.6g}"
        )
    if step is not None:
        peak = _peak(step.moved(param.name, delta))
        if not peak <= limit:
            return (
                f"{param.name} overflows {param.dtype} in the new model: base + {step.rate:g} x "
                f"its delta reaches {peak:.6g}, beyond the largest finite {param.dtype} "
                f"{limit:.6g}"
            )
    return None


@dataclass(frozen=True)
class Overflow:
    """Where base + rate * aggregate first leaves its dtype's range (rule 3)."""

    name: str
    index: int  # row-major position in the parameter
    value: float  # the new weight there, in float64
    dtype: str

    def describe(self) -> str:
        return (
            f"the aggregate overflows {self.dtype} at {self.name}[{self.index}] (the new weight "
            f"would be {self.value:.6g}, beyond {FINITE_MAX[self.dtype]:.6g})"
        )


def first_overflow(
    delta: Mapping[str, NDArray[Any]], spec: ModelSpec, step: ModelStep
) -> Overflow | None:
    """The first coordinate, in spec order then row-major, where the model leaves its range."""
    for param in spec.params:
        moved = step.moved(param.name, delta[param.name]).ravel()
        outside = np.flatnonzero(~(np.abs(moved) <= FINITE_MAX[param.dtype]))
        if outside.size:
            index = int(outside[0])
            return Overflow(param.name, index, float(moved[index]), param.dtype)
    return None
