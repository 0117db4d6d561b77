"""Deployer commands against a real anvil: the deployment outlives each command and process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flare_testing import POLICY
from typer.testing import CliRunner

from flare.cli.app import app
from flare.protocol.cid import encode_cid

pytestmark = pytest.mark.anvil

GENESIS = encode_cid(bytes.fromhex("01551220") + hashlib.sha256(b"genesis").digest())
NODE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil's dev account 1


def test_deploy_then_info_and_allow_in_separate_invocations(anvil_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    record = tmp_path / "deployment.json"
    policy = tmp_path / "policy.json"
    policy.write_bytes(POLICY.to_bytes())
    common = ["--rpc", anvil_url, "--deployment", str(record)]

    deployed = runner.invoke(
        app,
        [
            "contract",
            "deploy",
            "--rpc",
            anvil_url,
            "--dev-account",
            "0",
            "--model-spec-hash",
            "0x" + "5e" * 32,
            "--genesis-model",
            GENESIS,
            "--out",
            str(record),
            "--committee-size",
            "4",
            "--policy",
            str(policy),
            "--data-dir",
            str(tmp_path / "store"),
        ],
    )
    allowed = runner.invoke(app, ["contract", "allow", NODE, *common, "--dev-account", "0"])
    started = runner.invoke(app, ["contract", "start", *common, "--dev-account", "0", "--json"])
    # A separate process sees the same contract: the chain is anvil's, not this process's.
    flare_node = Path(sys.executable).with_name("flare-node")
    shown = subprocess.run(
        [str(flare_node), "contract", "info", *common, "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )

    assert deployed.exit_code == 0, deployed.output
    assert allowed.exit_code == 0, allowed.output
    assert f"allowed {NODE}" in allowed.stdout
    assert started.exit_code == 0, started.output
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["address"] == json.loads(record.read_text())["address"]
    assert summary["chain_id"] == 31337
    assert summary["config"]["committee_size"] == 4
    assert summary["current_round"] == 1
    assert summary["round"]["phase"] == "training"
    assert summary["version"] == 2
