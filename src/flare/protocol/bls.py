"""BLS12-381 signatures in the encodings the EVM's EIP-2537 precompiles use.

FlareRounds verifies VRF seat proofs and proofs of possession on-chain with the EIP-2537
precompiles, so nodes must produce byte-for-byte what the contract reads: a G1 point is
x || y and a G2 point x.c0 || x.c1 || y.c0 || y.c1, each coordinate a 48-byte big-endian
integer left-padded with 16 zero bytes. Signatures live in G1 (128 bytes) and public keys in
G2 (256 bytes), as drand's unchained beacon and the contract's pairing check have it:
e(sig, G2) == e(H(message), pk), with H the RFC 9380 suite BLS12381G1_XMD:SHA-256_SSWU_RO_.

Curve arithmetic is py-arkworks-bls12381 (Rust, ~1.5 ms to sign, ~2.5 ms to verify). Decoding
refuses everything the precompiles refuse: non-zero padding, coordinates >= p, points off the
curve or outside the prime-order subgroup; the identity is refused as a key or signature.
"""

from __future__ import annotations

import secrets
from typing import Any

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from flare.protocol.errors import IntegrityError

SECRET_KEY_BYTES = 32
G1_BYTES = 128
G2_BYTES = 256
ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f624"
    "1eabfffeb153ffffb9feffffffffaaab",
    16,
)
_COORDINATE = 48
_PADDING = bytes(16)


class BlsError(IntegrityError):
    """Bytes that are not a usable BLS key, point or signature."""


def new_secret_key() -> bytes:
    """A uniformly random secret scalar in [1, r), as 32 big-endian bytes."""
    while True:  # rejection sampling: retries happen with probability about 1/2
        candidate = secrets.token_bytes(SECRET_KEY_BYTES)
        if 0 < int.from_bytes(candidate, "big") < ORDER:
            return candidate


def public_key(secret_key: bytes) -> bytes:
    """sk·G2, the 256-byte public key the contract stores the hash of."""
    return encode_g2(G2Point() * _scalar(secret_key))


def sign(secret_key: bytes, message: bytes, dst: bytes) -> bytes:
    """sk·H(message) under the domain separation tag `dst`: a 128-byte G1 point."""
    return encode_g1(G1Point.hash_to_curve(message, dst) * _scalar(secret_key))


def verify(public_key: bytes, message: bytes, dst: bytes, signature: bytes) -> str | None:
    """None when `signature` is `public_key`'s signature of `message`; else what is wrong.

    Peers send these, so a bad one is an expected outcome and comes back as a reason.
    """
    key = decode_g2(public_key, what="public key")
    if isinstance(key, str):
        return key
    point = decode_g1(signature, what="signature")
    if isinstance(point, str):
        return point
    if not signs(key, message, dst, point):
        return "the signature does not match this key and message"
    return None


def signs(key: G2Point, message: bytes, dst: bytes, signature: G1Point) -> bool:
    """The pairing check on decoded points: e(signature, G2) == e(H(message), key)."""
    hashed = G1Point.hash_to_curve(message, dst)
    return bool(GT.pairing_check([signature, hashed], [-G2Point(), key]))


def hash_to_g1(message: bytes, dst: bytes) -> bytes:
    """RFC 9380 hash_to_curve for G1 under `dst`, EIP-2537 encoded."""
    return encode_g1(G1Point.hash_to_curve(message, dst))


def encode_g1(point: G1Point) -> bytes:
    return _pad(point.to_xy_bytes_be())


def encode_g2(point: G2Point) -> bytes:
    return _pad(point.to_xy_bytes_be())


def decode_g1(data: bytes, *, what: str) -> G1Point | str:
    """The G1 point `data` encodes, or why the precompiles would refuse it."""
    point: G1Point | str = _decode(G1Point, data, G1_BYTES, what, "G1")
    return point


def decode_g2(data: bytes, *, what: str) -> G2Point | str:
    """The G2 point `data` encodes, or why the precompiles would refuse it."""
    point: G2Point | str = _decode(G2Point, data, G2_BYTES, what, "G2")
    return point


def _decode(group: Any, data: bytes, size: int, what: str, name: str) -> Any:
    """A point of `group` (G1Point or G2Point) other than the identity, or what is wrong."""
    raw = _unpad(data, size, what)
    if isinstance(raw, str):
        return raw
    try:
        point = group.from_xy_bytes_be(raw)  # checks the curve equation and the subgroup
    except Exception:  # arkworks raises a bare exception type for every decoding failure
        return f"{what} is not a point of the {name} subgroup"
    if point == group.identity():
        return f"{what} is the point at infinity"
    return point


def _pad(raw: bytes) -> bytes:
    return b"".join(_PADDING + raw[i : i + _COORDINATE] for i in range(0, len(raw), _COORDINATE))


def _unpad(data: bytes, size: int, what: str) -> bytes | str:
    """The unpadded coordinates, or why `data` is not an encoding of `size` bytes."""
    if len(data) != size:
        return f"{what} must be {size} bytes, got {len(data)}"
    chunks = [data[i : i + 64] for i in range(0, size, 64)]
    if any(chunk[:16] != _PADDING for chunk in chunks):
        return f"{what} has non-zero padding above a coordinate"
    if any(int.from_bytes(chunk[16:], "big") >= FIELD_MODULUS for chunk in chunks):
        return f"{what} has a coordinate that is not reduced modulo p"
    return b"".join(chunk[16:] for chunk in chunks)


def _scalar(secret_key: bytes) -> Scalar:
    if len(secret_key) != SECRET_KEY_BYTES:
        raise BlsError(
            f"a BLS secret key is {SECRET_KEY_BYTES} bytes, got {len(secret_key)}",
            hint="load the node's BLS key with `flare-node keys` rather than passing raw bytes",
        )
    value = int.from_bytes(secret_key, "big")
    if not 0 < value < ORDER:
        raise BlsError(
            "a BLS secret key must be a scalar in [1, r)",
            hint="create keys with `flare-node init` or `flare-node keys add-bls`",
        )
    return Scalar.from_be_bytes(secret_key)
