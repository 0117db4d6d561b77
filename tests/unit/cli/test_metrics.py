"""The node's metrics and health endpoint, fed the loop's reports as `run` feeds them."""

from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from flare.cli.metrics import MetricsServer, NodeMetrics, parse_address
from flare.node.round import Acted, Wait
from flare.protocol.errors import ConfigError, UnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(metrics: NodeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_steps_gas_bytes_and_rejections_are_counted() -> None:
    clock = Clock()
    metrics = NodeMetrics(clock)
    metrics.step(Acted("train", {"cid": "b", "bytes": 4096}, round=3, phase="TRAINING"))
    clock.now += 5
    metrics.step(Acted("submit", {"gas": 120_000}, round=3, phase="TRAINING"))
    clock.now += 7
    metrics.step(
        Acted(
            "review",
            {"included": ["0xa", "0xb"], "rejected": [["0xc", "norm 9.1 exceeds 2.0"]]},
            round=3,
            phase="REVIEW",
        )
    )
    metrics.step(Acted("vote", {"gas": 80_000}, round=3, phase="REVIEW"))
    got = samples(metrics)
    assert got[("flare_round", ())] == 3
    assert got[("flare_phase", (("phase", "review"),))] == 1
    assert got[("flare_phase", (("phase", "training"),))] == 0
    assert got[("flare_steps_total", (("step", "train"),))] == 1
    assert got[("flare_gas_spent_total", ())] == 200_000
    assert got[("flare_bytes_sent_total", ())] == 4096
    assert got[("flare_updates_included_total", ())] == 2
    assert got[("flare_updates_rejected_total", (("reason", "norm"),))] == 1
    # 5 + 7 s between reports booked to training, where the node was.
    assert got[("flare_phase_seconds_total", (("phase", "training"),))] == 12


def test_failures_are_counted_by_kind_and_type_and_waits_are_not_steps() -> None:
    metrics = NodeMetrics(Clock())
    metrics.error(UnavailableError("down"), "unavailable")
    metrics.step(Wait(None, "waiting for review", round=2, phase="TRAINING"))
    got = samples(metrics)
    assert (
        got[("flare_step_failures_total", (("error", "UnavailableError"), ("kind", "unavailable")))]
        == 1
    )
    assert not any(name == "flare_steps_total" for name, _ in got)


def test_health_follows_the_chain_and_a_failure_streak() -> None:
    clock = Clock()
    metrics = NodeMetrics(clock)
    ok, body = metrics.health(60, lambda: 4)
    assert not ok  # has seen no round yet while the chain is at 4
    metrics.step(Wait(None, "training", round=4, phase="TRAINING"))
    assert metrics.health(60, lambda: 4)[0]
    assert metrics.health(60, lambda: 5)[0]  # a new round is noticed at the next poll
    ok, body = metrics.health(60, lambda: 6)
    assert not ok
    assert body["problems"] == ["the node is at round 4, the chain at 6"]

    metrics.error(UnavailableError("the chain at X is down"), "unavailable")
    clock.now += 30
    assert metrics.health(60, lambda: 4)[0]  # failing, but not for long
    clock.now += 31
    ok, body = metrics.health(60, lambda: 4)
    assert not ok
    assert body["last_error"] == "the chain at X is down"

    def down() -> int:
        raise UnavailableError("cannot reach the chain at X")

    metrics.step(Wait(None, "training", round=4, phase="TRAINING"))
    ok, body = metrics.health(60, down)
    assert not ok
    assert body["problems"] == ["the chain does not answer: cannot reach the chain at X"]


def test_the_server_answers_metrics_and_health() -> None:
    metrics = NodeMetrics()
    metrics.step(Acted("adopt", {"model": "b"}, round=1, phase="TRAINING"))
    server = MetricsServer(metrics, "127.0.0.1", 0, stale_after=60, chain_round=lambda: 1)
    try:
        base = f"http://127.0.0.1:{server.port}"
        scraped = requests.get(f"{base}/metrics", timeout=5)
        assert scraped.status_code == 200
        assert 'flare_steps_total{step="adopt"} 1.0' in scraped.text
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200
        assert json.loads(health.text)["ok"] is True
        assert requests.get(f"{base}/other", timeout=5).status_code == 404
    finally:
        server.close()


def test_a_taken_port_is_a_clear_error() -> None:
    first = MetricsServer(NodeMetrics(), "127.0.0.1", 0, stale_after=60, chain_round=lambda: 0)
    try:
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            MetricsServer(NodeMetrics(), "127.0.0.1", first.port, stale_after=60, chain_round=int)
    finally:
        first.close()


@pytest.mark.parametrize("text", ["9464", "localhost", "127.0.0.1:99999", ":"])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_address(text)


def test_addresses_parse() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:0") == ("::1", 0)


def test_fetched_bytes_and_gossip_are_counted() -> None:
    metrics = NodeMetrics(Clock())
    metrics.step(Acted("prefetch", {"cid": "b", "bytes": 1000}, round=2, phase="TRAINING"))
    metrics.step(Acted("review", {"fetched_bytes": 3000, "included": []}, round=2, phase="REVIEW"))
    view = {
        "connected": [{"peer_id": "12D3a", "addr": None}, {"peer_id": "12D3b", "addr": None}],
        "live": [{"node": "0xa", "round": 2, "phase": "REVIEW", "ago": 1.0}],
        "rejected": {"bad-signature": 2, "replay": 1},
    }
    metrics.set_gossip(view)
    metrics.set_gossip(view | {"rejected": {"bad-signature": 5, "replay": 1}})  # totals grow
    got = samples(metrics)
    assert got[("flare_bytes_fetched_total", ())] == 4000
    assert got[("flare_gossip_peers", ())] == 2
    assert got[("flare_gossip_live_nodes", ())] == 1
    assert got[("flare_gossip_dropped_total", (("reason", "bad-signature"),))] == 5
    assert got[("flare_gossip_dropped_total", (("reason", "replay"),))] == 1
