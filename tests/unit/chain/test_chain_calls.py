"""Calls encoded from the ABI once agree with web3's contract objects, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from web3 import Web3

from flare.chain.artifact import load_artifact
from flare.chain.calls import ContractCalls, UnknownFunctionError
from flare.protocol.errors import ConfigError

ABI = load_artifact().abi
NODE = "0x" + "ab" * 20
ARGS: dict[str, list[Any]] = {
    "uint256": [7],
    "address": [to_checksum_address(NODE)],
    "bytes32": [b"\x11" * 32],
    "bytes": [b"\x01\x55" + b"\x22" * 34],
    "bool": [True],
    "uint8": [3],
}


def sample_args(item: dict[str, Any]) -> list[Any]:
    return [ARGS[arg["type"]][0] for arg in item["inputs"]]


@pytest.mark.parametrize(
    "item",
    [
        item
        for item in ABI
        if item.get("type") == "function" and all(a["type"] in ARGS for a in item["inputs"])
    ],
    ids=lambda item: item["name"],
)
def test_calldata_is_what_web3_encodes(item: dict[str, Any]) -> None:
    contract = Web3().eth.contract(abi=ABI)
    args = sample_args(item)
    expected = bytes.fromhex(contract.encode_abi(item["name"], args=args)[2:])
    assert ContractCalls(ABI)[item["name"]].encode(args) == expected


def test_results_come_back_in_web3s_shapes() -> None:
    calls = ContractCalls(ABI)
    holder = to_checksum_address(NODE)
    seats = calls["seats"].decode(abi_encode(["(address,uint256)[]"], [[(NODE, 2), (NODE, 5)]]))
    assert [(seat.holder, seat.rank) for seat in seats] == [(holder, 2), (holder, 5)]
    assert calls["owner"].decode(abi_encode(["address"], [NODE])) == holder  # checksummed
    assert calls["globalModel"].decode(abi_encode(["uint256", "bytes"], [4, b"\x01"])) == (
        4,
        b"\x01",
    )
    node = calls["getNode"].decode(
        abi_encode(
            ["(bool,bool,bytes32,bytes32,uint256)"], [(True, False, b"\1" * 32, b"\2" * 32, 9)]
        )
    )
    assert node.registered is True
    assert node.eligibleFrom == 9
    assert node._asdict()["blsKeyHash"] == b"\1" * 32


def test_an_unknown_function_is_a_key_error_naming_it() -> None:
    with pytest.raises(UnknownFunctionError, match="noSuchView"):
        ContractCalls(ABI)["noSuchView"]


def test_arguments_that_do_not_fit_are_a_config_error_naming_the_call() -> None:
    with pytest.raises(ConfigError, match=r"getRound\(uint256\)"):
        ContractCalls(ABI)["getRound"].encode([-1])
    with pytest.raises(ConfigError, match="updateOf"):
        ContractCalls(ABI)["updateOf"].encode([1, "not an address"])
