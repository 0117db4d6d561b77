"""BLS12-381 in EIP-2537 encodings: RFC 9380 vectors, an independent reference, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import bls_reference as ref
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.protocol import bls

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "bls"
RFC = json.loads((VECTORS / "rfc9380-g1-ro.json").read_text())
FLARE = json.loads((VECTORS / "flare-vectors.json").read_text())


def rfc_point(vector: dict[str, str]) -> bytes:
    """P of an RFC vector, EIP-2537 encoded."""
    return b"".join(bytes(16) + bytes.fromhex(vector[k][2:]) for k in ("P_x", "P_y"))


@pytest.mark.parametrize("vector", RFC["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_hash_to_curve_gives_the_rfc_9380_points(vector: dict[str, str]) -> None:
    message, dst = vector["msg"].encode(), RFC["dst"].encode()

    assert bls.hash_to_g1(message, dst) == rfc_point(vector)
    assert ref.hash_to_g1(message, dst) == rfc_point(vector)


def test_the_rfc_file_holds_the_final_vectors() -> None:
    # The final RFC's tag; the draft files under poc/vectors end in _TESTGEN and differ.
    assert RFC["dst"] == "QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"
    assert [v["msg"][:5] for v in RFC["vectors"]] == ["", "abc", "abcde", "a512_"]
    assert RFC["vectors"][0]["P_x"].startswith("0x052926add2")


@settings(max_examples=3, deadline=None)  # py_ecc's pairings take about a second each
@given(secret=st.integers(1, ref.curve_order - 1), message=st.binary(max_size=80))
def test_keys_and_signatures_agree_with_the_py_ecc_reference(secret: int, message: bytes) -> None:
    sk = secret.to_bytes(32, "big")
    dst = b"FLARE-TEST-DST"

    signature = bls.sign(sk, message, dst)

    assert bls.public_key(sk) == ref.public_key(secret)
    assert signature == ref.sign(secret, message, dst)
    assert ref.verify(bls.public_key(sk), message, dst, signature)
    assert bls.verify(bls.public_key(sk), message, dst, signature) is None


@settings(max_examples=30)
@given(message=st.binary(max_size=80), other=st.binary(max_size=80))
def test_a_signature_verifies_for_its_own_message_and_tag_only(
    message: bytes, other: bytes
) -> None:
    sk = bls.new_secret_key()
    pk = bls.public_key(sk)
    signature = bls.sign(sk, message, b"TAG-A")

    assert bls.verify(pk, message, b"TAG-A", signature) is None
    assert bls.verify(pk, message, b"TAG-B", signature) is not None
    if other != message:
        assert bls.verify(pk, other, b"TAG-A", signature) is not None
    assert bls.verify(bls.public_key(bls.new_secret_key()), message, b"TAG-A", signature)


@pytest.mark.parametrize("bad", FLARE["bad_g1"], ids=lambda b: b["why"])
def test_g1_encodings_the_precompiles_refuse_are_refused(bad: dict[str, str]) -> None:
    assert isinstance(bls.decode_g1(bytes.fromhex(bad["encoding"]), what="proof"), str)


@pytest.mark.parametrize("bad", FLARE["bad_g2"], ids=lambda b: b["why"])
def test_g2_encodings_the_precompiles_refuse_are_refused(bad: dict[str, str]) -> None:
    assert isinstance(bls.decode_g2(bytes.fromhex(bad["encoding"]), what="key"), str)


def test_the_subgroup_vectors_really_lie_outside_the_subgroup() -> None:
    outside = next(b for b in FLARE["bad_g1"] if "subgroup" in b["why"])

    assert not ref.in_g1_subgroup(bytes.fromhex(outside["encoding"]))


@pytest.mark.parametrize("length", [0, 127, 129])
def test_wrong_lengths_are_named(length: int) -> None:
    problem = bls.decode_g1(bytes(length), what="proof")

    assert isinstance(problem, str)
    assert str(length) in problem


@pytest.mark.parametrize(
    "secret", [b"", bytes(31), bytes(32), bls.ORDER.to_bytes(32, "big"), b"\xff" * 32]
)
def test_secret_keys_outside_one_to_r_are_refused(secret: bytes) -> None:
    with pytest.raises(bls.BlsError):
        bls.public_key(secret)


def test_new_secret_keys_are_fresh_valid_scalars() -> None:
    keys = {bls.new_secret_key() for _ in range(50)}

    assert len(keys) == 50
    assert all(0 < int.from_bytes(k, "big") < bls.ORDER for k in keys)
