"""How long a network call may take: the three limits every call to a chain or a daemon gets.

A daemon that accepts a connection but never answers (stopped, deadlocked, a wrong port that
happens to listen) must not leave a node or a command silent for minutes. So every call has a
`connect` limit (to open the TCP connection), an `idle` limit (the longest silence while
sending or waiting for bytes) and a `deadline` (the most one call may take in all, retries
included). A call that hits one fails with `TimeLimitError`, which names the endpoint and the
limit, so the operator knows which setting to look at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from flare.protocol.errors import ConfigError, UnavailableError

__all__ = ["LIMIT_SETTINGS", "Deadline", "NetworkLimits", "TimeLimitError"]

# Where an operator changes each limit: the config key (table [network]) and, for the deadline,
# the command-line option. Messages quote these.
LIMIT_SETTINGS = {
    "connect": "[network] connect_timeout",
    "idle": "[network] idle_timeout",
    "deadline": "--timeout or [network] deadline",
}


@dataclass(frozen=True, slots=True)
class NetworkLimits:
    """Seconds allowed to connect, to stay silent, and for one whole call (retries included)."""

    connect: float = 10.0
    idle: float = 60.0
    deadline: float = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "idle", "deadline"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"the {name} limit must be a positive number of seconds, not {value!r}",
                    hint=f"set {LIMIT_SETTINGS[name]} to a number above 0",
                )

    def with_deadline(self, seconds: float) -> NetworkLimits:
        """These limits with another deadline; connect and idle never exceed it."""
        return NetworkLimits(min(self.connect, seconds), min(self.idle, seconds), seconds)

    def start(self) -> Deadline:
        """The clock for one call, started now."""
        return Deadline(self)


class Deadline:
    """One call's clock: the timeouts each attempt may use, and which limit a timeout hit."""

    def __init__(self, limits: NetworkLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._started = clock()
        self._cut = {"connect": False, "idle": False}

    def remaining(self) -> float:
        return self.limits.deadline - (self._clock() - self._started)

    def attempt(self) -> tuple[float, float]:
        """(connect, idle) seconds for the next attempt: the limits, cut to the time left."""
        left = max(self.remaining(), 0.001)
        self._cut = {"connect": left < self.limits.connect, "idle": left < self.limits.idle}
        return min(self.limits.connect, left), min(self.limits.idle, left)

    def allows_wait(self, seconds: float) -> bool:
        """Whether a back-off of `seconds` still leaves time for another attempt."""
        return self.remaining() > seconds

    def which(self, phase: str) -> tuple[str, float]:
        """The limit a timeout in `phase` ("connect" or "idle") hit, and its seconds: the
        deadline when it had cut that attempt's timeout short, else the phase's own."""
        if self._cut.get(phase, False):
            return "deadline", self.limits.deadline
        return phase, self.limits.connect if phase == "connect" else self.limits.idle


class TimeLimitError(UnavailableError):
    """A network call hit one of its limits; names the endpoint, the limit and its setting."""

    def __init__(self, endpoint: str, what: str, limit: str, seconds: float) -> None:
        if limit == "connect":
            happened = f"could not connect to {endpoint} within {seconds:g} s"
        elif limit == "idle":
            happened = f"{endpoint} went silent for {seconds:g} s during {what}"
        else:
            happened = f"{endpoint} did not finish {what} within {seconds:g} s"
        super().__init__(
            f"{happened} (the {limit} limit)",
            hint="check that it is running and answering: a stopped or overloaded process "
            "accepts connections but never replies; if it is only slow, raise "
            f"{LIMIT_SETTINGS[limit]}",
        )
        self.endpoint = endpoint
        self.limit = limit
        self.seconds = seconds
