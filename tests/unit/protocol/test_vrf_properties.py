"""ECVRF properties over random keys and inputs: round trip, uniqueness, tamper evidence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flare.protocol import vrf

secrets_ = st.binary(min_size=32, max_size=32)
alphas = st.binary(max_size=96)


@given(secret=secrets_, alpha=alphas)
def test_verify_accepts_what_prove_makes_and_returns_its_hash(secret: bytes, alpha: bytes) -> None:
    proof = vrf.prove(secret, alpha)

    beta = vrf.verify(vrf.public_key(secret), alpha, proof)

    assert len(proof) == vrf.PROOF_BYTES
    assert beta == vrf.proof_to_hash(proof)
    assert isinstance(beta, bytes)
    assert len(beta) == vrf.OUTPUT_BYTES


@given(secret=secrets_, alpha=alphas)
def test_prove_is_deterministic(secret: bytes, alpha: bytes) -> None:
    assert vrf.prove(secret, alpha) == vrf.prove(secret, alpha)


@given(secret=secrets_, alpha=alphas, other=alphas)
def test_different_inputs_give_different_outputs(secret: bytes, alpha: bytes, other: bytes) -> None:
    same = alpha == other

    first = vrf.proof_to_hash(vrf.prove(secret, alpha))
    second = vrf.proof_to_hash(vrf.prove(secret, other))

    assert (first == second) == same


@given(secret=secrets_, other=secrets_, alpha=alphas)
def test_different_keys_give_different_outputs(secret: bytes, other: bytes, alpha: bytes) -> None:
    same = vrf.public_key(secret) == vrf.public_key(other)

    first = vrf.proof_to_hash(vrf.prove(secret, alpha))
    second = vrf.proof_to_hash(vrf.prove(other, alpha))

    assert (first == second) == same


@settings(max_examples=200)
@given(secret=secrets_, alpha=alphas, bit=st.integers(0, 8 * vrf.PROOF_BYTES - 1))
def test_any_single_bit_flip_in_the_proof_is_refused(secret: bytes, alpha: bytes, bit: int) -> None:
    proof = bytearray(vrf.prove(secret, alpha))
    proof[bit // 8] ^= 1 << (bit % 8)

    result = vrf.verify(vrf.public_key(secret), alpha, bytes(proof))

    assert isinstance(result, vrf.InvalidProof)


@settings(max_examples=200)
@given(secret=secrets_, alpha=alphas, bit=st.integers(0, 8 * vrf.PUBLIC_KEY_BYTES - 1))
def test_any_single_bit_flip_in_the_key_is_refused(secret: bytes, alpha: bytes, bit: int) -> None:
    proof = vrf.prove(secret, alpha)
    key = bytearray(vrf.public_key(secret))
    key[bit // 8] ^= 1 << (bit % 8)

    result = vrf.verify(bytes(key), alpha, proof)

    assert isinstance(result, vrf.InvalidProof)


@given(public_key=st.binary(max_size=40), alpha=alphas, proof=st.binary(max_size=90))
def test_verify_never_raises_on_arbitrary_bytes(
    public_key: bytes, alpha: bytes, proof: bytes
) -> None:
    result = vrf.verify(public_key, alpha, proof)

    assert isinstance(result, vrf.InvalidProof)
    assert result.reason
