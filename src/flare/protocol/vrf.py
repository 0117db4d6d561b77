"""The committee's verifiable random function: BLS12-381 unique signatures, checked on-chain.

A BLS signature is deterministic and unique for a key and message, so it serves as a VRF, as
drand and DFINITY's random beacon use it: the proof over alpha is

    pi = sk·H(alpha)      H = RFC 9380 hash_to_curve on G1 under VRF_DST (128 bytes, EIP-2537)

and the output is keccak256(pi), which FlareRounds computes itself from the proof it verifies
(a claim carries only the proof). Nobody can pick an output: the pairing check pins pi to the
registered key, and the encoding of a subgroup point is unique.

Registration carries a proof of possession: the key's signature over
uint256(chain id) || contract || registrant under POP_DST, so nobody registers a key they do
not hold, nor replays another node's registration on another chain, contract or address.

The tags and byte layouts here must equal FlareRounds' `VRF_DST`, `POP_DST` and the messages
its `claimSeat` and `register` build; `tests/integration/chain` checks both against the
contract on eth-tester and anvil.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from eth_utils.crypto import keccak

from flare.protocol import bls
from flare.protocol.errors import IntegrityError

VRF_DST = b"FLARE-ROUNDS-V02-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"
POP_DST = b"FLARE-ROUNDS-V02-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"
SECRET_KEY_BYTES = bls.SECRET_KEY_BYTES
PUBLIC_KEY_BYTES = bls.G2_BYTES
PROOF_BYTES = bls.G1_BYTES
OUTPUT_BYTES = 32

new_secret_key = bls.new_secret_key
public_key = bls.public_key


class VrfError(IntegrityError):
    """A VRF input this node produced or was handed cannot be used."""


class Rejection(StrEnum):
    """Why a proof failed verification, in a form an auditor's report can group by."""

    BAD_PUBLIC_KEY = "bad-public-key"
    BAD_PROOF = "bad-proof"
    MISMATCH = "mismatch"
    WRONG_OUTPUT = "wrong-output"  # a valid proof, but the recorded output is not its output


@dataclass(frozen=True, slots=True)
class InvalidProof:
    """The value `verify` returns for a proof that must be ignored; `reason` says why."""

    rejection: Rejection
    reason: str


def prove(secret_key: bytes, alpha: bytes) -> bytes:
    """The 128-byte proof over `alpha`; deterministic for a key and input."""
    return bls.sign(secret_key, alpha, VRF_DST)


def proof_to_output(proof: bytes) -> bytes:
    """The 32-byte output of a proof, keccak256(proof), as the contract derives it.

    It does not verify the proof: a peer's proof goes through `verify`, which returns the same
    output only when the proof is valid.
    """
    if len(proof) != PROOF_BYTES:
        raise VrfError(
            f"a VRF proof is {PROOF_BYTES} bytes, got {len(proof)}",
            hint="pass the proof exactly as `prove` returned it",
        )
    return keccak(proof)


def verify(public_key: bytes, alpha: bytes, proof: bytes) -> bytes | InvalidProof:
    """The output if `proof` is `public_key`'s proof over `alpha`, else why it is not."""
    key = bls.decode_g2(public_key, what="public key")
    if isinstance(key, str):
        return InvalidProof(Rejection.BAD_PUBLIC_KEY, key)
    point = bls.decode_g1(proof, what="proof")
    if isinstance(point, str):
        return InvalidProof(Rejection.BAD_PROOF, point)
    if not bls.signs(key, alpha, VRF_DST, point):
        return InvalidProof(
            Rejection.MISMATCH, "proof does not match this public key and alpha (pairing fails)"
        )
    return keccak(proof)


def possession_message(chain_id: int, contract: bytes, registrant: bytes) -> bytes:
    """What a proof of possession signs: uint256(chain id) || contract || registrant."""
    if len(contract) != 20 or len(registrant) != 20:
        raise VrfError(
            "contract and registrant are 20-byte addresses",
            hint="pass address bytes (flare.protocol.rounds.address_bytes)",
        )
    return chain_id.to_bytes(32, "big") + contract + registrant


def prove_possession(secret_key: bytes, chain_id: int, contract: bytes, registrant: bytes) -> bytes:
    """The proof of possession `register` needs from `registrant` on this chain and contract."""
    return bls.sign(secret_key, possession_message(chain_id, contract, registrant), POP_DST)


def verify_possession(
    public_key: bytes, chain_id: int, contract: bytes, registrant: bytes, proof: bytes
) -> str | None:
    """None when `proof` proves possession of `public_key` for this registration; else why not."""
    return bls.verify(
        public_key, possession_message(chain_id, contract, registrant), POP_DST, proof
    )
