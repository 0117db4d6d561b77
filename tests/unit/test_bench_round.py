"""bench/round.py's core at 2 nodes on the embedded chain: it runs, and its figures add up.

The bench prints figures and asserts none; this only keeps it from rotting as the node loop,
the ledger and the store change under it. Timings are never checked, only their shape.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "round.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_round", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file loads
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def test_two_nodes_on_the_embedded_chain(bench: ModuleType) -> None:
    report = bench.run(("embedded",), [], [2], rounds=1, committee=7, progress=lambda _: None)
    json.dumps(report)  # what --json prints
    [run] = report["runs"]
    assert (run["chain"], run["nodes"], run["k"], run["quorum"]) == ("embedded", 2, 2, 2)
    assert run["finalized"] == 1
    assert run["coordination_s_per_round"] > 0
    assert run["coordination_s_per_node"] == pytest.approx(run["coordination_s_per_round"] / 2)
    assert run["growth"] == pytest.approx(1.0)
    # Each node claims a seat and submits; one proposes; the second approval finalizes.
    assert run["transactions"] == {"claim_seat": 2, "submit_update": 2, "propose_aggregate": 1,
                                   "vote": 2}  # fmt: skip
    assert run["tx_per_node"] == pytest.approx(3.5)
    assert run["gas_per_node"] > 100_000
    assert run["kib_pinned_per_node"] > 0
    assert run["kib_fetched_per_node"] > 0
    assert 0 < run["pairing_share"] <= run["bls_precompile_share"] < 1
    assert run["pairing_checks_per_round"] == 2  # one per seat claim
    assert sum(run["breakdown"].values()) == pytest.approx(1.0, abs=0.02)
    assert report["targets"]["seconds_at_16"] is None  # no anvil run, no verdict
    assert "rpc_round_trip_ms" not in run  # timed against anvil only
    assert "embedded" in bench.render(report)
