"""An independent BLS12-381 reference on py_ecc, to cross-check flare.protocol.bls (arkworks).

py_ecc is the Ethereum Foundation's pure-Python implementation (the one py-evm's EIP-2537
precompiles run on): slow (about 0.5 s a pairing) but written independently of arkworks, so
agreement between the two on encodings, hash-to-curve, keys and pairings is evidence neither
is wrong. Points travel in the EIP-2537 encodings the contract reads.
"""

from __future__ import annotations

import hashlib
from typing import Any

from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.optimized_bls12_381 import (
    FQ,
    FQ2,
    FQ12,
    G1,
    G2,
    Z1,
    Z2,
    curve_order,
    field_modulus,
    final_exponentiate,
    is_inf,
    multiply,
    neg,
    normalize,
    pairing,
)

Point = tuple[Any, Any, Any]


def pad(value: int) -> bytes:
    return bytes(16) + value.to_bytes(48, "big")


def encode_g1(point: Point) -> bytes:
    if is_inf(point):
        return bytes(128)
    x, y = normalize(point)
    return pad(int(x)) + pad(int(y))


def encode_g2(point: Point) -> bytes:
    if is_inf(point):
        return bytes(256)
    x, y = normalize(point)
    return b"".join(pad(int(c)) for c in (*x.coeffs, *y.coeffs))


def decode_g1(data: bytes) -> Point:
    """The point, trusting the encoding (use only on values the test made or checked)."""
    x, y = (int.from_bytes(data[i + 16 : i + 64], "big") for i in (0, 64))
    if x == y == 0:
        return Z1
    return (FQ(x), FQ(y), FQ(1))


def decode_g2(data: bytes) -> Point:
    c = [int.from_bytes(data[i + 16 : i + 64], "big") for i in range(0, 256, 64)]
    if not any(c):
        return Z2
    return (FQ2([c[0], c[1]]), FQ2([c[2], c[3]]), FQ2([1, 0]))


def hash_to_g1(message: bytes, dst: bytes) -> bytes:
    return encode_g1(hash_to_G1(message, dst, hashlib.sha256))


def public_key(secret: int) -> bytes:
    return encode_g2(multiply(G2, secret))


def sign(secret: int, message: bytes, dst: bytes) -> bytes:
    return encode_g1(multiply(hash_to_G1(message, dst, hashlib.sha256), secret))


def verify(public: bytes, message: bytes, dst: bytes, signature: bytes) -> bool:
    """e(signature, G2) == e(H(message), public), computed by py_ecc."""
    left = pairing(G2, decode_g1(signature), final_exponentiate=False)
    right = pairing(decode_g2(public), hash_to_G1(message, dst, hashlib.sha256),
                    final_exponentiate=False)  # fmt: skip
    return bool(final_exponentiate(left * right.inv()) == FQ12.one())


def in_g1_subgroup(data: bytes) -> bool:
    return bool(is_inf(multiply(decode_g1(data), curve_order)))


__all__ = [
    "G1",
    "G2",
    "curve_order",
    "decode_g1",
    "decode_g2",
    "encode_g1",
    "encode_g2",
    "field_modulus",
    "hash_to_g1",
    "in_g1_subgroup",
    "neg",
    "public_key",
    "sign",
    "verify",
]
