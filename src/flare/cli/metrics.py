"""`flare-node run --metrics-addr HOST:PORT`: Prometheus metrics and a health endpoint.

The node loop already reports every step (`on_step`) and every failure (`on_error`); this
module turns those reports into counters and gauges, so operators watch a fleet with the tools
they have. `/metrics` is the Prometheus text format; `/healthz` answers 200 while the node
keeps up with the chain and 503 when it does not, with a JSON body saying why, for load
balancers and `docker compose` health checks. Keeping up means: the chain answers, the node has
seen the chain's current round (or the one before: a new round is noticed at the next poll),
and it is not stuck failing (its steps have not failed without a success for longer than
`stale_after`). A long training step is not falling behind: the loop reports nothing while it
trains, and that is healthy.

Each server has its own registry: nothing global, so tests (and several nodes in one process)
do not see each other's numbers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flare.protocol.errors import ConfigError, FlareError

if TYPE_CHECKING:
    from flare.node.round import Acted, Wait

__all__ = ["MetricsServer", "NodeMetrics", "parse_address"]

PHASES = ("none", "training", "review", "finalized", "failed")


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT) for the metrics listener; a ConfigError otherwise."""
    found = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", text.strip())
    if found is None or not 0 <= int(found.group(2)) <= 65535:
        raise ConfigError(
            f"metrics address {text!r} is not HOST:PORT",
            hint="e.g. 127.0.0.1:9464 (keep it on a private interface)",
        )
    return found.group(1), int(found.group(2))


def _reason_label(reason: str) -> str:
    """A rejection reason as a label: its leading words, without numbers or CIDs, so the
    label set stays small (one series per kind of reason, not per update)."""
    words = re.split(r"[:(0-9]", reason, maxsplit=1)[0].strip().lower()
    return re.sub(r"[^a-z ]+", "", words).strip().replace(" ", "_")[:48] or "other"


class NodeMetrics:
    """The node's numbers, fed from the loop's step and error reports."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.round = Gauge("flare_round", "The round the node last saw.", registry=r)
        self.phase = Gauge(
            "flare_phase", "1 for the phase the node last saw.", ["phase"], registry=r
        )
        self.steps = Counter("flare_steps", "Steps the node completed.", ["step"], registry=r)
        self.failures = Counter(
            "flare_step_failures",
            "Steps that failed (and will be retried), by kind and error type.",
            ["kind", "error"],
            registry=r,
        )
        self.phase_seconds = Counter(
            "flare_phase_seconds", "Seconds the node spent in each phase.", ["phase"], registry=r
        )
        self.bytes_sent = Counter(
            "flare_bytes_sent", "Bytes of updates and models the node pinned.", registry=r
        )
        self.bytes_fetched = Counter(
            "flare_bytes_fetched",
            "Bytes of other nodes' updates the node fetched (prefetch and review).",
            registry=r,
        )
        self.peers = Gauge("flare_gossip_peers", "Gossip peers connected now.", registry=r)
        self.live_nodes = Gauge(
            "flare_gossip_live_nodes", "Nodes heard on gossip in the last minute.", registry=r
        )
        self.gossip_dropped = Counter(
            "flare_gossip_dropped",
            "Gossip messages dropped (forged, replayed, stale, foreign, oversized), by reason.",
            ["reason"],
            registry=r,
        )
        self._dropped_seen: dict[str, int] = {}
        self.gas = Counter("flare_gas_spent", "Gas used by the node's transactions.", registry=r)
        self.balance = Gauge("flare_balance_wei", "The node account's balance.", registry=r)
        self.rejected = Counter(
            "flare_updates_rejected",
            "Updates this node's review left out, by reason.",
            ["reason"],
            registry=r,
        )
        self.included = Counter(
            "flare_updates_included", "Updates this node's review included.", registry=r
        )
        self.last_step = Gauge(
            "flare_last_step_timestamp_seconds",
            "Unix time of the node's last successful step.",
            registry=r,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._phase: str = "none"
        self._since = clock()
        self._round: int | None = None
        self._failing_since: float | None = None
        self._last_error: str | None = None
        for name in PHASES:
            self.phase.labels(name).set(1 if name == "none" else 0)

    # ------------------------------------------------------------------ feeding

    def step(self, result: Acted | Wait) -> None:
        """One report from the loop (its `on_step`)."""
        from flare.node.round import Acted

        with self._lock:
            self._enter(result.phase)
            self._failing_since = None
            self._last_error = None
            if result.round is not None:
                self._round = result.round
        self.last_step.set(time.time())
        if result.round is not None:
            self.round.set(result.round)
        if not isinstance(result, Acted):
            return
        self.steps.labels(result.what).inc()
        details = result.details
        if isinstance(details.get("gas"), int):
            self.gas.inc(details["gas"])
        if result.what == "train" and isinstance(details.get("bytes"), int):
            self.bytes_sent.inc(details["bytes"])
        if result.what == "prefetch" and isinstance(details.get("bytes"), int):
            self.bytes_fetched.inc(details["bytes"])
        if result.what == "review" and isinstance(details.get("fetched_bytes"), int):
            self.bytes_fetched.inc(details["fetched_bytes"])
        if result.what == "review":
            self.included.inc(len(details.get("included", ())))
            for _node, reason in details.get("rejected", ()):
                self.rejected.labels(_reason_label(str(reason))).inc()

    def error(self, error: FlareError, kind: str) -> None:
        """One failure report from the loop (its `on_error`)."""
        with self._lock:
            self._enter(self._phase)
            if self._failing_since is None:
                self._failing_since = self._clock()
            self._last_error = error.message
        self.failures.labels(kind, type(error).__name__).inc()

    def set_gossip(self, view: dict[str, Any]) -> None:
        """The gossip layer's view (`Chatter.view`): peers, live nodes, drops by reason."""
        self.peers.set(len(view["connected"]))
        self.live_nodes.set(len(view["live"]))
        for reason, total in view["rejected"].items():
            grew = total - self._dropped_seen.get(reason, 0)
            if grew > 0:
                self.gossip_dropped.labels(reason).inc(grew)
            self._dropped_seen[reason] = total

    def set_balance(self, wei: int) -> None:
        self.balance.set(wei)

    def _enter(self, phase: str | None) -> None:
        """Book the time since the last report to the phase the node was in."""
        now = self._clock()
        self.phase_seconds.labels(self._phase).inc(max(0.0, now - self._since))
        self._since = now
        name = phase.lower() if phase is not None and phase.lower() in PHASES else "none"
        if name != self._phase:
            self.phase.labels(self._phase).set(0)
            self.phase.labels(name).set(1)
            self._phase = name

    # ------------------------------------------------------------------ health

    def health(
        self, stale_after: float, chain_round: Callable[[], int]
    ) -> tuple[bool, dict[str, Any]]:
        """Whether the node keeps up with the chain (see the module docstring), and why."""
        try:
            current: int | None = chain_round()
            unreachable = None
        except FlareError as error:
            current, unreachable = None, error.message
        with self._lock:
            failing = None if self._failing_since is None else self._clock() - self._failing_since
            body: dict[str, Any] = {
                "round": self._round,
                "chain_round": current,
                "phase": self._phase,
                "failing_for": None if failing is None else round(failing, 3),
                "last_error": self._last_error,
            }
            seen = self._round
        problems = []
        if unreachable is not None:
            problems.append(f"the chain does not answer: {unreachable}")
        elif current is not None and current > 0 and (seen is None or seen < current - 1):
            problems.append(f"the node is at round {seen}, the chain at {current}")
        if failing is not None and failing > stale_after:
            problems.append(f"its steps have failed for {failing:.0f} s")
        body["ok"] = not problems
        body["problems"] = problems
        return not problems, body


class MetricsServer:
    """Serves `/metrics` and `/healthz` for `metrics` on a daemon thread until `close()`."""

    def __init__(
        self,
        metrics: NodeMetrics,
        host: str,
        port: int,
        *,
        stale_after: float,
        chain_round: Callable[[], int],
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok, body = metrics.health(stale_after, chain_round)
                    payload = json.dumps(body, sort_keys=True).encode()
                    self._send(200 if ok else 503, payload, "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Scrapes are not the node's log."""

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as error:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}",
                hint="pick a free port, or an address of this machine",
            ) from error
        self._server.daemon_threads = True
        self.host = host if ":" not in host else f"[{host}]"
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flare-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
