"""Several node loops on one in-process chain and store: the demo and the loop tests.

The loops are the ones `flare-node run` runs (`flare.node.round`), stepped in turn in one
thread, so the in-process chain sees one call at a time. A pass in which no loop acted and
every loop waits on a deadline moves the chain's clock to the earliest deadline, the way time
would pass between a real federation's transactions: windows of minutes cost nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flare.node.round import Acted, NodeLoop, Wait
from flare.protocol.errors import FlareError

StepHook = Callable[[int, Acted | Wait], None]


class CohortStuckError(FlareError, RuntimeError):
    """Every loop waits and none names a time: nothing could ever happen."""


@dataclass
class Cohort:
    """`loops` on one chain; `now` reads the chain's time, `advance(seconds)` moves it."""

    loops: Sequence[NodeLoop]
    now: Callable[[], int]
    advance: Callable[[int], object]
    on_step: StepHook | None = None
    max_passes: int = 100_000

    def run_until(self, done: Callable[[], bool]) -> int:
        """Step the loops in turn until `done()` (asked after every step); returns the steps."""
        steps = 0
        for _ in range(self.max_passes):
            acted = False
            deadlines: list[int] = []
            reasons: list[str] = []
            for index, loop in enumerate(self.loops):
                if done():
                    return steps
                result = loop.step()
                steps += 1
                if self.on_step is not None:
                    self.on_step(index, result)
                if isinstance(result, Acted):
                    acted = True
                else:
                    reasons.append(result.reason)
                    if result.until is not None:
                        deadlines.append(result.until)
            if done():
                return steps
            if acted:
                continue
            if not deadlines:
                raise CohortStuckError(
                    "every node waits and none for a time: " + "; ".join(sorted(set(reasons))),
                    hint="the round cannot move on; check that rounds started and nodes registered",
                )
            self.advance(max(1, min(deadlines) - self.now()))
        raise CohortStuckError(f"no end after {self.max_passes} passes")
