"""The BLS VRF: golden vectors, an independent check, properties, and proofs of possession."""

from __future__ import annotations

import json
from pathlib import Path

import bls_reference as ref
import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.protocol import sortition, vrf

FLARE = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "bls" / "flare-vectors.json").read_text()
)
KEYS = FLARE["keys"]
alphas = st.binary(max_size=96)
addresses = st.binary(min_size=20, max_size=20)


@pytest.fixture(scope="module")
def secret() -> bytes:
    return vrf.new_secret_key()


def test_the_tags_are_the_ones_the_vectors_and_the_contract_use() -> None:
    assert vrf.VRF_DST.decode() == FLARE["vrf_dst"]
    assert vrf.POP_DST.decode() == FLARE["pop_dst"]
    assert vrf.VRF_DST != vrf.POP_DST


@pytest.mark.parametrize("vector", FLARE["proofs"], ids=lambda v: f"key {v['key']} r {v['round']}")
def test_proofs_outputs_and_ranks_match_the_golden_vectors(vector: dict[str, str]) -> None:
    key = KEYS[int(vector["key"])]
    alpha = sortition.alpha_for(bytes.fromhex(vector["seed"]), int(vector["round"]))

    proof = vrf.prove(bytes.fromhex(key["secret_key"]), alpha)

    assert vrf.public_key(bytes.fromhex(key["secret_key"])).hex() == key["public_key"]
    assert alpha.hex() == vector["alpha"]
    assert proof.hex() == vector["proof"]
    assert vrf.verify(bytes.fromhex(key["public_key"]), alpha, proof).hex() == vector["output"]
    assert sortition.rank_of(bytes.fromhex(vector["output"])) == int(vector["rank"])


def test_a_golden_proof_verifies_with_the_independent_reference() -> None:
    vector = FLARE["proofs"][-1]
    key = KEYS[int(vector["key"])]

    assert ref.verify(
        bytes.fromhex(key["public_key"]),
        bytes.fromhex(vector["alpha"]),
        vrf.VRF_DST,
        bytes.fromhex(vector["proof"]),
    )


@pytest.mark.parametrize("vector", FLARE["possession"], ids=lambda v: f"key {v['key']}")
def test_proofs_of_possession_match_the_golden_vectors(vector: dict[str, object]) -> None:
    key = KEYS[int(str(vector["key"]))]
    args = (
        int(str(vector["chain_id"])),
        bytes.fromhex(str(vector["contract"])),
        bytes.fromhex(str(vector["registrant"])),
    )

    proof = vrf.prove_possession(bytes.fromhex(key["secret_key"]), *args)

    assert vrf.possession_message(*args).hex() == vector["message"]
    assert proof.hex() == vector["proof"]
    assert vrf.verify_possession(bytes.fromhex(key["public_key"]), *args, proof) is None


@settings(max_examples=50)
@given(alpha=alphas)
def test_verify_accepts_what_prove_makes_and_returns_keccak_of_the_proof(
    secret: bytes, alpha: bytes
) -> None:
    proof = vrf.prove(secret, alpha)

    output = vrf.verify(vrf.public_key(secret), alpha, proof)

    assert len(proof) == vrf.PROOF_BYTES
    assert output == vrf.proof_to_output(proof) == keccak(proof)
    assert vrf.prove(secret, alpha) == proof  # unique: one proof per key and input


@settings(max_examples=50)
@given(alpha=alphas, other=alphas)
def test_a_proof_is_bound_to_its_input(secret: bytes, alpha: bytes, other: bytes) -> None:
    proof = vrf.prove(secret, alpha)

    result = vrf.verify(vrf.public_key(secret), other, proof)

    if other == alpha:
        assert result == keccak(proof)
    else:
        assert isinstance(result, vrf.InvalidProof)
        assert result.rejection is vrf.Rejection.MISMATCH


def test_a_proof_is_bound_to_its_key(secret: bytes) -> None:
    alpha = b"round alpha"
    proof = vrf.prove(secret, alpha)

    result = vrf.verify(vrf.public_key(vrf.new_secret_key()), alpha, proof)

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.MISMATCH


@settings(max_examples=100)
@given(bit=st.integers(0, 8 * vrf.PROOF_BYTES - 1))
def test_any_single_bit_flip_in_the_proof_is_refused(secret: bytes, bit: int) -> None:
    alpha = b"flip"
    proof = bytearray(vrf.prove(secret, alpha))
    proof[bit // 8] ^= 1 << (bit % 8)

    result = vrf.verify(vrf.public_key(secret), alpha, bytes(proof))

    assert isinstance(result, vrf.InvalidProof)


@pytest.mark.parametrize("bad", FLARE["bad_g1"], ids=lambda b: b["why"])
def test_malformed_proofs_are_refused_as_bad_proofs(secret: bytes, bad: dict[str, str]) -> None:
    result = vrf.verify(vrf.public_key(secret), b"a", bytes.fromhex(bad["encoding"]))

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.BAD_PROOF


@pytest.mark.parametrize("bad", FLARE["bad_g2"], ids=lambda b: b["why"])
def test_malformed_keys_are_refused_as_bad_keys(secret: bytes, bad: dict[str, str]) -> None:
    result = vrf.verify(bytes.fromhex(bad["encoding"]), b"a", vrf.prove(secret, b"a"))

    assert isinstance(result, vrf.InvalidProof)
    assert result.rejection is vrf.Rejection.BAD_PUBLIC_KEY


@settings(max_examples=25)
@given(chain=st.integers(1, 2**64), contract=addresses, registrant=addresses, other=addresses)
def test_a_proof_of_possession_is_bound_to_chain_contract_and_registrant(
    secret: bytes, chain: int, contract: bytes, registrant: bytes, other: bytes
) -> None:
    pk = vrf.public_key(secret)
    proof = vrf.prove_possession(secret, chain, contract, registrant)

    assert vrf.verify_possession(pk, chain, contract, registrant, proof) is None
    assert vrf.verify_possession(pk, chain + 1, contract, registrant, proof) is not None
    if other != registrant:
        assert vrf.verify_possession(pk, chain, contract, other, proof) is not None
    if other != contract:
        assert vrf.verify_possession(pk, chain, other, registrant, proof) is not None


def test_a_vrf_proof_is_never_a_proof_of_possession(secret: bytes) -> None:
    message = vrf.possession_message(1, bytes(20), bytes(20))
    vrf_proof = vrf.prove(secret, message)  # the same bytes, signed under the VRF tag

    assert vrf.verify_possession(vrf.public_key(secret), 1, bytes(20), bytes(20), vrf_proof)


def test_proof_to_output_refuses_a_wrong_length() -> None:
    with pytest.raises(vrf.VrfError):
        vrf.proof_to_output(bytes(80))


def test_possession_message_refuses_non_addresses() -> None:
    with pytest.raises(vrf.VrfError):
        vrf.possession_message(1, bytes(19), bytes(20))
