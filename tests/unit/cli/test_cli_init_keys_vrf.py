"""`flare-node init`, `keys` and `vrf` through the real command tree (CliRunner on the app)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.cli.password import PasswordError
from flare.cli.vrf import InvalidProofError
from flare.node.keys import InsecureKeyFileError, KeyFileExistsError, WrongPasswordError
from flare.protocol import sortition, vrf
from flare.protocol.errors import ConfigError, FlareError

PASSWORD = "correct horse battery staple"
_FLARE = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "bls" / "flare-vectors.json").read_text()
)
_VECTOR = _FLARE["proofs"][0]
GOLDEN = {  # a golden VRF proof: key, alpha, proof, output
    "pk": "0x" + _FLARE["keys"][int(_VECTOR["key"])]["public_key"],
    "alpha": "0x" + _VECTOR["alpha"],
    "pi": "0x" + _VECTOR["proof"],
    "output": "0x" + _VECTOR["output"],
}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("FLARE_PASSWORD", raising=False)
    monkeypatch.delenv("FLARE_HOME", raising=False)
    return CliRunner()


def run(runner: CliRunner, *args: str, password: str | None = PASSWORD, **kw: str) -> Result:
    env = {"FLARE_PASSWORD": password} if password is not None else {}
    return runner.invoke(app, list(args), env=env, **kw)


def assert_fails(result: Result, error: type[FlareError], text: str) -> None:
    """The root group's contract: `Error: message`, then the error's own exit code."""
    assert result.exit_code == error.exit_code, result.output
    assert "Error" in result.output
    assert text in result.output


def init(runner: CliRunner, home: Path, *extra: str) -> dict[str, str]:
    result = run(runner, "init", "--home", str(home), "--kdf", "light", "--json", *extra)
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return created


def test_init_creates_a_private_home_and_reports_the_identity(
    runner: CliRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"

    created = init(runner, home)

    assert Path(created["home"]) == home
    assert home.stat().st_mode & 0o777 == 0o700
    for name in ("ethereum_keystore", "bls_key", "peer_key"):
        assert Path(created[name]).stat().st_mode & 0o777 == 0o600
    assert created["address"].startswith("0x")
    assert len(bytes.fromhex(created["bls_public_key"].removeprefix("0x"))) == 256
    assert len(bytes.fromhex(created["peer_public_key"].removeprefix("0x"))) == 32
    assert created["bls_key_hash"] == "0x" + keccak(hexstr=created["bls_public_key"]).hex()


def test_init_text_output_ends_with_a_summary(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, "init", "--home", str(tmp_path / "h"), "--kdf", "light")

    assert result.exit_code == 0, result.output
    assert "Address" in result.stdout
    assert "BLS public key   0x" in result.stdout
    assert "BLS key file" in result.stdout
    assert "Back up" in result.stdout


def test_init_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = init(runner, home)
    before = Path(first["ethereum_keystore"]).read_bytes()

    result = run(runner, "init", "--home", str(home), "--kdf", "light")

    assert_fails(result, KeyFileExistsError, "already holds keys")
    assert Path(first["ethereum_keystore"]).read_bytes() == before


def test_init_force_replaces_and_lists_backups(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = init(runner, home)

    second = init(runner, home, "--force")

    assert second["address"] != first["address"]
    assert len(second["backups"]) == 3
    assert all(Path(b).exists() for b in second["backups"])


def test_init_reads_the_password_from_a_private_file(runner: CliRunner, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    home = tmp_path / "home"

    created = init(runner, home, "--password-file", str(secret))
    result = run(runner, "keys", "check", "--home", str(home), password=None, input=PASSWORD)

    assert result.exit_code == 0, result.output
    assert created["address"] in result.stdout


def test_init_refuses_a_group_readable_password_file(runner: CliRunner, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    secret.chmod(0o644)

    result = run(
        runner,
        "init",
        "--home",
        str(tmp_path / "h"),
        "--password-file",
        str(secret),
        password=None,
    )

    assert_fails(result, InsecureKeyFileError, "chmod 600")
    assert not (tmp_path / "h").exists()


def test_init_prompts_twice_when_no_password_is_configured(
    runner: CliRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"

    result = run(
        runner,
        "init",
        "--home",
        str(home),
        "--kdf",
        "light",
        "--json",
        password=None,
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["home"] == str(home)  # prompts go to stderr
    assert run(runner, "keys", "check", "--home", str(home)).exit_code == 0


def test_init_without_any_password_source_says_where_to_put_one(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = run(runner, "init", "--home", str(tmp_path / "h"), password=None, input="")

    assert_fails(result, PasswordError, "no password given")


def test_init_refuses_a_short_new_password(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, "init", "--home", str(tmp_path / "h"), "--kdf", "light", password="short")

    assert_fails(result, PasswordError, "at least 8")
    assert not (tmp_path / "h" / "keys").exists()


def test_keys_show_prints_only_public_values(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = init(runner, home)

    shown = run(runner, "keys", "show", "--home", str(home), "--json", password=None)
    text = run(runner, "keys", "show", "--home", str(home), password=None)

    assert shown.exit_code == 0, shown.output
    public = ("address", "bls_public_key", "bls_key_hash", "peer_public_key")
    assert json.loads(shown.stdout) == {name: created[name] for name in public}
    assert text.stdout.splitlines() == [
        f"Address          {created['address']}",
        f"BLS key hash     {created['bls_key_hash']}  (what the contract stores)",
        f"BLS public key   {created['bls_public_key']}",
        f"Peer key         {created['peer_public_key']}  (ed25519)",
    ]


def test_keys_show_uses_flare_home(runner: CliRunner, tmp_path: Path) -> None:
    created = init(runner, tmp_path / "home")

    result = runner.invoke(
        app, ["keys", "show", "--json"], env={"FLARE_HOME": str(tmp_path / "home")}
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["address"] == created["address"]


def test_keys_show_without_keys_points_to_init(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, "keys", "show", "--home", str(tmp_path / "empty"))

    assert_fails(result, ConfigError, "flare-node init")


def test_keys_check_reports_a_wrong_password(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    init(runner, home)

    result = run(runner, "keys", "check", "--home", str(home), password="not the password")

    assert_fails(result, WrongPasswordError, "wrong password")


def test_vrf_verify_prints_the_output_of_a_valid_proof(runner: CliRunner) -> None:
    result = run(
        runner,
        "vrf",
        "verify",
        "--public-key",
        GOLDEN["pk"],
        "--alpha",
        GOLDEN["alpha"],
        "--proof",
        GOLDEN["pi"],
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == GOLDEN["output"]


def test_vrf_verify_rejects_a_tampered_proof_with_the_reason(runner: CliRunner) -> None:
    tampered = GOLDEN["pi"][:-2] + f"{int(GOLDEN['pi'][-2:], 16) ^ 1:02x}"

    text = run(
        runner,
        "vrf",
        "verify",
        "--public-key",
        GOLDEN["pk"],
        "--alpha",
        GOLDEN["alpha"],
        "--proof",
        tampered,
    )
    as_json = run(
        runner,
        "vrf",
        "verify",
        "--public-key",
        GOLDEN["pk"],
        "--alpha",
        GOLDEN["alpha"],
        "--proof",
        tampered,
        "--json",
    )

    assert_fails(text, InvalidProofError, "invalid VRF proof")
    assert as_json.exit_code == InvalidProofError.exit_code
    assert json.loads(as_json.stdout)["valid"] is False
    assert json.loads(as_json.stdout)["rejection"] in ("mismatch", "bad-proof")


def test_vrf_verify_checks_a_claimed_output(runner: CliRunner) -> None:
    base = ["vrf", "verify", "--public-key", GOLDEN["pk"], "--alpha", GOLDEN["alpha"]]
    good, bad = GOLDEN["output"], "0x" + "00" * 32

    accepted = run(runner, *base, "--proof", GOLDEN["pi"], "--output", good)
    refused = run(runner, *base, "--proof", GOLDEN["pi"], "--output", bad, "--json")

    assert accepted.exit_code == 0, accepted.output
    assert refused.exit_code == InvalidProofError.exit_code
    assert json.loads(refused.stdout)["rejection"] == "wrong-output"


@pytest.mark.parametrize(
    "args",
    [
        ["--alpha", "00", "--seed", "00" * 32, "--round", "1"],
        ["--seed", "00" * 32],
        [],
        ["--alpha", "not-hex"],
    ],
)
def test_vrf_verify_refuses_bad_arguments(runner: CliRunner, args: list[str]) -> None:
    result = run(
        runner, "vrf", "verify", "--public-key", GOLDEN["pk"], "--proof", GOLDEN["pi"], *args
    )

    assert_fails(result, ConfigError, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "00" * 31, "--round", "1"], "--seed '" + "00" * 10),
        (["--alpha", GOLDEN["alpha"], "--output", "0x" + "00" * 31], "not 32-byte hex"),
        (["--alpha", "0x12 34"], "--alpha '0x12 34' is not hex"),
    ],
)
def test_vrf_verify_names_the_hex_option_that_is_wrong(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = run(
        runner, "vrf", "verify", "--public-key", GOLDEN["pk"], "--proof", GOLDEN["pi"], *args
    )

    assert_fails(result, ConfigError, message)


def test_vrf_prove_then_verify_by_seed_and_round(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = init(runner, home)
    seed = "ab" * 32

    proved = run(
        runner, "vrf", "prove", "--seed", seed, "--round", "42", "--home", str(home), "--json"
    )
    claim = json.loads(proved.stdout)
    checked = run(
        runner,
        "vrf",
        "verify",
        "--public-key",
        claim["public_key"],
        "--seed",
        seed,
        "--round",
        "42",
        "--proof",
        claim["proof"],
        "--json",
    )

    assert proved.exit_code == 0, proved.output
    assert claim["public_key"] == created["bls_public_key"]
    assert claim["alpha"] == "0x" + sortition.alpha_for(bytes.fromhex(seed), 42).hex()
    assert json.loads(checked.stdout) == {
        "valid": True,
        "alpha": claim["alpha"],
        "output": claim["output"],
        "rank": claim["rank"],
    }
    assert claim["output"] == "0x" + keccak(hexstr=claim["proof"]).hex()
    assert len(bytes.fromhex(claim["proof"].removeprefix("0x"))) == vrf.PROOF_BYTES


def test_vrf_threshold_reports_the_claim_rule(runner: CliRunner) -> None:
    result = run(runner, "vrf", "threshold", "-k", "16", "--eligible", "1000", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert int(report["threshold"], 16) == sortition.claim_threshold(16, 1000)
    assert report["expected_claims"] == pytest.approx(1000 * sortition.claim_fraction(16, 1000))


def test_command_modules_import_no_heavy_libraries() -> None:
    # `flare-node --help` must stay fast: keystores, web3 and torch load inside commands only.
    code = (
        "import sys, flare.cli.init, flare.cli.keys, flare.cli.vrf, flare.cli.password;"
        "print(sorted(m for m in ('eth_keyfile', 'eth_account', 'web3', 'torch', 'lerobot')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert loaded == "[]"


def legacy(home: Path) -> None:
    """Turn a fresh home into one an earlier flare-node made (no BLS key, ed25519 as vrf.json)."""
    (home / "keys" / "bls.json").unlink()
    (home / "keys" / "peer.json").rename(home / "keys" / "vrf.json")


def test_keys_add_bls_upgrades_an_earlier_home(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = init(runner, home)
    legacy(home)
    before = run(runner, "keys", "show", "--home", str(home), password=None)

    added = run(runner, "keys", "add-bls", "--home", str(home), "--kdf", "light", "--json")
    again = run(runner, "keys", "add-bls", "--home", str(home), "--kdf", "light")
    checked = run(runner, "keys", "check", "--home", str(home), "--json")

    assert_fails(before, ConfigError, "keys add-bls")
    assert added.exit_code == 0, added.output
    report = json.loads(added.stdout)
    assert report["address"] == created["address"]
    assert report["peer_public_key"] == created["peer_public_key"]  # the peer key is kept
    assert report["bls_public_key"] != created["bls_public_key"]  # a fresh BLS key
    assert json.loads(checked.stdout)["bls_public_key"] == report["bls_public_key"]
    assert_fails(again, KeyFileExistsError, "already exists")


def test_keys_add_bls_with_a_wrong_password_changes_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    init(runner, home)
    legacy(home)

    result = run(runner, "keys", "add-bls", "--home", str(home), password="not the password")

    assert_fails(result, WrongPasswordError, "wrong password")
    assert sorted(p.name for p in (home / "keys").iterdir()) == ["ethereum.json", "vrf.json"]
