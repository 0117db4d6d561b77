"""The chains the ledger conformance suite runs on: the in-process EVM and a real anvil.

`AnvilProcess` (tests/support/anvil_process.py) starts a real anvil. `Chain.snapshot` and
`revert` let a suite register nodes once per session: on the in-process EVM a registration
checks a BLS pairing in pure Python (most of a second), so tests start from a snapshot taken
after it. Kept out of conftest.py so test modules can import it by a unique name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flare_testing import POLICY_CID
from web3 import Web3

from flare.chain.connect import connect
from flare.chain.deploy import Deployment
from flare.chain.devchain import advance_time, dev_account_key
from flare.chain.ledger import Web3Ledger, open_ledger
from flare.protocol import sortition, vrf
from flare.protocol.ledger import TxReceipt
from flare.protocol.rounds import RoundConfig, address_bytes

ROOT = Path(__file__).resolve().parents[3]

SPEC_HASH = bytes.fromhex("5e" * 32)
GENESIS_CID = bytes.fromhex("01551220") + bytes(range(32))


@dataclass
class Chain:
    """A chain under test: its URL, its dev keys and its clock."""

    kind: str
    url: str
    w3: Web3 = field(init=False)

    def __post_init__(self) -> None:
        self.w3 = connect(self.url)

    def key(self, index: int) -> bytes:
        return dev_account_key(self.w3.eth.chain_id, index)

    def advance(self, seconds: int) -> int:
        return advance_time(self.w3, seconds)

    def snapshot(self) -> object:
        """A handle to the chain's state now (eth-tester's snapshot, anvil's evm_snapshot)."""
        if self.kind == "eth-tester":
            return self.w3.provider.ethereum_tester.take_snapshot()  # type: ignore[attr-defined]
        return self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(self, handle: object) -> object:
        """Go back to `handle`'s state; returns the handle to use next time (anvil spends one)."""
        if self.kind == "eth-tester":
            self.w3.provider.ethereum_tester.revert_to_snapshot(handle)  # type: ignore[attr-defined]
            return handle
        reverted = self.w3.provider.make_request("evm_revert", [handle])  # type: ignore[arg-type]
        assert reverted["result"] is True, reverted
        return self.snapshot()


@dataclass
class Deployed:
    """A fresh FlareRounds: the owner's ledger and one ledger per dev account."""

    chain: Chain
    record: Deployment
    owner: Web3Ledger
    ledgers: dict[int, Web3Ledger] = field(default_factory=dict)

    def node(self, index: int) -> Web3Ledger:
        """The ledger of dev account `index` (0 is the owner)."""
        if index not in self.ledgers:
            self.ledgers[index] = open_ledger(
                self.chain.w3, self.record.address, private_key=self.chain.key(index)
            )
        return self.ledgers[index]


DeployFactory = Callable[..., Deployed]


def federation_config(**changes: int) -> RoundConfig:
    """k=3, quorum 60%, training 100 s with no minimum claim window, review 50 s."""
    settings = {
        "committee_size": 3,
        "quorum_bps": 6000,
        "train_window": 100,
        "review_window": 50,
        "min_claim_window": 0,
        "min_updates": 1,
        "max_samples": 1000,
        **changes,
    }
    return RoundConfig(**settings, review_policy=POLICY_CID)


@dataclass
class Member:
    """A registered node: its ledger and its BLS secret (public key, address at hand)."""

    ledger: Web3Ledger
    secret: bytes

    @property
    def address(self) -> str:
        return str(self.ledger.account)

    @property
    def bls_key(self) -> bytes:
        return vrf.public_key(self.secret)

    def proof(self, seed: bytes, round_number: int) -> bytes:
        return vrf.prove(self.secret, sortition.alpha_for(seed, round_number))

    def claim(self, round_number: int) -> TxReceipt:
        seed = self.ledger.get_round(round_number).seed
        return self.ledger.claim_seat(round_number, self.proof(seed, round_number), self.bls_key)


@dataclass
class Federation:
    """A deployment with registered members, not started; reverted to this state per test."""

    deployed: Deployed
    members: list[Member]

    @property
    def owner(self) -> Web3Ledger:
        return self.deployed.owner

    def by_rank(self, round_number: int) -> list[Member]:
        """The members ordered by their seat in `round_number`, lowest (best) first."""
        seed = self.owner.get_round(round_number).seed

        def word(member: Member) -> int:
            output = vrf.proof_to_output(member.proof(seed, round_number))
            return sortition.seat_word(sortition.rank_of(output), address_bytes(member.address))

        return sorted(self.members, key=word)
