"""Helpers several test suites share: CIDs, a review policy to deploy with, node registration.

On the test path through `pythonpath` in pyproject.toml, so suites import it by this unique
name instead of copying it.
"""

from __future__ import annotations

from flare.protocol import vrf
from flare.protocol.aggregate import Rule
from flare.protocol.ledger import Ledger, TxReceipt
from flare.protocol.policy import ReviewPolicy
from flare.protocol.rounds import address_bytes
from flare.protocol.unixfs import file_cid

POLICY = ReviewPolicy(rule=Rule("fedavg"), norm_bound=1000.0, sample_cap=100_000)
POLICY_CID = file_cid(POLICY.to_bytes()).binary  # binary CIDv1 the contract's config holds


def cid_of(data: bytes) -> str:
    """The CID text a store gives `data`."""
    return file_cid(data).text


def peer_key(secret: bytes) -> bytes:
    """A stand-in ed25519 peer key derived from a node's BLS secret (never zero)."""
    return vrf.public_key(secret)[-32:]


def register(ledger: Ledger, secret: bytes | None = None) -> tuple[bytes, TxReceipt]:
    """Register `ledger`'s account with a BLS key (fresh unless given) and its proof of
    possession; returns the secret and the receipt."""
    secret = secret if secret is not None else vrf.new_secret_key()
    possession = vrf.prove_possession(
        secret, ledger.chain_id, address_bytes(ledger.address), address_bytes(str(ledger.account))
    )
    receipt = ledger.register(vrf.public_key(secret), possession, peer_key(secret))
    return secret, receipt
