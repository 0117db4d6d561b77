"""The ledger's error classes: one per contract error, named, with arguments and a hint."""

from __future__ import annotations

import pytest

from flare.protocol import ledger
from flare.protocol.errors import FlareError
from flare.protocol.events import EVENT_TYPES, ChainEvent
from flare.protocol.ledger import (
    CONTRACT_ERRORS,
    ContractError,
    NotEligibleError,
    RevertedError,
    WrongPhaseError,
    contract_error,
)
from flare.protocol.rounds import Phase


def test_every_contract_error_class_is_registered_under_its_solidity_name() -> None:
    for name, cls in CONTRACT_ERRORS.items():
        assert cls.solidity_name == name
        assert issubclass(cls, ContractError)
        assert issubclass(cls, FlareError)
        assert isinstance(cls({}), RuntimeError)
    assert len(set(CONTRACT_ERRORS.values())) == len(CONTRACT_ERRORS)


def test_a_decoded_error_names_itself_and_its_arguments() -> None:
    node = "0x" + "ab" * 20

    error = contract_error("FlareRoundsNotEligible", {"round": 3, "node": node})

    assert type(error) is NotEligibleError
    assert error.error_name == "FlareRoundsNotEligible"
    assert error.error_args == {"round": 3, "node": node}
    assert error.message == f"FlareRoundsNotEligible: node {node} is not eligible in round 3"
    assert error.hint is not None
    assert "registered" in error.hint


def test_phase_arguments_become_phases() -> None:
    error = contract_error("FlareRoundsWrongPhase", {"round": 2, "expected": 2, "actual": 1})

    assert isinstance(error, WrongPhaseError)
    assert error.error_args["actual"] is Phase.TRAINING
    assert "phase training; this call needs phase review" in error.message


def test_bytes_arguments_print_as_hex() -> None:
    error = contract_error(
        "FlareRoundsBlsKeyTaken", {"blsKeyHash": b"\x01" * 32, "owner": "0x" + "cd" * 20}
    )

    assert "0x" + "01" * 32 in error.message


def test_an_unknown_error_is_a_reverted_error_that_still_names_it() -> None:
    error = contract_error("SomethingElse", {"x": 1})

    assert type(error) is RevertedError
    assert error.error_name == "SomethingElse"
    assert "SomethingElse(x=1)" in error.message


def test_missing_arguments_do_not_break_the_message() -> None:
    assert "node ? is not" in contract_error("FlareRoundsNotAllowed", {}).message


@pytest.mark.parametrize(
    "name", ["InvalidCidError", "ZeroSamplesError", "TooManySamplesError", "InvalidBlsKeyError"]
)
def test_bad_inputs_are_also_value_errors(name: str) -> None:
    assert issubclass(getattr(ledger, name), ValueError)


def test_every_event_type_is_a_frozen_chain_event() -> None:
    for name, cls in EVENT_TYPES.items():
        assert cls.__name__ == name
        assert issubclass(cls, ChainEvent)
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
