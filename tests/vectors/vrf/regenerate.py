"""Regenerate flare-vectors.json: sortition golden values and points every verifier must refuse.

    .venv/bin/python tests/vectors/vrf/regenerate.py

`sortition` entries: secret keys and seeds are SHA-256 of the UTF-8 text
"flare-vrf-vector/key/<i>" and "flare-vrf-vector/seed/<j>"; alpha = seed || uint256(round);
proof, beta and output (= beta[:32], what claimSeat sends) come from flare.protocol.vrf, whose
conformance rests on the RFC 9381 vectors in rfc9381-b3.json. They pin the encoding so other
implementations (the contract's tests, an auditor's tool) can check theirs against it.

`bad_points` are 32-byte encodings that must be refused as a public key or as Gamma. They are
derived here with a few lines of textbook edwards25519 arithmetic over Python integers (no
libsodium), so they do not depend on the code under test: the eight small-order points, every
non-canonical encoding (y >= p, and x = 0 with the sign bit set), encodings of y with no
matching x, and a valid key plus a point of order 8 (a mixed-order key).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flare.protocol import sortition, vrf

HERE = Path(__file__).resolve().parent
P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
ROUNDS = (0, 1, 7, 2**64 + 5, 2**256 - 1)
Point = tuple[int, int]


def sqrt_mod_p(value: int) -> int | None:
    """A square root mod p (p = 5 mod 8, RFC 8032 §5.1.3), or None for a non-residue."""
    root = pow(value, (P + 3) // 8, P)
    if (root * root - value) % P:
        root = root * SQRT_M1 % P
    return None if (root * root - value) % P else root


def recover_x(y: int, sign: int) -> int | None:
    """x of the curve point with this y (taken mod p) and x's low bit `sign`, or None."""
    y %= P
    x = sqrt_mod_p((y * y - 1) * pow(D * y * y + 1, -1, P) % P)
    if x is None:
        return None
    return (P - x) % P if (x & 1) != sign else x


def add(a: Point, b: Point) -> Point:
    """Edwards addition on -x^2 + y^2 = 1 + d·x^2·y^2 (complete: no special cases)."""
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def times8(point: Point) -> Point:
    for _ in range(3):
        point = add(point, point)
    return point


def encode(point: Point) -> bytes:
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little")


def decode(encoding: bytes) -> Point:
    value = int.from_bytes(encoding, "little")
    x = recover_x(value & (2**255 - 1), value >> 255)
    if x is None:
        raise ValueError("not on the curve")
    return x, (value & (2**255 - 1)) % P


def small_order_points() -> list[bytes]:
    """The eight points P with 8·P = O.

    Orders 1, 2, 4: y = 1, y = -1, y = 0. Order 8: doubling gives y = 0, so x^2 = -y^2, and
    on the curve that means d·y^4 + 2·y^2 - 1 = 0, i.e. y^2 = (-1 ± sqrt(1 + d)) / d.
    """
    ys = [1, P - 1, 0]
    root = sqrt_mod_p((1 + D) % P)
    if root is None:
        raise SystemExit("1 + d is not a square: wrong curve constant")
    for r in (root, P - root):
        y = sqrt_mod_p((r - 1) * pow(D, -1, P) % P)
        if y is not None:
            ys += [y, P - y]
    points = {
        encode((x, y)) for y in ys for sign in (0, 1) if (x := recover_x(y, sign)) is not None
    }
    if len(points) != 8 or any(times8(decode(e)) != (0, 1) for e in points):
        raise SystemExit("small-order point derivation went wrong")
    return sorted(points)


def bad_points(valid_key: bytes) -> list[dict[str, str]]:
    entries = [{"point": e.hex(), "why": "small order"} for e in small_order_points()]
    for y in range(P, 2**255):
        for sign in (0, 1):
            encoding = (y | sign << 255).to_bytes(32, "little")
            on_curve = recover_x(y, sign) is not None
            why = "non-canonical y >= p" + ("" if on_curve else ", not on the curve")
            entries.append({"point": encoding.hex(), "why": why})
    for y in (1, P - 1):
        encoding = (y | 1 << 255).to_bytes(32, "little")
        entries.append({"point": encoding.hex(), "why": "non-canonical: x = 0 with sign bit set"})
    off_curve = [y for y in range(2, 200) if recover_x(y, 0) is None][:4]
    for y in off_curve:
        entries.append({"point": y.to_bytes(32, "little").hex(), "why": "not on the curve"})
    order8 = next(e for e in small_order_points() if decode(e)[1] not in (0, 1, P - 1))
    mixed = encode(add(decode(valid_key), decode(order8)))
    entries.append({"point": mixed.hex(), "why": "mixed order: valid key plus a point of order 8"})
    return entries


def sortition_vectors() -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for i in range(3):
        secret = hashlib.sha256(f"flare-vrf-vector/key/{i}".encode()).digest()
        seed = hashlib.sha256(f"flare-vrf-vector/seed/{i}".encode()).digest()
        for round_number in ROUNDS:
            alpha = sortition.alpha_for(seed, round_number)
            proof = vrf.prove(secret, alpha)
            beta = vrf.proof_to_hash(proof)
            entries.append(
                {
                    "sk": secret.hex(),
                    "pk": vrf.public_key(secret).hex(),
                    "seed": seed.hex(),
                    "round": str(round_number),
                    "alpha": alpha.hex(),
                    "proof": proof.hex(),
                    "beta": beta.hex(),
                    "output": sortition.rank_value(beta).hex(),
                }
            )
    return entries


def main() -> None:
    valid_key = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    document = {
        "description": " ".join(" ".join(__doc__.split("\n\n")[2:4]).split()),
        "regenerate": ".venv/bin/python tests/vectors/vrf/regenerate.py",
        "sortition": sortition_vectors(),
        "bad_points": bad_points(valid_key),
    }
    path = HERE / "flare-vectors.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    counts = f"{len(document['sortition'])} sortition, {len(document['bad_points'])} bad points"
    print(f"wrote {path}: {counts}")


if __name__ == "__main__":
    main()
