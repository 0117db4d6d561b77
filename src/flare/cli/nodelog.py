"""The node's log: one line per step with its round and phase, as text or JSON lines.

Operators read the text; log shippers read `--log-format json` (one object per line, the
step's details as fields). Waiting is logged once per new reason, not at every poll, so an
idle node's log stays readable.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flare.node.round import Acted, Wait

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip
LOGGER = "flare.node"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, sort_keys=True, default=str)


class TextFormatter(logging.Formatter):
    """`time level [round N PHASE] message`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        where = ""
        if fields.get("round") is not None:
            where = f"round {fields['round']} {fields.get('phase') or ''}".rstrip() + ": "
        return f"{_iso(record.created)} {record.levelname.lower():<7} {where}{record.getMessage()}"


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))


def setup(level: str, fmt: str, file: Path | None, stream: IO[str] | None = None) -> logging.Logger:
    """The node logger, writing to `file` (appended) or stderr in the chosen format."""
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(LEVELS[level])
    handler: logging.Handler
    if file is not None:
        file.expanduser().parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file.expanduser(), encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    return logger


class StepLog:
    """Turns the loop's results into log records (see the module docstring)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._last_wait: tuple[int | None, str] | None = None

    def note(self, message: str) -> None:
        """A line the loop logs itself (a refusal, a re-check after a reorg)."""
        self.logger.info(message)

    def step(self, result: Acted | Wait) -> None:
        from flare.node.round import Acted

        where = {"round": result.round, "phase": result.phase}
        if isinstance(result, Acted):
            self._last_wait = None
            details = {k: v for k, v in result.details.items() if k != "round"}
            fields = {**where, "step": result.what, **details}
            self.logger.info(describe(result), extra={"fields": fields})
            return
        key = (result.round, result.reason)
        if key != self._last_wait:
            self._last_wait = key
            fields = {**where, "step": "wait", "reason": result.reason, "until": result.until}
            self.logger.info(f"waiting: {result.reason}", extra={"fields": fields})

    def error(self, kind: str, message: str, hint: str | None, delay: float) -> None:
        fields = {"step": "error", "kind": kind, "retry_in": delay, "hint": hint}
        advice = f" ({hint})" if hint else ""
        self.logger.warning(
            f"{kind}: {message}{advice}; retrying in {delay:g}s", extra={"fields": fields}
        )


def describe(result: Acted, names: dict[str, str] | None = None, *, short: bool = False) -> str:
    """One line for a step that did something.

    `names` gives nodes readable names (the demo's node-1, ...): with them, a review line says
    which updates it left out and why; `short` abbreviates CIDs, for a terminal table.
    """
    d = result.details
    gas = f" (gas {d['gas']:,})" if "gas" in d else ""

    def cid(value: str) -> str:
        return f"{value[:16]}…" if short else value

    what = result.what
    if what == "adopt":
        return f"adopted base model {cid(d['model'])}"
    if what == "retain":
        freed = d.get("freed_bytes")
        more = f", {freed:,} bytes freed" if freed else ""
        return f"unpinned {len(d['unpinned'])} old items{more}"
    if what == "claim":
        if d.get("recovered"):
            return "found its seat claim on-chain"
        return f"claimed a committee seat{gas}" if d["claimed"] else f"no seat: {d['reason']}"
    if what == "train":
        metrics = d.get("metrics", {})
        loss = ""
        if "first_loss" in metrics and "final_loss" in metrics:
            loss = f"loss {metrics['first_loss']:.4f} -> {metrics['final_loss']:.4f}, "
        size = f"{d['bytes'] / 1024:.0f} KiB" if short else f"{d['bytes']:,} bytes"
        return f"trained: {loss}update {cid(d['cid'])} ({size}, {d['num_samples']} samples)"
    if what == "submit":
        if "gas" in d:
            return f"registered update {cid(d.get('cid', ''))}{gas}".replace("  ", " ")
        if d.get("recovered"):
            return "found its update registered on-chain"
        return f"no update registered: {d.get('skipped') or d.get('missed') or 'conflict'}"
    if what == "review":
        if not d.get("model"):
            return f"nothing to propose: {d.get('reason')}"
        verdict = "passes" if d["accepted"] else "fails"
        if names is None:
            left = f"{len(d['rejected'])} left out"
        else:
            named = ", ".join(f"{names.get(n, n)} ({why})" for n, why in d["rejected"])
            left = f"left out: {named or 'none'}"
        return (
            f"computed {cid(d['model'])} from {len(d['included'])} updates, {left}; "
            f"own held-out test {verdict}"
        )
    if what == "propose":
        return f"proposed {cid(d.get('model', ''))}{gas}"
    if what == "vote":
        side = "for" if d.get("approve") else "against"
        return f"voted {side} proposal {d.get('proposal')}: {d.get('reason')}{gas}"
    if what == "close":
        return f"closed the failed round{gas}" if "gas" in d else "the failed round was closed"
    return what
