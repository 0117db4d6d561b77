"""CID text and binary codec: round trips, legacy forms, and every way text can be wrong."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.protocol.cid import (
    CODEC_DAG_PB,
    CODEC_RAW,
    Cid,
    CidError,
    StorageIntegrityError,
    UnsupportedCidError,
    decode_cid,
    decode_varint,
    encode_cid,
    encode_varint,
    verify_block,
)
from flare.protocol.errors import ConfigError, IntegrityError

digests = st.binary(min_size=32, max_size=32)
codecs = st.sampled_from([CODEC_RAW, CODEC_DAG_PB])


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trips_and_is_minimal(value: int) -> None:
    encoded = encode_varint(value)

    assert decode_varint(encoded) == (value, len(encoded))
    assert encoded[-1] < 0x80
    assert len(encoded) == max(1, (value.bit_length() + 6) // 7)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "truncated"), (b"\x80", "truncated"), (b"\x80\x00", "minimal"), (b"\xff" * 10, "9")],
)
def test_varint_rejects_bad_encodings(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_varint(data)


@given(codecs, digests)
def test_text_and_binary_round_trip(codec: int, digest: bytes) -> None:
    cid = Cid(codec, digest)

    assert decode_cid(cid.text) == cid.binary
    assert encode_cid(cid.binary) == cid.text
    assert Cid.parse(cid.text) == cid
    assert Cid.from_binary(cid.binary) == cid
    assert cid.text.startswith("bafkrei" if codec == CODEC_RAW else "bafybei")


@given(codecs, digests)
def test_uppercase_multibase_is_accepted(codec: int, digest: bytes) -> None:
    cid = Cid(codec, digest)

    assert decode_cid("B" + cid.text[1:].upper()) == cid.binary


def test_binary_layout_is_version_codec_multihash() -> None:
    digest = hashlib.sha256(b"flare").digest()

    assert Cid(CODEC_RAW, digest).binary == bytes([0x01, 0x55, 0x12, 0x20]) + digest
    assert Cid(CODEC_DAG_PB, digest).binary == bytes([0x01, 0x70, 0x12, 0x20]) + digest


def test_base58_forms_decode_to_the_same_cidv1() -> None:
    cid = Cid.of_block(CODEC_DAG_PB, b"node")
    multihash = cid.binary[2:]
    as_v0 = _base58(multihash)
    as_z = "z" + _base58(cid.binary)

    assert as_v0.startswith("Qm")
    assert decode_cid(as_v0) == cid.binary
    assert decode_cid(as_z) == cid.binary


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",  # blank once stripped: the emptiness check must see the stripped text
        "\t\n",
        "nonsense",
        "b",
        "bafkrei!",
        "bAFKREI",  # mixed case under the lowercase prefix
        "Qm" + "1" * 44,  # base58 that is not a sha2-256 multihash
    ],
)
def test_malformed_text_is_a_config_error(text: str) -> None:
    with pytest.raises(CidError) as caught:
        decode_cid(text)

    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, ValueError)


def test_truncated_cid_is_rejected_with_lengths() -> None:
    cid = Cid.of_block(CODEC_RAW, b"x")

    with pytest.raises(CidError, match="31 bytes, not 32"):
        encode_cid(cid.binary[:-1])
    with pytest.raises(CidError, match="31 bytes, not 32"):
        decode_cid(_base32(cid.binary[:-1]))


def test_non_canonical_trailing_bits_are_rejected() -> None:
    text = Cid.of_block(CODEC_RAW, b"x").text
    last = "abcdefghijklmnopqrstuvwxyz234567"
    tweaked = text[:-1] + last[(last.index(text[-1]) + 1) % 32]

    with pytest.raises(CidError, match=r"canonical|not a CID"):
        decode_cid(tweaked)


def test_cidv0_binary_and_other_versions_are_rejected() -> None:
    digest = hashlib.sha256(b"x").digest()

    with pytest.raises(CidError, match="CIDv1"):
        encode_cid(bytes([0x02, 0x55, 0x12, 0x20]) + digest)
    with pytest.raises(CidError, match="CIDv1"):
        encode_cid(bytes([0x12, 0x20]) + digest)


def test_other_codecs_and_hashes_are_well_formed_but_unsupported() -> None:
    digest = hashlib.sha256(b"x").digest()
    dag_cbor = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    sha512 = bytes([0x01, 0x55, 0x13, 0x40]) + hashlib.sha512(b"x").digest()

    assert decode_cid(encode_cid(dag_cbor)) == dag_cbor
    with pytest.raises(UnsupportedCidError, match="codec 0x71"):
        Cid.from_binary(dag_cbor)
    with pytest.raises(UnsupportedCidError, match="hash function 0x13"):
        Cid.parse(encode_cid(sha512))


def test_verify_block_names_the_cid() -> None:
    cid = Cid.of_block(CODEC_RAW, b"original")

    verify_block(cid, b"original")
    with pytest.raises(StorageIntegrityError) as caught:
        verify_block(cid, b"tampered")

    assert caught.value.cid == cid.text
    assert cid.text in str(caught.value)
    assert isinstance(caught.value, IntegrityError)


def _base32(binary: bytes) -> str:
    return "b" + base64.b32encode(binary).decode().rstrip("=").lower()


def _base58(binary: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    value = int.from_bytes(binary, "big")
    out = ""
    while value:
        value, digit = divmod(value, 58)
        out = alphabet[digit] + out
    return "1" * (len(binary) - len(binary.lstrip(b"\0"))) + out
