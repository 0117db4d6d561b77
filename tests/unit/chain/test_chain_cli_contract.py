"""`flare-node contract` through CliRunner on in-process chains.

An eth-tester:// chain lives as long as the process, so one test can deploy, inspect and
administer a contract across separate invocations on the same named chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from flare_testing import POLICY, POLICY_CID, register
from typer.testing import CliRunner, Result

from flare.chain.artifact import ArtifactMissingError
from flare.chain.connect import RpcUnavailableError, RpcUrlError, connect
from flare.chain.deploy import DeploymentFileError
from flare.chain.devchain import advance_time, dev_account_key
from flare.chain.ledger import NoContractError, Web3Ledger, open_ledger
from flare.cli.app import app
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.aggregate import Rule
from flare.protocol.cid import UnsupportedCidError, encode_cid
from flare.protocol.errors import ConfigError, FlareError
from flare.protocol.events import ConfigSet, NodeRegistered
from flare.protocol.ledger import OwnableUnauthorizedAccountError, TxReceipt
from flare.protocol.policy import PolicyError, ReviewPolicy
from flare.protocol.rounds import RoundConfig

GENESIS = encode_cid(bytes.fromhex("01551220") + hashlib.sha256(b"genesis").digest())
SPEC = "0x" + "5e" * 32


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("FLARE_PASSWORD", raising=False)
    monkeypatch.delenv("FLARE_RPC", raising=False)
    monkeypatch.delenv("FLARE_CONTRACT", raising=False)
    return CliRunner()


@pytest.fixture
def rpc() -> str:
    """A fresh in-process chain for this test."""
    return f"eth-tester://cli-{uuid.uuid4().hex[:10]}"


def run(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["contract", *args], env=env)


def policy_flags(tmp_path: Path, policy: ReviewPolicy = POLICY) -> list[str]:
    """--policy (a policy file written here) and --data-dir (the store it is pinned in)."""
    path = tmp_path / f"policy-{policy.sample_cap}.json"
    path.write_bytes(policy.to_bytes())
    return ["--policy", str(path), "--data-dir", str(tmp_path / "store")]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def assert_fails(result: Result, error: type[FlareError], text: str) -> None:
    """The root group's contract: `Error: message`, then the error's own exit code."""
    assert result.exit_code == error.exit_code, (result.output, result.exception)
    assert "Error" in result.output
    assert text in result.output


def deploy(runner: CliRunner, rpc: str, out: Path, *extra: str) -> dict[str, object]:
    result = ok(
        run(
            runner,
            "deploy",
            "--rpc",
            rpc,
            "--dev-account",
            "0",
            "--model-spec-hash",
            SPEC,
            "--genesis-model",
            GENESIS,
            "--out",
            str(out),
            "--json",
            *policy_flags(out.parent),
            *extra,
        )
    )
    return dict(json.loads(result.stdout))


def info(runner: CliRunner, rpc: str, record: Path) -> dict[str, object]:
    result = ok(run(runner, "info", "--rpc", rpc, "--deployment", str(record), "--json"))
    return dict(json.loads(result.stdout))


def test_deploy_info_allow_across_invocations(runner: CliRunner, rpc: str, tmp_path: Path) -> None:
    record = tmp_path / "deployment.json"
    deployed = deploy(runner, rpc, record, "--committee-size", "3", "--train-window", "2h")
    node = Account.from_key(dev_account_key(connect(rpc).eth.chain_id, 1)).address

    on_disk = json.loads(record.read_text())
    assert on_disk["address"] == deployed["address"]
    assert on_disk["chain_id"] == 131277322940537
    assert {"block", "artifact_sha256", "tx_hash"} <= set(on_disk)
    ok(run(runner, "allow", node, "--rpc", rpc, "--deployment", str(record), "--dev-account", "0"))
    ledger = open_ledger(
        connect(rpc),
        str(deployed["address"]),
        private_key=dev_account_key(connect(rpc).eth.chain_id, 1),
    )
    registered = register(ledger)[1].events[0]
    assert isinstance(registered, NodeRegistered)
    shown = info(runner, rpc, record)

    assert shown["address"] == deployed["address"]
    assert shown["config"]["committee_size"] == 3  # type: ignore[index]
    assert shown["config"]["train_window"] == 7200  # type: ignore[index]
    assert shown["allowlist"] is True
    assert shown["artifact_match"] is True
    assert shown["genesis_model"] == GENESIS
    assert shown["current_round"] == 0
    assert shown["round"] is None
    assert shown["version"] == 2
    assert shown["config"]["review_policy"] == encode_cid(POLICY_CID)  # type: ignore[index]
    assert shown["config"]["max_samples"] == POLICY.sample_cap  # type: ignore[index]
    assert shown["nodes"] == [
        {
            "address": node,
            "allowed": True,
            "eligible_from": 1,
            "bls_key_hash": "0x" + keccak(registered.bls_key).hex(),
            "peer_key": "0x" + registered.peer_key.hex(),
        }
    ]
    assert shown["warnings"] == [
        "1 registered node(s), but rounds opened now need 2 approvals: they cannot finalize "
        "until more nodes register"
    ]


def test_text_output_ends_with_a_summary(runner: CliRunner, rpc: str, tmp_path: Path) -> None:
    record = tmp_path / "d.json"
    result = ok(
        run(
            runner,
            "deploy",
            "--rpc",
            rpc,
            "--dev-account",
            "0",
            "--model-spec-hash",
            SPEC,
            "--genesis-model",
            GENESIS,
            "--out",
            str(record),
            "--start",
            "--open",
            *policy_flags(tmp_path),
        )
    )

    assert "Deployed FlareRounds at 0x" in result.stdout
    assert "round 1 opened" in result.stdout
    assert f"review policy    {encode_cid(POLICY_CID)}" in result.stdout
    assert f"Wrote {record}" in result.stdout
    assert "lives only inside this process" in result.stderr
    assert "open registration" not in result.stderr  # seats are verified on-chain now
    shown = ok(run(runner, "info", "--rpc", rpc, "--deployment", str(record)))
    assert "(interface version 2)" in shown.stdout
    assert "Round 1: training (training ends in 1h)" in shown.stdout
    assert "quorum 60.00% = 5 approvals" in shown.stdout
    assert "Warning: round 1 has 0 eligible node(s) but needs 5 approvals" in shown.stderr


def test_admin_commands_change_the_contract(runner: CliRunner, rpc: str, tmp_path: Path) -> None:
    record = tmp_path / "d.json"
    deploy(runner, rpc, record, "--train-window", "60", "--min-updates", "1")
    heir = Account.from_key(dev_account_key(connect(rpc).eth.chain_id, 2)).address
    owner = ["--rpc", rpc, "--deployment", str(record), "--dev-account", "0", "--json"]

    ok(run(runner, "start", *owner))
    changed = json.loads(
        ok(
            run(runner, "set-config", "--committee-size", "5", "--review-window", "2h", *owner)
        ).stdout
    )
    ok(run(runner, "allowlist", "off", *owner))
    ok(run(runner, "pause", *owner))
    paused = info(runner, rpc, record)
    ok(run(runner, "unpause", *owner))
    ok(run(runner, "transfer-ownership", heir, *owner))
    ok(
        run(
            runner,
            "accept-ownership",
            "--rpc",
            rpc,
            "--deployment",
            str(record),
            "--dev-account",
            "2",
        )
    )
    advance_time(connect(rpc), 61)
    closed = json.loads(ok(run(runner, "close-round", "1", *owner[:-1], "--json")).stdout)
    shown = info(runner, rpc, record)

    assert changed["effective_from"] == 2
    assert changed["config"]["committee_size"] == 5
    assert paused["paused"] is True
    assert shown["paused"] is False
    assert shown["allowlist"] is False
    assert shown["owner"] == heir
    assert closed["round"] == 1
    assert closed["gas_used"] > 0
    assert shown["current_round"] == 2
    assert shown["config"]["review_window"] == 7200  # type: ignore[index]
    assert shown["round"]["committee_size"] == 5  # type: ignore[index]


def test_a_keystore_signs_deployments(runner: CliRunner, rpc: str, tmp_path: Path) -> None:
    from flare.node.keys import encrypt_keystore

    key = dev_account_key(connect(rpc).eth.chain_id, 3)
    keystore = tmp_path / "deployer.json"
    keystore.write_bytes(encrypt_keystore(key, "a long passphrase", scrypt_n=2**4))
    os.chmod(keystore, 0o600)

    result = ok(
        run(
            runner,
            "deploy",
            "--rpc",
            rpc,
            "--keystore",
            str(keystore),
            "--model-spec-hash",
            SPEC,
            "--genesis-model",
            GENESIS,
            "--out",
            str(tmp_path / "d.json"),
            "--json",
            *policy_flags(tmp_path),
            env={"FLARE_PASSWORD": "a long passphrase"},
        )
    )

    assert json.loads(result.stdout)["deployer"] == Account.from_key(key).address


def test_a_dead_rpc_url_is_named(runner: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    result = run(runner, "info", "--rpc", url, "--address", "0x" + "11" * 20)

    assert_fails(result, RpcUnavailableError, f"cannot reach the chain at {url}")


def test_a_wrong_rpc_scheme_is_a_config_error(runner: CliRunner) -> None:
    assert_fails(
        run(runner, "info", "--rpc", "localhost:8545", "--address", "0x" + "11" * 20),
        RpcUrlError,
        "unsupported RPC URL",
    )


def test_an_address_without_code_is_refused(runner: CliRunner, rpc: str) -> None:
    account = Account.from_key(dev_account_key(connect(rpc).eth.chain_id, 4)).address

    assert_fails(
        run(runner, "info", "--rpc", rpc, "--address", account),
        NoContractError,
        f"no contract at {account}",
    )


def test_the_contract_must_be_named_once(runner: CliRunner, rpc: str) -> None:
    assert_fails(run(runner, "info", "--rpc", rpc), ConfigError, "--deployment FILE or --address")


def test_a_deployment_from_another_chain_is_refused(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    record = tmp_path / "d.json"
    deploy(runner, rpc, record)
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "chain_id": 31337}))

    assert_fails(
        run(runner, "info", "--rpc", rpc, "--deployment", str(record)),
        ConfigError,
        "is a deployment on chain 31337",
    )


def test_a_missing_artifact_is_named(
    runner: CliRunner, rpc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flare.chain.artifact.default_artifact_path", lambda: tmp_path / "no.json")

    result = run(
        runner,
        "deploy",
        "--rpc",
        rpc,
        "--dev-account",
        "0",
        "--model-spec-hash",
        SPEC,
        "--genesis-model",
        GENESIS,
        "--out",
        str(tmp_path / "d.json"),
        *policy_flags(tmp_path),
    )

    assert_fails(result, ArtifactMissingError, "no contract artifact")
    assert not (tmp_path / "d.json").exists()


def test_a_reverted_call_names_the_contract_error(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    record = tmp_path / "d.json"
    deploy(runner, rpc, record)

    result = run(runner, "start", "--rpc", rpc, "--deployment", str(record), "--dev-account", "1")

    assert_fails(result, OwnableUnauthorizedAccountError, "is not the contract owner")
    assert "OwnableUnauthorizedAccount" in result.output


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--model-spec-hash", "0x1234"], "must be 32 bytes of hex"),
        (["--genesis-model", "not-a-cid"], "is not CID text"),
        (["--train-window", "soon"], "is not a duration"),
        (["--committee-size", "65"], "committee size 65 is not in 1..64"),
    ],
)
def test_bad_deploy_parameters_fail_before_sending(
    runner: CliRunner, rpc: str, tmp_path: Path, args: list[str], text: str
) -> None:
    defaults = {"--model-spec-hash": SPEC, "--genesis-model": GENESIS}
    defaults.pop(args[0], None)
    flat = [item for pair in defaults.items() for item in pair]

    result = run(
        runner,
        "deploy",
        "--rpc",
        rpc,
        "--dev-account",
        "0",
        "--out",
        str(tmp_path / "d.json"),
        *policy_flags(tmp_path),
        *flat,
        *args,
    )

    assert_fails(result, ConfigError, text)


def test_deploy_keeps_an_existing_record(runner: CliRunner, rpc: str, tmp_path: Path) -> None:
    record = tmp_path / "d.json"
    record.write_text("{}")

    result = run(
        runner,
        "deploy",
        "--rpc",
        rpc,
        "--dev-account",
        "0",
        "--model-spec-hash",
        SPEC,
        "--genesis-model",
        GENESIS,
        "--out",
        str(record),
        *policy_flags(tmp_path),
    )

    assert_fails(result, ConfigError, "already exists")
    assert record.read_text() == "{}"


def test_transactions_need_a_key(runner: CliRunner, rpc: str, tmp_path: Path) -> None:
    record = tmp_path / "d.json"
    deploy(runner, rpc, record)

    assert_fails(
        run(runner, "pause", "--rpc", rpc, "--deployment", str(record)), ConfigError, "needs a key"
    )


def test_compile_check_confirms_the_committed_artifact(runner: CliRunner) -> None:
    """The committed artifact is exactly what the sources compile to (one real compile)."""
    result = run(runner, "compile", "--check", "--json")

    assert result.exit_code == 0, (
        f"{result.output}\ncontract sources changed: run `flare-node contract compile` and "
        "commit src/flare/chain/artifacts/FlareRounds.json"
    )
    assert json.loads(result.stdout)["changed"] is False


def deploy_args(rpc: str, tmp_path: Path, out: Path, *extra: str) -> list[str]:
    flags = policy_flags(tmp_path)
    return [
        "deploy",
        "--rpc",
        rpc,
        "--dev-account",
        "0",
        "--model-spec-hash",
        SPEC,
        "--genesis-model",
        GENESIS,
        "--out",
        str(out),
        *flags,
        *extra,
    ]


def sent_transactions(rpc: str) -> int:
    """Transactions dev account 0 (the deployer in these tests) has sent on `rpc`."""
    w3 = connect(rpc)
    return int(
        w3.eth.get_transaction_count(Account.from_key(dev_account_key(w3.eth.chain_id, 0)).address)
    )


def test_a_genesis_cid_nodes_cannot_read_is_refused_before_deploying(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    # Well-formed CIDv1, but dag-cbor (0x71): nodes fetch only raw and dag-pb blocks.
    dag_cbor = encode_cid(bytes.fromhex("01711220") + hashlib.sha256(b"genesis").digest())
    record = tmp_path / "d.json"
    args = deploy_args(rpc, tmp_path, record)
    args[args.index(GENESIS)] = dag_cbor

    result = run(runner, *args)

    assert_fails(result, UnsupportedCidError, "codec 0x71 is not supported")
    assert sent_transactions(rpc) == 0
    assert not record.exists()


def test_a_record_directory_that_cannot_exist_fails_before_deploying(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    result = run(runner, *deploy_args(rpc, tmp_path, blocker / "d.json"))

    assert_fails(result, DeploymentFileError, "for the deployment record")
    assert sent_transactions(rpc) == 0


def test_a_record_that_cannot_be_written_is_printed_with_the_address(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    record = tmp_path / "d.json"
    (tmp_path / "d.json.tmp").mkdir()  # the directory is writable, the record file is not

    result = run(runner, *deploy_args(rpc, tmp_path, record))

    assert_fails(result, DeploymentFileError, "cannot write the deployment record")
    printed = json.loads(result.stdout)
    assert f"FlareRounds was deployed at {printed['address']}" in result.stderr
    assert printed["format"] == "flare-deployment/1"
    assert connect(rpc).eth.get_code(printed["address"]) != b""  # it really is deployed
    assert not record.exists()


def test_a_failed_start_keeps_the_record_and_names_the_address(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    # The deployer is not the owner, so its `start` reverts after the deployment succeeded.
    owner = Account.from_key(dev_account_key(connect(rpc).eth.chain_id, 1)).address
    record = tmp_path / "d.json"

    result = run(runner, *deploy_args(rpc, tmp_path, record, "--owner", owner, "--start"))

    assert_fails(result, OwnableUnauthorizedAccountError, "is not the contract owner")
    address = json.loads(record.read_text())["address"]
    assert f"FlareRounds is deployed at {address}" in result.stderr
    assert f"contract start --deployment {record}" in result.stderr


def test_set_config_reports_the_round_the_contract_named(
    runner: CliRunner, rpc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "d.json"
    deploy(runner, rpc, record)
    original = Web3Ledger.set_config

    def set_config_then_a_round_opens(self: Web3Ledger, config: RoundConfig) -> TxReceipt:
        receipt = original(self, config)
        self.start()  # round 1 opens between the transaction and any later read
        return receipt

    monkeypatch.setattr(Web3Ledger, "set_config", set_config_then_a_round_opens)
    owner = ["--rpc", rpc, "--deployment", str(record), "--dev-account", "0", "--json"]

    changed = json.loads(ok(run(runner, "set-config", "--min-updates", "2", *owner)).stdout)

    ledger = open_ledger(connect(rpc), str(json.loads(record.read_text())["address"]))
    logged = [e for e in ledger.events(0) if isinstance(e, ConfigSet)][-1]
    assert logged.config.min_updates == 2
    assert changed["effective_from"] == logged.effective_from == 1
    assert ledger.current_round() == 1


def test_contract_commands_import_no_heavy_libraries() -> None:
    # The commands import DEFAULT_RPC from flare.chain.connect: that must not load web3.
    code = (
        "import sys, flare.chain.connect, flare.cli.contract;"
        "print(sorted(m for m in ('web3', 'eth_account', 'eth_tester', 'requests', 'torch')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == "[]"


def test_deploy_pins_the_policy_and_commits_its_cid(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    record = tmp_path / "d.json"

    deployed = deploy(runner, rpc, record)

    ledger = open_ledger(connect(rpc), str(deployed["address"]))
    assert ledger.config().review_policy == POLICY_CID
    assert ledger.config().max_samples == POLICY.sample_cap
    with EmbeddedStore(tmp_path / "store") as store:
        assert store.get(encode_cid(POLICY_CID)) == POLICY.to_bytes()
        assert encode_cid(POLICY_CID) in store.pins()


def test_a_policy_that_does_not_read_is_refused_before_sending(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    args = deploy_args(rpc, tmp_path, tmp_path / "d.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(POLICY.to_bytes().replace(b'"fedavg"', b'"krum"'))
    args[args.index("--policy") + 1] = str(bad)

    result = run(runner, *args)

    assert_fails(result, PolicyError, f"{bad}: aggregation rule 'krum'")
    assert sent_transactions(rpc) == 0


def test_set_config_with_a_new_policy_applies_from_the_next_round(
    runner: CliRunner, rpc: str, tmp_path: Path
) -> None:
    record = tmp_path / "d.json"
    deploy(runner, rpc, record, "--start")
    median = ReviewPolicy(rule=Rule("median"), norm_bound=10.0, sample_cap=500)
    owner = ["--rpc", rpc, "--deployment", str(record), "--dev-account", "0", "--json"]

    changed = json.loads(
        ok(run(runner, "set-config", *policy_flags(tmp_path, median), *owner)).stdout
    )

    shown = info(runner, rpc, record)
    assert changed["effective_from"] == 2
    assert changed["config"]["max_samples"] == 500
    assert shown["config"]["review_policy"] == changed["config"]["review_policy"]  # type: ignore[index]
    assert shown["round"]["review_policy"] == encode_cid(POLICY_CID)  # type: ignore[index]
    with EmbeddedStore(tmp_path / "store") as store:
        assert store.get(changed["config"]["review_policy"]) == median.to_bytes()


def test_policy_new_and_show_agree_on_the_cid(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "policy.json"

    made = runner.invoke(
        app,
        ["policy", "new", "--out", str(path), "--rule", "trimmed-mean", "--trim", "2", "--json"],
    )
    shown = runner.invoke(app, ["policy", "show", str(path), "--json"])
    again = runner.invoke(app, ["policy", "new", "--out", str(path)])

    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["cid"] == json.loads(shown.stdout)["cid"]
    assert json.loads(shown.stdout)["aggregation"] == {"rule": "trimmed-mean", "trim": 2}
    assert_fails(again, ConfigError, "already exists")


def test_policy_show_fetches_and_checks_a_cid_from_the_store(
    runner: CliRunner, tmp_path: Path
) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        good = store.put(POLICY.to_bytes())
        bad = store.put(b'{"format":"flare-policy/9"}')

    shown = runner.invoke(app, ["policy", "show", good, "--data-dir", str(tmp_path / "store")])
    refused = runner.invoke(app, ["policy", "show", bad, "--data-dir", str(tmp_path / "store")])

    assert shown.exit_code == 0, shown.output
    assert good in shown.stdout
    assert "fedavg, norm bound 1000" in shown.stdout
    assert_fails(refused, PolicyError, "flare-policy/9")
