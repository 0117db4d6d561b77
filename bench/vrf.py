"""BLS VRF prove/verify throughput next to PyNaCl's ed25519 sign/verify, in the same run.

    .venv/bin/python bench/vrf.py [--seconds 1.0] [--json]

Ed25519 signing and verification (libsodium, C) are the baseline every node already runs for
its gossip signatures. A BLS VRF proof (py-arkworks-bls12381, Rust) is a hash to G1 and one G1
multiplication; verifying one decodes and subgroup-checks both points and computes a two-pair
pairing, which dominates. Expect ratios near 0.05 (prove) and 0.03 (verify): a node proves
once and an auditor checks k proofs per round, so even that is milliseconds a round.
The figures are printed, never asserted: compare ratios across runs, not rates across machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from collections.abc import Callable

import nacl.signing

from flare.protocol import sortition, vrf


def rate(operation: Callable[[int], object], seconds: float) -> float:
    """Operations per second over at least `seconds`, after a short warm-up."""
    for i in range(20):
        operation(i)
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            operation(count)
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    secret = (int.from_bytes(hashlib.sha256(b"bench/vrf").digest(), "big") % 2**250).to_bytes(
        32, "big"
    )
    public = vrf.public_key(secret)
    seed = hashlib.sha256(b"bench/seed").digest()
    alphas = [sortition.alpha_for(seed, r) for r in range(256)]
    proofs = [vrf.prove(secret, alpha) for alpha in alphas]
    signer = nacl.signing.SigningKey(secret)
    verifier = signer.verify_key
    signed = [signer.sign(alpha) for alpha in alphas]

    def vrf_verify(i: int) -> None:
        if isinstance(vrf.verify(public, alphas[i % 256], proofs[i % 256]), vrf.InvalidProof):
            raise SystemExit("benchmark proof did not verify")

    figures = {
        "vrf_prove_per_s": rate(lambda i: vrf.prove(secret, alphas[i % 256]), args.seconds),
        "vrf_verify_per_s": rate(vrf_verify, args.seconds),
        "ed25519_sign_per_s": rate(lambda i: signer.sign(alphas[i % 256]), args.seconds),
        "ed25519_verify_per_s": rate(lambda i: verifier.verify(signed[i % 256]), args.seconds),
    }
    figures["prove_vs_sign"] = figures["vrf_prove_per_s"] / figures["ed25519_sign_per_s"]
    figures["verify_vs_verify"] = figures["vrf_verify_per_s"] / figures["ed25519_verify_per_s"]

    if args.json:
        print(json.dumps({"machine": platform.machine(), **figures}, indent=2))
        return
    print(f"BLS12-381 VRF vs PyNaCl ed25519 ({platform.machine()}, one core)")
    print(
        f"  prove   {figures['vrf_prove_per_s']:9.0f}/s   sign    "
        f"{figures['ed25519_sign_per_s']:9.0f}/s   ratio {figures['prove_vs_sign']:.2f}"
    )
    print(
        f"  verify  {figures['vrf_verify_per_s']:9.0f}/s   verify  "
        f"{figures['ed25519_verify_per_s']:9.0f}/s   ratio {figures['verify_vs_verify']:.2f}"
    )


if __name__ == "__main__":
    main()
