"""ECVRF conformance: RFC 9381 Appendix B.3 vectors and every encoding a verifier must refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nacl import bindings as sodium

from flare.protocol import vrf
from flare.protocol.errors import FlareError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "vrf"
RFC = json.loads((VECTORS / "rfc9381-b3.json").read_text())["vectors"]
FLARE = json.loads((VECTORS / "flare-vectors.json").read_text())
EXAMPLE = RFC[0]
PK, PI = bytes.fromhex(EXAMPLE["pk"]), bytes.fromhex(EXAMPLE["pi"])
ALPHA = bytes.fromhex(EXAMPLE["alpha"])


def ids(vectors: list[dict[str, str]]) -> list[str]:
    return [v["name"] for v in vectors]


@pytest.mark.parametrize("vector", RFC, ids=ids(RFC))
def test_prove_matches_rfc_vector(vector: dict[str, str]) -> None:
    secret, alpha = bytes.fromhex(vector["sk"]), bytes.fromhex(vector["alpha"])

    proof = vrf.prove(secret, alpha)

    assert vrf.public_key(secret).hex() == vector["pk"]
    assert proof.hex() == vector["pi"]
    assert vrf.proof_to_hash(proof).hex() == vector["beta"]


@pytest.mark.parametrize("vector", RFC, ids=ids(RFC))
def test_intermediate_values_match_rfc_vector(vector: dict[str, str]) -> None:
    secret_scalar, public, _ = vrf._expand(bytes.fromhex(vector["sk"]))

    h = vrf.encode_to_curve(bytes.fromhex(vector["pk"]), bytes.fromhex(vector["alpha"]))

    rfc_x = int.from_bytes(bytes.fromhex(vector["x"]), "little")
    assert int.from_bytes(secret_scalar, "little") == rfc_x % vrf.Q
    assert public.hex() == vector["pk"]
    assert h.hex() == vector["h"]


@pytest.mark.parametrize("vector", RFC, ids=ids(RFC))
def test_verify_accepts_rfc_vector(vector: dict[str, str]) -> None:
    result = vrf.verify(
        bytes.fromhex(vector["pk"]), bytes.fromhex(vector["alpha"]), bytes.fromhex(vector["pi"])
    )

    assert result == bytes.fromhex(vector["beta"])


def test_public_key_is_the_ed25519_public_key() -> None:
    for vector in RFC:
        secret = bytes.fromhex(vector["sk"])
        public, _ = sodium.crypto_sign_seed_keypair(secret)
        assert vrf.public_key(secret) == public


@pytest.mark.parametrize("vector", FLARE["sortition"][:6])
def test_sortition_golden_vectors_reproduce(vector: dict[str, str]) -> None:
    proof = vrf.prove(bytes.fromhex(vector["sk"]), bytes.fromhex(vector["alpha"]))

    assert proof.hex() == vector["proof"]
    assert vrf.verify(bytes.fromhex(vector["pk"]), bytes.fromhex(vector["alpha"]), proof) == (
        bytes.fromhex(vector["beta"])
    )


BAD_POINTS = FLARE["bad_points"]


@pytest.mark.parametrize("entry", BAD_POINTS, ids=[e["why"] for e in BAD_POINTS])
def test_bad_point_is_refused_as_public_key(entry: dict[str, str]) -> None:
    result = vrf.verify(bytes.fromhex(entry["point"]), ALPHA, PI)

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.BAD_PUBLIC_KEY


@pytest.mark.parametrize("entry", BAD_POINTS, ids=[e["why"] for e in BAD_POINTS])
def test_bad_point_is_refused_as_gamma(entry: dict[str, str]) -> None:
    result = vrf.verify(PK, ALPHA, bytes.fromhex(entry["point"]) + PI[32:])

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.BAD_GAMMA


def test_non_canonical_points_on_the_curve_are_not_hash_candidates() -> None:
    # libsodium's add accepts these encodings (the pitfall); try-and-increment must not.
    on_curve = [
        bytes.fromhex(e["point"])
        for e in BAD_POINTS
        if e["why"].startswith("non-canonical") and "not on the curve" not in e["why"]
    ]
    assert on_curve, "the vector file lists on-curve non-canonical encodings"
    for encoding in on_curve:
        sodium.crypto_core_ed25519_add(encoding, encoding)  # accepted by libsodium: no raise
        assert vrf._decode_times_cofactor(encoding) is None


def test_points_outside_the_subgroup_are_hash_candidates() -> None:
    # Mixed-order points are valid try-and-increment results once multiplied by 8.
    mixed = bytes.fromhex(BAD_POINTS[-1]["point"])
    assert not sodium.crypto_core_ed25519_is_valid_point(mixed)

    h = vrf._decode_times_cofactor(mixed)

    assert h is not None
    assert sodium.crypto_core_ed25519_is_valid_point(h)


@pytest.mark.parametrize(
    "scalar",
    [vrf.Q, 2**256 - 1, int.from_bytes(PI[48:], "little") + vrf.Q],
    ids=["s = q", "s = 2^256 - 1", "s + q (same point, second encoding)"],
)
def test_unreduced_scalar_is_refused(scalar: int) -> None:
    result = vrf.verify(PK, ALPHA, PI[:48] + scalar.to_bytes(32, "little"))

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.BAD_SCALAR


@pytest.mark.parametrize(
    ("public_key", "proof"),
    [(PK[:31], PI), (PK + b"\0", PI), (PK, PI[:79]), (PK, PI + b"\0"), (b"", b"")],
)
def test_wrong_lengths_are_refused(public_key: bytes, proof: bytes) -> None:
    result = vrf.verify(public_key, ALPHA, proof)

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.BAD_LENGTH


def test_every_single_bit_flip_of_proof_or_key_is_refused() -> None:
    for bit in range(8 * len(PI)):
        tampered = bytearray(PI)
        tampered[bit // 8] ^= 1 << (bit % 8)
        assert isinstance(vrf.verify(PK, ALPHA, bytes(tampered)), vrf.InvalidProof), bit
    for bit in range(8 * len(PK)):
        tampered = bytearray(PK)
        tampered[bit // 8] ^= 1 << (bit % 8)
        assert isinstance(vrf.verify(bytes(tampered), ALPHA, PI), vrf.InvalidProof), bit


def test_other_alpha_or_other_key_is_a_mismatch() -> None:
    other_key = bytes.fromhex(RFC[1]["pk"])

    for result in (vrf.verify(PK, ALPHA + b"\0", PI), vrf.verify(other_key, ALPHA, PI)):
        assert isinstance(result, vrf.InvalidProof)
        assert result.rejection is vrf.Rejection.MISMATCH


def test_proof_to_hash_refuses_malformed_proofs() -> None:
    small_order = bytes.fromhex(BAD_POINTS[0]["point"])

    for proof in (PI[:79], small_order + PI[32:], PI[:48] + vrf.Q.to_bytes(32, "little")):
        with pytest.raises(vrf.VrfError) as caught:
            vrf.proof_to_hash(proof)
        assert isinstance(caught.value, FlareError)
        assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_prove_refuses_a_secret_key_of_the_wrong_size(size: int) -> None:
    with pytest.raises(vrf.VrfError, match="32 bytes"):
        vrf.prove(bytes(size), b"alpha")
