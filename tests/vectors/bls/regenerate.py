"""Regenerate flare-vectors.json: golden VRF proofs, proofs of possession, and refused points.

    .venv/bin/python tests/vectors/bls/regenerate.py

Secret keys are SHA-256 of "flare-bls-vector/key/<i>" read as an integer modulo r; seeds are
SHA-256 of "flare-bls-vector/seed/<j>". Proofs, outputs and proofs of possession come from
flare.protocol.vrf and are checked here against the independent py_ecc reference
(tests/unit/protocol/bls_reference.py) before anything is written; the hash-to-curve they rest
on is pinned by RFC 9380's own vectors (rfc9380-g1-ro.json). They fix the encodings, so another
implementation (an auditor's tool, the contract's tests) can check itself against them.

`bad_g1` and `bad_g2` are encodings every verifier must refuse, as the EIP-2537 precompiles
do; they are derived with py_ecc alone: the identity, non-zero padding, a coordinate >= p, a
point off the curve, and a point on the curve outside the prime-order subgroup.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "unit" / "protocol"))

import bls_reference as ref  # noqa: E402
from py_ecc.bls.hash_to_curve import map_to_curve_G1, map_to_curve_G2  # noqa: E402
from py_ecc.optimized_bls12_381 import FQ, FQ2, is_inf, multiply  # noqa: E402

from flare.protocol import sortition, vrf  # noqa: E402

ROUNDS = (1, 7, 2**64 + 5, 2**256 - 1)
CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
REGISTRANT = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")


def secret(i: int) -> bytes:
    value = int.from_bytes(hashlib.sha256(f"flare-bls-vector/key/{i}".encode()).digest(), "big")
    return (value % ref.curve_order or 1).to_bytes(32, "big")


def seed(j: int) -> bytes:
    return hashlib.sha256(f"flare-bls-vector/seed/{j}".encode()).digest()


def bad_points(good: bytes, outside: bytes, width: int) -> list[dict[str, str]]:
    nonzero_padding = bytearray(good)
    nonzero_padding[0] = 1
    x = int.from_bytes(good[16:64], "big")
    reduced_plus_p = ref.pad(x + ref.field_modulus) + good[64:]
    off_curve = bytearray(good)
    off_curve[-1] ^= 1
    return [
        {"why": "the point at infinity", "encoding": bytes(width).hex()},
        {"why": "non-zero padding", "encoding": bytes(nonzero_padding).hex()},
        {"why": "a coordinate not reduced modulo p", "encoding": reduced_plus_p.hex()},
        {"why": "not on the curve", "encoding": bytes(off_curve).hex()},
        {"why": "on the curve, outside the prime-order subgroup", "encoding": outside.hex()},
    ]


def main() -> None:
    keys = []
    for i in range(3):
        sk = secret(i)
        pk = vrf.public_key(sk)
        assert pk == ref.public_key(int.from_bytes(sk, "big"))
        keys.append({"secret_key": sk.hex(), "public_key": pk.hex()})

    proofs = []
    for i, key in enumerate(keys):
        for j, round_number in enumerate(ROUNDS[: 2 + i]):
            alpha = sortition.alpha_for(seed(j), round_number)
            proof = vrf.prove(bytes.fromhex(key["secret_key"]), alpha)
            assert proof == ref.sign(int(key["secret_key"], 16), alpha, vrf.VRF_DST)
            output = vrf.proof_to_output(proof)
            proofs.append(
                {
                    "key": i,
                    "seed": seed(j).hex(),
                    "round": str(round_number),
                    "alpha": alpha.hex(),
                    "proof": proof.hex(),
                    "output": output.hex(),
                    "rank": str(sortition.rank_of(output)),
                }
            )
    assert ref.verify(bytes.fromhex(keys[0]["public_key"]), bytes.fromhex(proofs[0]["alpha"]),
                      vrf.VRF_DST, bytes.fromhex(proofs[0]["proof"]))  # fmt: skip

    possession = []
    for i, key in enumerate(keys):
        message = vrf.possession_message(CHAIN_ID, CONTRACT, REGISTRANT)
        proof = vrf.prove_possession(bytes.fromhex(key["secret_key"]), CHAIN_ID, CONTRACT,
                                     REGISTRANT)  # fmt: skip
        assert proof == ref.sign(int(key["secret_key"], 16), message, vrf.POP_DST)
        possession.append(
            {
                "key": i,
                "chain_id": CHAIN_ID,
                "contract": CONTRACT.hex(),
                "registrant": REGISTRANT.hex(),
                "message": message.hex(),
                "proof": proof.hex(),
            }
        )

    g1_outside = map_to_curve_G1(FQ(5))
    assert not is_inf(multiply(g1_outside, ref.curve_order))
    g2_outside = map_to_curve_G2(FQ2([5, 7]))
    assert not is_inf(multiply(g2_outside, ref.curve_order))
    document = {
        "regenerate": __doc__.split("\n\n")[1].strip(),
        "about": " ".join(__doc__.split("\n\n")[2].split()),
        "vrf_dst": vrf.VRF_DST.decode(),
        "pop_dst": vrf.POP_DST.decode(),
        "keys": keys,
        "proofs": proofs,
        "possession": possession,
        "bad_g1": bad_points(bytes.fromhex(proofs[0]["proof"]), ref.encode_g1(g1_outside), 128),
        "bad_g2": bad_points(bytes.fromhex(keys[0]["public_key"]), ref.encode_g2(g2_outside), 256),
    }
    (HERE / "flare-vectors.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
