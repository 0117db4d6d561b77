"""Dev accounts only on dev chains; dev clocks move on request; deployment records round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from flare.chain.connect import ANVIL_CHAIN_ID, ETH_TESTER_CHAIN_ID, connect
from flare.chain.deploy import Deployment, DeploymentFileError, read_deployment
from flare.chain.devchain import DevAccountRefusedError, advance_time, dev_account_key


@pytest.mark.parametrize("chain_id", [1, 10, 11155111, 8453])
def test_dev_accounts_are_refused_on_other_chains(chain_id: int) -> None:
    with pytest.raises(DevAccountRefusedError, match=f"chain {chain_id} is not one"):
        dev_account_key(chain_id, 0)


def test_dev_account_index_is_bounded() -> None:
    with pytest.raises(DevAccountRefusedError, match="does not exist"):
        dev_account_key(ANVIL_CHAIN_ID, 10)


def test_anvil_dev_accounts_are_the_well_known_ones() -> None:
    # anvil prints these two addresses first in its banner.
    addresses = [Account.from_key(dev_account_key(ANVIL_CHAIN_ID, i)).address for i in (0, 1)]

    assert addresses == [
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ]


def test_eth_tester_dev_accounts_are_its_funded_accounts() -> None:
    w3 = connect("eth-tester://devchain-test")
    keys = [dev_account_key(ETH_TESTER_CHAIN_ID, i) for i in range(3)]

    assert [Account.from_key(key).address for key in keys] == list(w3.eth.accounts[:3])
    assert all(w3.eth.get_balance(address) > 0 for address in w3.eth.accounts[:3])


def test_advance_time_moves_the_latest_block_by_exactly_that_much() -> None:
    w3 = connect("eth-tester://devchain-clock")
    before = w3.eth.get_block("latest")["timestamp"]

    after = advance_time(w3, 3600)

    assert after == before + 3600 == w3.eth.get_block("latest")["timestamp"]


RECORD = Deployment(
    address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    chain_id=31337,
    block=1,
    tx_hash="0x" + "ab" * 32,
    deployer="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    owner="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    artifact_sha256="00" * 32,
    model_spec_hash="0x" + "11" * 32,
    genesis_model="0x01551220" + "22" * 32,
    allowlist=True,
    config={
        "committeeSize": 7,
        "quorumBps": 6000,
        "trainWindow": 60,
        "reviewWindow": 60,
        "minUpdates": 1,
    },
    gas_used=4_000_000,
)


def test_deployment_records_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "deployment.json"

    RECORD.write(path)

    assert read_deployment(path) == RECORD
    assert json.loads(path.read_text())["format"] == "flare-deployment/1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no deployment record"),
        ("{not json", "is not a deployment record"),
        (json.dumps({"format": "other"}), "is not a flare-deployment/1"),
        (json.dumps({"format": "flare-deployment/1", "address": RECORD.address}), "lacks"),
    ],
)
def test_bad_deployment_records_are_named(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "deployment.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(DeploymentFileError, match=message):
        read_deployment(path)


def test_a_record_that_cannot_be_written_is_a_deployment_file_error(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    RECORD.write(path)
    before = path.read_bytes()
    (tmp_path / "deployment.json.tmp").mkdir()  # the temporary file cannot be created

    with pytest.raises(DeploymentFileError, match="cannot write the deployment record") as caught:
        RECORD.write(path)

    assert str(path) in caught.value.message
    assert caught.value.hint is not None
    assert path.read_bytes() == before  # the old record is untouched
