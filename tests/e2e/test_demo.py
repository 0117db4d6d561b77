"""`flare-node demo` walks a whole round on the embedded chain and store."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flare.cli.app import app
from flare.node.store.embedded import EmbeddedStore


def test_demo_finalizes_round_one_and_opens_round_two(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--nodes", "4", "--committee", "3", "--data-dir", str(tmp_path), "--json"]
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["phase"] == "FINALIZED"
    assert summary["updates"] == 4
    assert len(summary["seats"]) == 3
    # Every seat holder's ECVRF proof was checked off-chain against its registered key.
    assert summary["verified_seats"] == summary["seats"]
    assert summary["global_model_round"] == 1
    assert summary["next_round"] == 2
    # The finalized model is real content in the store, re-hashed on read.
    with EmbeddedStore(tmp_path / "store") as store:
        assert store.get(summary["global_model"])


def test_demo_refuses_a_committee_larger_than_the_federation() -> None:
    result = CliRunner().invoke(app, ["demo", "--nodes", "2", "--committee", "3"])

    assert result.exit_code != 0
    assert "committee cannot be larger" in result.output
