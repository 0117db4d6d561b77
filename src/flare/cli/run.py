"""`flare-node run`: the node process an operator leaves running next to the robot's data.

It wires the node from its config file (`flare.cli.nodesetup`) and runs the loop of
`flare.node.round` until stopped: SIGTERM or Ctrl-C stop it between steps, `--rounds N` after
N rounds. Everything it needs to resume lives in the node home, so a killed process is simply
started again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import JsonOption, emit_json
from flare.cli.nodeconfig import NodeConfig

if TYPE_CHECKING:
    from flare.cli.metrics import MetricsServer, NodeMetrics
    from flare.node.round import Wait

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        envvar="FLARE_CONFIG",
        help="The node's TOML config (`flare-node config example` prints a commented one).",
        dir_okay=False,
    ),
]
DEFAULT_CONFIG = Path("node.toml")


def load(config: Path) -> NodeConfig:
    """The config file with `FLARE_*` overrides applied."""
    import os

    from flare.cli.nodeconfig import load_config

    return load_config(config, os.environ)


class EventClock:
    """Wall-clock waits that a stop request cuts short."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def sleep(self, seconds: float) -> None:
        self._event.wait(max(0.0, seconds))

    def wake(self) -> None:
        self._event.set()


def run(
    config: ConfigOption = DEFAULT_CONFIG,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds", min=1, help="Take part in N rounds (the open one counts), then exit."
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="text or json (one object per line). Default: config."),
    ] = None,
    metrics_addr: Annotated[
        str | None,
        typer.Option(
            "--metrics-addr",
            metavar="HOST:PORT",
            help="Serve Prometheus metrics (/metrics) and a health check (/healthz) here. "
            "Default: [metrics] addr in the config, else none.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Run the node: claim seats, train, submit, review and vote, round after round."""
    from flare.cli import nodelog
    from flare.cli.nodesetup import Stop, crash_hook, load_keys, node_password, open_loop
    from flare.node.round import Acted
    from flare.node.round import run as run_loop
    from flare.node.state import NodeState
    from flare.protocol.errors import FlareError, UnavailableError

    settings = load(config)
    if log_format is not None and log_format not in ("text", "json"):
        raise typer.BadParameter("--log-format is text or json")
    logger = nodelog.setup(settings.log.level, log_format or settings.log.format, settings.log.file)
    steps = nodelog.StepLog(logger)
    checkpoint = crash_hook()
    keys = load_keys(settings, node_password(settings, prompt=False))
    address = keys.identity.address
    state = NodeState(settings.home.expanduser() / "state")
    try:  # first: a second process on this node is refused before it touches chain or store
        resumed = state.begin_run()
    except BaseException:
        state.close()
        raise
    try:
        loop = open_loop(settings, keys, state, log=steps.note, checkpoint=checkpoint)
    except BaseException:
        state.end_run()  # it never ran: the next run is no restart after a crash
        state.close()
        raise
    ledger, store = loop.ledger, loop.store
    first = max(1, ledger.current_round())
    note = ""
    if resumed is not None and first - 1 <= resumed <= first:
        # The round a killed process was in (or just left) counts as this run's first; a crash
        # long ago is no reason to count a round the node never saw.
        first = resumed
        note = f"; resuming round {resumed}, where the last process stopped uncleanly"
    last = None if rounds is None else first + rounds - 1
    loop.last_round = last
    clock = EventClock()
    stop = Stop(wake=clock.wake)

    def should_stop() -> bool:
        if stop.requested:
            return True
        if last is None:
            return False
        try:
            return ledger.current_round() > last
        except FlareError:
            return False  # the loop's own next step meets the error and backs off

    metrics, server = _serve_metrics(metrics_addr or settings.metrics.addr, settings, ledger)

    def on_step(result: Acted | Wait) -> None:
        steps.step(result)
        if metrics is not None:
            if isinstance(result, Acted) and "gas" in result.details:
                with contextlib.suppress(FlareError):  # before the step shows: a scrape that
                    metrics.set_balance(ledger.balance())  # sees the step sees its cost
            metrics.step(result)
            if loop.chatter is not None:
                metrics.set_gossip(loop.chatter.view())

    def on_error(error: FlareError, delay: float) -> None:
        kind = "unavailable" if isinstance(error, UnavailableError) else "failed"
        state.note_error(error.message, error.hint)
        steps.error(kind, error.message, error.hint, delay)
        if metrics is not None:
            metrics.error(error, kind)

    metrics_at = None if server is None else f"{server.host}:{server.port}"
    gossip_at = None if loop.chatter is None else getattr(loop.chatter.gossip, "address", None)
    began = time.time()
    logger.info(
        f"node {address} on {ledger.address} (chain {ledger.chain_id}); "
        + (f"rounds {first}..{last}" if last is not None else f"from round {first}")
        + note
        + (f"; metrics on http://{metrics_at}/metrics" if metrics_at else "")
        + (f"; gossip at {gossip_at}" if gossip_at else ""),
        extra={
            "fields": {
                "step": "start",
                "node": address,
                "contract": ledger.address,
                "metrics": metrics_at,
                "gossip": gossip_at,
            }
        },
    )
    stop.install()
    try:
        run_loop(
            loop,
            clock,
            should_stop=should_stop,
            poll_seconds=settings.chain.poll_interval,
            on_step=on_step,
            on_error=on_error,
        )
        state.end_run()
    finally:
        stop.uninstall()
        if server is not None:
            server.close()
        if loop.chatter is not None:
            with contextlib.suppress(Exception):  # what it heard up to the end, for `status`
                state.note_gossip(loop.chatter.view())
            loop.chatter.close()
        close = getattr(store, "close", None)
        if close is not None:
            close()
    summary = _summary(state, address, first, last, time.time() - began, stop.requested)
    logger.info(
        f"stopped: {_count(summary['rounds'], 'round')}, "
        f"{_count(summary['updates'], 'update')} registered, "
        f"{_count(summary['votes'], 'vote')}, gas {summary['gas']:,}",
        extra={"fields": {"step": "stop", **summary}},
    )
    state.close()
    if json_output:
        emit_json(summary)


def _serve_metrics(
    addr: str | None, settings: NodeConfig, ledger: Any
) -> tuple[NodeMetrics | None, MetricsServer | None]:
    """The metrics and their server when an address is given; (None, None) otherwise."""
    if addr is None:
        return None, None
    from flare.cli.metrics import MetricsServer, NodeMetrics, parse_address
    from flare.protocol.errors import FlareError

    host, port = parse_address(addr)
    metrics = NodeMetrics()
    with contextlib.suppress(FlareError):
        metrics.set_balance(ledger.balance())
    server = MetricsServer(
        metrics,
        host,
        port,
        stale_after=settings.metrics.stale_after,
        chain_round=ledger.current_round,
    )
    return metrics, server


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary(
    state: Any, address: str, first: int, last: int | None, wall: float, stopped: bool
) -> dict[str, Any]:
    """What the node did in the rounds this process saw, from its own records."""
    records = [
        (r, s, o) for r, s, o in state.outcomes() if r >= first and (last is None or r <= last)
    ]
    rounds = sorted({r for r, _, _ in records})
    return {
        "node": address,
        "rounds": len(rounds),
        "first_round": first,
        "last_round": rounds[-1] if rounds else None,
        "updates": sum(
            1 for _, s, o in records if s == "submit" and ("gas" in o or o.get("recovered"))
        ),
        "seats": sum(1 for _, s, o in records if s == "claim" and o.get("claimed")),
        "votes": sum(1 for _, s, o in records if s == "vote"),
        "gas": sum(int(o.get("gas", 0)) for _, _, o in records),
        "stopped_by_signal": stopped,
        "wall_seconds": round(wall, 3),
    }
