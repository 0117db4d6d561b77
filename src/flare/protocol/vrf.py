"""ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03) over libsodium's ed25519 arithmetic.

The committee is drawn from VRF outputs, so every node must compute bit-identical proofs and
reject every proof the RFC rejects. Curve arithmetic is libsodium's (through PyNaCl); this
module only encodes, hashes and checks. Two libsodium behaviours shape the code:

- `crypto_scalarmult_ed25519*` and `crypto_core_ed25519_is_valid_point` accept only points of
  the prime-order subgroup, while try-and-increment must accept any point on the curve and
  then multiply by the cofactor. `crypto_core_ed25519_add` checks only the curve equation, so
  decoding a hash is done with it and 8·P by three doublings.
- libsodium decodes non-canonical encodings (y >= p, or x = 0 with the sign bit set) instead of
  refusing them; RFC 8032 decoding refuses them, so `_is_canonical` does.

Public keys and Gamma must be canonical points of the prime-order subgroup other than the
identity. That is stricter than RFC 9381's `validate_key` (which refuses small-order keys only)
and costs honest provers nothing: x·B and x·(8·H) always lie in that subgroup.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from nacl import bindings as sodium

from flare.protocol.errors import IntegrityError

SUITE = b"\x03"
SECRET_KEY_BYTES = 32
PUBLIC_KEY_BYTES = 32
PROOF_BYTES = 80  # Gamma (32) || c (16) || s (32)
OUTPUT_BYTES = 64
CHALLENGE_BYTES = 16

P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493  # order of the prime-order subgroup
_IDENTITY = (1).to_bytes(32, "little")


class VrfError(IntegrityError):
    """A VRF input this node produced or was handed cannot be used (bad length, bad proof)."""


class Rejection(StrEnum):
    """Why a proof failed verification, in a form an auditor's report can group by."""

    BAD_LENGTH = "bad-length"
    BAD_PUBLIC_KEY = "bad-public-key"
    BAD_GAMMA = "bad-gamma"
    BAD_SCALAR = "bad-scalar"
    MISMATCH = "mismatch"
    WRONG_OUTPUT = "wrong-output"  # a valid proof, but the claimed output is not its output


@dataclass(frozen=True, slots=True)
class InvalidProof:
    """The value `verify` returns for a proof that must be ignored; `reason` says why."""

    rejection: Rejection
    reason: str


def public_key(secret_key: bytes) -> bytes:
    """The ed25519 public key of a 32-byte secret key (RFC 8032 §5.1.5), as the VRF uses it."""
    return _expand(secret_key)[1]


def prove(secret_key: bytes, alpha: bytes) -> bytes:
    """The 80-byte proof pi over `alpha` (RFC 9381 §5.1); deterministic for a key and input."""
    x, y, nonce_prefix = _expand(secret_key)
    h = encode_to_curve(y, alpha)
    if h == _IDENTITY:  # probability about 2^-252; such a proof could never verify
        raise VrfError("alpha hashes to the identity point", hint="use another alpha")
    gamma = _mul(x, h)
    k = sodium.crypto_core_ed25519_scalar_reduce(hashlib.sha512(nonce_prefix + h).digest())
    c = _challenge(y, h, gamma, _mul_base(k), _mul(k, h))
    s = sodium.crypto_core_ed25519_scalar_add(k, sodium.crypto_core_ed25519_scalar_mul(c, x))
    return gamma + c[:CHALLENGE_BYTES] + s


def verify(public_key: bytes, alpha: bytes, proof: bytes) -> bytes | InvalidProof:
    """The 64-byte output beta if `proof` is valid for `public_key` and `alpha` (RFC 9381 §5.3).

    Peers send proofs, so a bad one is an expected outcome: it comes back as `InvalidProof`
    with a reason, never as an exception.
    """
    if len(public_key) != PUBLIC_KEY_BYTES or len(proof) != PROOF_BYTES:
        return InvalidProof(
            Rejection.BAD_LENGTH,
            f"public key must be {PUBLIC_KEY_BYTES} bytes and proof {PROOF_BYTES} bytes, "
            f"got {len(public_key)} and {len(proof)}",
        )
    problem = _point_problem(public_key)
    if problem is not None:
        return InvalidProof(Rejection.BAD_PUBLIC_KEY, f"public key {problem}")
    gamma, c, s = proof[:32], proof[32:48], proof[48:]
    problem = _point_problem(gamma)
    if problem is not None:
        return InvalidProof(Rejection.BAD_GAMMA, f"proof point Gamma {problem}")
    if int.from_bytes(s, "little") >= Q:
        return InvalidProof(Rejection.BAD_SCALAR, "proof scalar s is not reduced modulo the order")
    c_scalar = c + bytes(32 - CHALLENGE_BYTES)
    h = encode_to_curve(public_key, alpha)
    u = sodium.crypto_core_ed25519_sub(_mul_base(s), _mul(c_scalar, public_key))
    v = sodium.crypto_core_ed25519_sub(_mul(s, h), _mul(c_scalar, gamma))
    expected = _challenge(public_key, h, gamma, u, v)[:CHALLENGE_BYTES]
    if not hmac.compare_digest(expected, c):
        return InvalidProof(
            Rejection.MISMATCH, "proof does not match this public key and alpha (challenge differs)"
        )
    return _gamma_to_hash(gamma)


def proof_to_hash(proof: bytes) -> bytes:
    """The 64-byte output beta of a proof (RFC 9381 §5.2), without verifying it.

    Use it on proofs this node made; a peer's proof goes through `verify`, which returns the
    same beta only when the proof is valid.
    """
    if len(proof) != PROOF_BYTES:
        raise VrfError(
            f"a VRF proof is {PROOF_BYTES} bytes, got {len(proof)}",
            hint="pass the proof exactly as `prove` returned it",
        )
    problem = _point_problem(proof[:32])
    if problem is not None:
        raise VrfError(f"proof point Gamma {problem}", hint="verify peer proofs with `verify`")
    if int.from_bytes(proof[48:], "little") >= Q:
        raise VrfError("proof scalar s is not reduced", hint="verify peer proofs with `verify`")
    return _gamma_to_hash(proof[:32])


def encode_to_curve(salt: bytes, alpha: bytes) -> bytes:
    """H = 8·(first point found by try-and-increment) (RFC 9381 §5.4.1.1); salt = public key."""
    prefix = SUITE + b"\x01" + salt + alpha
    for ctr in range(256):
        point = _decode_times_cofactor(hashlib.sha512(prefix + bytes([ctr]) + b"\x00").digest())
        if point is not None:
            return point
    # Each try succeeds with probability about 1/2; 256 failures do not happen in practice.
    raise VrfError("try-and-increment found no curve point in 256 tries", hint="use another input")


def _decode_times_cofactor(candidate: bytes) -> bytes | None:
    """8·P for the point P that the first 32 bytes encode canonically; None if there is none.

    Any point on the curve counts, not only those in the prime-order subgroup, which is why
    this goes through `crypto_core_ed25519_add` (curve equation only) and not is_valid_point.
    """
    encoding = candidate[:32]
    if not _is_canonical(encoding):
        return None
    try:
        return _times_cofactor(encoding)
    except RuntimeError:  # libsodium's add refuses encodings that are not on the curve
        return None


def _expand(secret_key: bytes) -> tuple[bytes, bytes, bytes]:
    """(reduced secret scalar x, public key Y = x·B, nonce prefix) from RFC 8032's key hash."""
    if len(secret_key) != SECRET_KEY_BYTES:
        raise VrfError(
            f"a VRF secret key is {SECRET_KEY_BYTES} bytes, got {len(secret_key)}",
            hint="load the node's ed25519 key with `flare-node keys` rather than passing raw bytes",
        )
    digest = hashlib.sha512(secret_key).digest()
    clamped = bytearray(digest[:32])
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    x = sodium.crypto_core_ed25519_scalar_reduce(bytes(clamped) + bytes(32))
    return x, _mul_base(x), digest[32:]


def _challenge(*points: bytes) -> bytes:
    """c as a 32-byte little-endian scalar: the first 16 bytes of the hash, zero-padded."""
    digest = hashlib.sha512(SUITE + b"\x02" + b"".join(points) + b"\x00").digest()
    return digest[:CHALLENGE_BYTES] + bytes(32 - CHALLENGE_BYTES)


def _gamma_to_hash(gamma: bytes) -> bytes:
    return hashlib.sha512(SUITE + b"\x03" + _times_cofactor(gamma) + b"\x00").digest()


def _is_canonical(encoding: bytes) -> bool:
    """RFC 8032 §5.1.3: y < p, and the sign bit is clear when x = 0 (y = 1 or y = p - 1)."""
    y = int.from_bytes(encoding, "little") & (2**255 - 1)
    if y >= P:
        return False
    return not (encoding[31] >> 7 and y in (1, P - 1))


def _point_problem(encoding: bytes) -> str | None:
    """None for a canonical, non-identity point of the prime-order subgroup; else what is wrong."""
    if not _is_canonical(encoding):
        return "is not a canonical encoding"
    if not sodium.crypto_core_ed25519_is_valid_point(encoding):
        return "is not on the curve, has small order, or lies outside the prime-order subgroup"
    return None


def _times_cofactor(point: bytes) -> bytes:
    """8·P for any point on the curve; raises RuntimeError when `point` is not on it."""
    for _ in range(3):
        point = sodium.crypto_core_ed25519_add(point, point)
    return bytes(point)


def _mul(scalar: bytes, point: bytes) -> bytes:
    """scalar·point for a subgroup point; libsodium refuses O and a zero scalar: both give O."""
    if not any(scalar) or point == _IDENTITY:
        return _IDENTITY
    return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar, point))


def _mul_base(scalar: bytes) -> bytes:
    if not any(scalar):
        return _IDENTITY
    return bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(scalar))
