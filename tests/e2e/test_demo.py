"""`flare-node demo`: four node loops on the embedded chain and store learn together over rounds.

One demo run (about a minute and a half on one CPU core) is shared by the checks below: the
federation's model gets better on reference data no node trained on, every round's outcome is
on-chain and in the run directory, and the nodes' homes hold what a restarted node would need.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flare.cli.app import app
from flare.node.state import NodeState
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.policy import read_policy

ROUNDS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    directory = tmp_path_factory.mktemp("demo") / "run"
    result = CliRunner().invoke(
        app, ["demo", "--rounds", str(ROUNDS), "--run-dir", str(directory), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), directory, result.stderr


def test_the_federation_learns_over_the_rounds(run: tuple[dict[str, Any], Path, str]) -> None:
    summary, _, _ = run
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert all(r["phase"] == "FINALIZED" for r in rounds)
    # Each round starts where the last one ended, and the last ends well below the genesis.
    assert rounds[0]["held_out_loss"]["before"] == summary["genesis_held_out_loss"]
    for previous, current in itertools.pairwise(rounds):
        assert current["held_out_loss"]["before"] == previous["held_out_loss"]["after"]
        assert current["base_model"] == previous["model"]
    assert rounds[-1]["held_out_loss"]["after"] <= 0.7 * summary["genesis_held_out_loss"]


def test_every_round_names_its_committee_updates_and_costs(
    run: tuple[dict[str, Any], Path, str],
) -> None:
    summary, _, _ = run
    for r in summary["rounds"]:
        assert len(r["committee"]) == 3
        assert sorted(r["included"]) == ["node-1", "node-2", "node-3", "node-4"]
        assert r["rejected"] == []
        # PowerSGD: each node sent a fraction of the dense model, and paid gas for it.
        assert all(0 < sent < r["dense_bytes"] / 2 for sent in r["bytes_sent"].values())
        assert all(gas > 0 for gas in r["gas"].values())


def test_the_run_directory_outlives_the_command(run: tuple[dict[str, Any], Path, str]) -> None:
    summary, directory, _ = run
    assert summary["run_dir"] == str(directory)
    assert json.loads((directory / "summary.json").read_text()) == summary
    plot = directory / "held_out_loss.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in range(1, ROUNDS + 1):
        metrics = json.loads((directory / "rounds" / f"round-{r}.json").read_text())
        assert [n["name"] for n in metrics["nodes"]] == ["node-1", "node-2", "node-3", "node-4"]
        assert set(metrics["own_held_out_loss"]) == {"node-1", "node-2", "node-3", "node-4"}
        for node in metrics["nodes"]:
            assert node["train"]["steps"] > 0
            assert node["outcome"] == "included"


def test_the_final_model_descends_from_the_genesis_and_the_policy_is_the_committed_one(
    run: tuple[dict[str, Any], Path, str],
) -> None:
    summary, directory, _ = run
    with EmbeddedStore(directory / "store") as store:
        policy = read_policy(store.get(summary["review_policy"]))
        chain = [summary["final_model"]]
        while len(chain) <= ROUNDS:
            model_round, parent = _lineage(store.get(chain[-1]))
            assert model_round == ROUNDS + 1 - len(chain)
            chain.append(parent)
    assert chain[-1] == summary["genesis_model"]
    assert policy.max_loss_increase > 0  # members reject a much worse model


def test_each_node_home_keeps_its_keys_state_and_trainer_state(
    run: tuple[dict[str, Any], Path, str],
) -> None:
    _, directory, _ = run
    for home in sorted((directory / "nodes").iterdir()):
        assert {p.name for p in (home / "keys").iterdir()} >= {"ethereum.json", "bls.json"}
        with NodeState(home / "state") as state:
            steps = {(r, step) for r, step, _ in state.outcomes()}
            assert {(r, "submit") for r in range(1, ROUNDS + 1)} <= steps
            assert len(state.txs(ROUNDS, "submit")) == 1  # journaled before broadcast
        schedule = json.loads((home / "trainer" / "schedule.json").read_text())
        assert schedule["round"] == ROUNDS  # the carried state is the last round's
        assert (home / "trainer" / "compressor.safetensors").is_file()


def test_the_demo_refuses_a_committee_larger_than_the_federation() -> None:
    result = CliRunner().invoke(app, ["demo", "--nodes", "2", "--committee", "3"])

    assert result.exit_code != 0
    assert "committee cannot be larger" in result.output


def test_the_demo_refuses_to_write_into_a_run_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("kept")
    result = CliRunner().invoke(app, ["demo", "--run-dir", str(tmp_path)])

    assert result.exit_code != 0
    assert "not empty" in result.output
    assert (tmp_path / "something").read_text() == "kept"


def _lineage(data: bytes) -> tuple[int, str]:
    """(round, parent CID) from a flare-model/1 file's header."""
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    assert header["format"] == "flare-model/1"
    return int(header["round"]), str(header["parent"])
