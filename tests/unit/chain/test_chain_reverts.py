"""Revert decoding: raw bytes and both backends' exception shapes give the same error."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils.abi import collapse_if_tuple, function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st
from web3.exceptions import ContractCustomError, ContractLogicError

from flare.chain.artifact import load_artifact
from flare.chain.reverts import ERROR_STRING, PANIC, RevertDecoder
from flare.protocol.ledger import (
    CONTRACT_ERRORS,
    InvalidConfigError,
    NotEligibleError,
    RevertedError,
    WrongRoundError,
)

ABI = load_artifact().abi
DECODER = RevertDecoder(ABI)

SAMPLES: dict[str, Any] = {
    "address": "0x" + "5e" * 20,
    "uint256": 7,
    "uint8": 2,
    "uint96": 5,
    "bytes32": b"\x42" * 32,
    "string": "why",
}


def encoded(name: str, values: dict[str, Any] | None = None) -> tuple[bytes, dict[str, Any]]:
    """Revert data for custom error `name` with sample (or given) arguments, and the args."""
    item = next(i for i in ABI if i.get("type") == "error" and i["name"] == name)
    types = [collapse_if_tuple(arg) for arg in item["inputs"]]
    args = {
        arg["name"]: (values or {}).get(arg["name"], SAMPLES[kind])
        for arg, kind in zip(item["inputs"], types, strict=True)
    }
    selector = function_signature_to_4byte_selector(f"{name}({','.join(types)})")
    return selector + encode(types, list(args.values())), args


@pytest.mark.parametrize("name", sorted(CONTRACT_ERRORS))
def test_every_custom_error_decodes_to_its_class_with_its_arguments(name: str) -> None:
    data, args = encoded(name)
    expected = {
        k: to_checksum_address(v) if k in ("node", "owner", "account", "precompile") else v
        for k, v in args.items()
    }

    error = DECODER.decode(data)

    assert type(error) is CONTRACT_ERRORS[name]
    assert {k: int(v) if hasattr(v, "value") else v for k, v in error.error_args.items()} == (
        expected
    )


@given(round_=st.integers(0, 2**256 - 1), current=st.integers(0, 2**256 - 1))
def test_integer_arguments_round_trip(round_: int, current: int) -> None:
    data, _ = encoded("FlareRoundsWrongRound", {"round": round_, "currentRound": current})

    error = DECODER.decode(data)

    assert isinstance(error, WrongRoundError)
    assert error.error_args == {"round": round_, "currentRound": current}


def test_error_string_panic_empty_and_unknown_data() -> None:
    reason = DECODER.decode(ERROR_STRING + encode(["string"], ["boom"]))
    panic = DECODER.decode(PANIC + encode(["uint256"], [0x11]))
    empty = DECODER.decode(b"")
    unknown = DECODER.decode(bytes.fromhex("deadbeef") + bytes(32))
    garbage = DECODER.decode(encoded("FlareRoundsWrongRound")[0][:20])

    assert (reason.error_name, reason.error_args) == ("Error", {"reason": "boom"})
    assert (panic.error_name, panic.error_args) == ("Panic", {"code": 0x11})
    assert "overflow" in panic.message
    assert empty.error_name == ""
    assert "without a reason" in empty.message
    assert unknown.error_name == "0xdeadbeef"
    assert "unknown error" in unknown.message
    assert all(isinstance(e, RevertedError) for e in (reason, panic, empty, unknown, garbage))


def test_a_json_rpc_nodes_custom_error_decodes() -> None:
    data, _ = encoded("FlareRoundsNotEligible")

    error = DECODER.from_exception(ContractCustomError("0x" + data.hex(), data="0x" + data.hex()))

    assert isinstance(error, NotEligibleError)


def test_a_json_rpc_nodes_reason_string_decodes() -> None:
    data = "0x" + (ERROR_STRING + encode(["string"], ["nope"])).hex()

    error = DECODER.from_exception(ContractLogicError("execution reverted: nope", data=data))

    assert error is not None
    assert error.error_args == {"reason": "nope"}


def test_eth_testers_printed_bytes_decode() -> None:
    data, _ = encoded("FlareRoundsNotEligible")

    error = DECODER.from_exception(TransactionFailed(f"execution reverted: {data!r}"))

    assert isinstance(error, NotEligibleError)


def test_eth_testers_chained_raw_bytes_win_over_its_message() -> None:
    # web3 decodes any revert data shaped like one string as a reason string, dropping the
    # selector of a custom error with a single string argument; the raw bytes stay chained.
    data, _ = encoded("FlareRoundsInvalidConfig", {"reason": "committeeSize must be 1..64"})
    try:
        try:
            raise TransactionFailed(Exception(data))
        except TransactionFailed:
            raise TransactionFailed("execution reverted: committeeSize must be 1..64") from None
    except TransactionFailed as rewritten:
        error = DECODER.from_exception(rewritten)

    assert isinstance(error, InvalidConfigError)
    assert error.error_args == {"reason": "committeeSize must be 1..64"}


def test_eth_testers_plain_reason_and_empty_revert() -> None:
    reason = DECODER.from_exception(TransactionFailed("execution reverted: nope"))
    empty = DECODER.from_exception(TransactionFailed("execution reverted: b''"))

    assert reason is not None
    assert reason.error_args == {"reason": "nope"}
    assert empty is not None
    assert empty.error_name == ""


def test_other_failures_are_not_reverts() -> None:
    assert DECODER.from_exception(TransactionFailed("out of cheese")) is None
    assert DECODER.from_exception(ValueError("nope")) is None
