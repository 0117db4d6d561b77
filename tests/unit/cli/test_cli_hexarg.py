"""`parse_hex`: the one reader of hex options, and the errors it gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.cli.hexarg import parse_hex
from flare.protocol.errors import ConfigError


@given(value=st.binary(max_size=64), prefix=st.sampled_from(["", "0x", "0X"]), upper=st.booleans())
def test_every_spelling_of_bytes_reads_back(value: bytes, prefix: str, upper: bool) -> None:
    digits = value.hex().upper() if upper else value.hex()

    assert parse_hex(f"{prefix}{digits}", what="--alpha") == value
    assert parse_hex(f" {prefix}{digits}\n", length=len(value), what="--alpha") == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0xabc", "is not hex"),
        ("zz", "is not hex"),
        ("0x00 ff", "is not hex"),
        ("0x0x00", "is not hex"),
        ("ab\u0660\u0661", "is not hex"),
    ],
)
def test_what_is_not_hex_is_refused_naming_the_option(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"--alpha .* {message}") as caught:
        parse_hex(text, what="--alpha")

    assert caught.value.hint is not None


def test_a_wrong_length_says_how_many_bytes_it_wants() -> None:
    with pytest.raises(ConfigError, match=r"--model-spec '0x1234' is 2 bytes, not 32-byte hex"):
        parse_hex("0x1234", length=32, what="--model-spec")
    with pytest.raises(ConfigError, match="not 32-byte hex") as caught:
        parse_hex("0x" + "g" * 64, length=32, what="--seed")

    assert caught.value.hint == "give 0x followed by 64 hex digits"


def test_long_input_is_shortened_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_hex("0x" + "ab" * 100 + "!", what="--proof")

    assert len(caught.value.message) < 120
