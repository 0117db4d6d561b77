"""`flare-node demo` walks a whole real round on the embedded chain and store (~45 s on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flare.cli.app import app
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.policy import read_policy


def test_demo_finalizes_round_one_and_opens_round_two(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--nodes", "4", "--committee", "3", "--data-dir", str(tmp_path), "--json"]
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["phase"] == "FINALIZED"
    assert summary["updates"] == 4
    assert len(summary["seats"]) == 3
    # The contract verified every seat's BLS VRF proof; the demo re-checked them off-chain
    # from the events, as an auditor does.
    assert summary["verified_seats"] == summary["seats"]
    # The committee applied the committed review policy, which the store holds by its CID.
    with EmbeddedStore(tmp_path / "store") as store:
        policy = read_policy(store.get(summary["review_policy"]))
    assert policy.rule.name == "fedavg"
    assert summary["global_model_round"] == 1
    assert summary["next_round"] == 2
    assert len(summary["included"]) == 4  # every node's trained, compressed update
    # One round of FedAvg over PowerSGD updates helps on data no node trained on.
    assert summary["held_out_loss"]["after"] < summary["held_out_loss"]["before"]
    # The finalized model is a flare-model/1 file in the store, derived from the genesis.
    with EmbeddedStore(tmp_path / "store") as store:
        spec_hash = bytes.fromhex(summary["model_spec"][2:])
        model = store.get(summary["global_model"])
        genesis = store.get(summary["genesis_model"])
    header_end = 8 + int.from_bytes(model[:8], "little")
    header = json.loads(model[8:header_end])["__metadata__"]
    assert header["format"] == "flare-model/1"
    assert (header["round"], header["parent"]) == ("1", summary["genesis_model"])
    assert header["model_spec"] == "0x" + spec_hash.hex()
    weights = model[header_end:]
    genesis_weights = genesis[8 + int.from_bytes(genesis[:8], "little") :]
    assert len(weights) == len(genesis_weights)  # the same parameters ...
    assert weights != genesis_weights  # ... moved by the round


def test_demo_refuses_a_committee_larger_than_the_federation() -> None:
    result = CliRunner().invoke(app, ["demo", "--nodes", "2", "--committee", "3"])

    assert result.exit_code != 0
    assert "committee cannot be larger" in result.output
