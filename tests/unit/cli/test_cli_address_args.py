"""Addresses on the command line are checked before anything is contacted.

A typo in `--address` (or a node, owner or duration argument) is a usage error, exit 2, with a
message naming the option; the chain is never asked. Each CLI case points `--rpc` at a port
nobody listens on and watches `connect` besides: had the command gone out first, it would
have failed with exit 3 and the watch would have seen the call.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import flare.chain.connect
from flare.cli.app import app
from flare.cli.hexarg import parse_address
from flare.protocol.errors import ConfigError

# EIP-55's own test vectors: correctly checksummed mixed-case addresses.
EIP55 = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]
GOOD = "0x" + "11" * 20
# A well-formed CID, for the options that come before the one under test.
CID = "bafkreig6bn4axiikwk5u3qmdug3flvsvxrdaoqaolac7u6mjmtszbhqery"


def _flip_one_letter(address: str) -> str:
    """`address` with the case of its first letter swapped: what a mistyped character does to
    the checksum, without changing the 20 bytes."""
    body = address[2:]
    at = next(i for i, char in enumerate(body) if char.isalpha())
    return "0x" + body[:at] + body[at].swapcase() + body[at + 1 :]


# ------------------------------------------------------------------ parse_address


@pytest.mark.parametrize("address", EIP55)
def test_checksummed_addresses_read_back_unchanged(address: str) -> None:
    assert parse_address(address, what="--address") == address


@pytest.mark.parametrize("address", EIP55)
def test_single_case_spellings_carry_no_checksum_and_come_back_checksummed(address: str) -> None:
    body = address[2:]

    assert parse_address("0x" + body.lower(), what="--address") == address
    assert parse_address("0X" + body.upper(), what="--address") == address
    assert parse_address(f"  {body.lower()}\n", what="--address") == address


@given(raw=st.binary(min_size=20, max_size=20))
def test_any_twenty_bytes_round_trip(raw: bytes) -> None:
    checksummed = parse_address("0x" + raw.hex(), what="--address")

    assert bytes.fromhex(checksummed[2:]) == raw
    assert parse_address(checksummed, what="--address") == checksummed


@pytest.mark.parametrize("address", EIP55)
def test_a_mixed_case_address_whose_checksum_fails_is_refused(address: str) -> None:
    typo = _flip_one_letter(address)

    with pytest.raises(ConfigError, match=f"--address {typo} fails its EIP-55 checksum") as caught:
        parse_address(typo, what="--address")

    assert caught.value.exit_code == 2
    assert caught.value.hint is not None
    assert address not in caught.value.hint  # no "did you mean": that would be the typo's own


@pytest.mark.parametrize(
    "text",
    ["0x12", "", "0x", GOOD + "00", GOOD[:-1], "0x" + "zz" * 20, "0x" + "11" * 19 + "1\u0661"],
)
def test_what_is_not_twenty_bytes_of_hex_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=r"NODE .* is not an address") as caught:
        parse_address(text, what="NODE")

    assert caught.value.hint == "give 0x followed by 40 hex digits"


# ------------------------------------------------------------------ commands


@pytest.fixture
def dead_rpc() -> str:
    """An http URL on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL `connect` is called with during the test (the real call still happens)."""
    seen: list[str] = []
    real: Callable[..., Any] = flare.chain.connect.connect

    def watched(url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(flare.chain.connect, "connect", watched)
    return seen


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLARE_CONFIG", "FLARE_RPC", "FLARE_PASSWORD", "FLARE_STORE", "FLARE_CONTRACT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLARE_HOME", str(tmp_path / "home"))


def _cases(rpc: str, tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Command line, and what the error names, for each command with an address to check."""
    chain = ["--rpc", rpc, "--dev-account", "0"]
    typo = _flip_one_letter(EIP55[0])
    return {
        "info short": (["contract", "info", "--rpc", rpc, "--address", "0x12"], "--address '0x12'"),
        "info checksum": (
            ["contract", "info", "--rpc", rpc, "--address", typo],
            f"--address {typo}",
        ),
        "start": (["contract", "start", *chain, "--address", "0xnothex"], "--address '0xnothex'"),
        "allow": (["contract", "allow", *chain, "--address", GOOD, "0x1234"], "NODE '0x1234'"),
        "disallow": (["contract", "disallow", *chain, "--address", GOOD, typo], f"NODE {typo}"),
        "transfer": (
            ["contract", "transfer-ownership", *chain, "--address", GOOD, "bob"],
            "NEW_OWNER 'bob'",
        ),
        "set-config": (
            ["contract", "set-config", *chain, "--address", GOOD, "--train-window", "soon"],
            "--train-window 'soon'",
        ),
        "deploy owner": (
            [
                "contract",
                "deploy",
                *chain,
                "--model-spec-hash",
                "0x" + "00" * 32,
                "--genesis-model",
                CID,
                "--policy",
                str(tmp / "policy.json"),
                "--out",
                str(tmp / "deployment.json"),
                "--owner",
                "0xabc",
            ],
            "--owner '0xabc'",
        ),
    }


@pytest.mark.parametrize("case", sorted(_cases("http://unused", Path("/unused"))))
def test_a_bad_argument_is_a_usage_error_before_the_chain_is_contacted(
    case: str, dead_rpc: str, connects: list[str], tmp_path: Path
) -> None:
    args, named = _cases(dead_rpc, tmp_path)[case]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2, result.output
    assert f"Error: {named}" in result.stderr
    assert "cannot reach" not in result.stderr
    assert connects == []


def test_the_json_error_document_says_config_error(dead_rpc: str, connects: list[str]) -> None:
    result = CliRunner().invoke(
        app, ["contract", "info", "--json", "--rpc", dead_rpc, "--address", "0x12"]
    )

    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ConfigError"
    assert error["message"].startswith("--address '0x12' is not an address")
    assert connects == []


def test_a_good_address_goes_on_to_the_chain(dead_rpc: str, connects: list[str]) -> None:
    # The watch sees a call when there is one, and a dead chain is exit 3, not a usage error.
    result = CliRunner().invoke(app, ["contract", "info", "--rpc", dead_rpc, "--address", GOOD])

    assert result.exit_code == 3
    assert connects == [dead_rpc]
