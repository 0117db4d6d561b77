"""`Web3Ledger`: the protocol's `Ledger` port over a deployed FlareRounds contract.

Works the same over the in-process chain and a JSON-RPC node. Every call goes through the
`Transactor`, so reverts arrive as the contract's own `ContractError` subclasses and transport
failures as `UnavailableError`s naming the endpoint. `open_ledger` checks that the address holds
a FlareRounds before anything is sent to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import Web3Exception

from flare.chain.artifact import Artifact, load_artifact
from flare.chain.connect import endpoint_of
from flare.chain.events import EventDecoder, fetch_events, snake
from flare.chain.reverts import RevertDecoder
from flare.chain.transact import Journal, Transactor
from flare.protocol.errors import ConfigError, FlareError
from flare.protocol.events import AggregateProposed, ChainEvent
from flare.protocol.ledger import ProposalReceipt, TxReceipt
from flare.protocol.rounds import (
    INTERFACE_VERSION,
    NodeInfo,
    Phase,
    Proposal,
    RoundConfig,
    RoundInfo,
    Seat,
    address_bytes,
)

FINALIZING_VOTE_GAS = 250_000
"""Gas limit floor of a vote: the finalizing vote takes ~182k (bench/gas.py), with headroom."""


class NoContractError(ConfigError):
    """Nothing is deployed at the address on this chain."""


class NotFlareRoundsError(ConfigError):
    """The address holds a contract that does not answer like FlareRounds."""


class UnsupportedVersionError(ConfigError):
    """The address holds a FlareRounds of an interface version this node does not speak."""


def word(value: bytes, what: str) -> bytes:
    """A `bytes32` argument, checked here so a wrong length fails with a clear message."""
    if len(value) != 32:
        raise ConfigError(f"{what} must be 32 bytes, got {len(value)}")
    return bytes(value)


def checksum(address: str) -> ChecksumAddress:
    """A validated, checksummed address (`ConfigError` for anything else)."""
    return to_checksum_address(address_bytes(address))


class Web3Ledger:
    """FlareRounds at `address`, sending from `private_key` (None: read-only).

    The keywords after `artifact` go to the `Transactor`: `journal` (a `TxJournal` such as the
    node's state), `confirmations`, `receipt_timeout` and the `after_broadcast` hook.
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        artifact: Artifact | None = None,
        private_key: bytes | None = None,
        *,
        poll_latency: float = 0.005,
        receipt_timeout: float = 120.0,
        journal: Journal | None = None,
        confirmations: int = 0,
        after_broadcast: Callable[[bytes], None] | None = None,
    ) -> None:
        self.w3 = w3
        self.artifact = artifact if artifact is not None else load_artifact()
        self._address = checksum(address)
        self._contract = w3.eth.contract(
            address=self._address,
            abi=self.artifact.abi,
            decode_tuples=True,
        )
        self._tx = Transactor(
            w3,
            RevertDecoder(self.artifact.abi),
            private_key,
            poll_latency=poll_latency,
            receipt_timeout=receipt_timeout,
            journal=journal,
            confirmations=confirmations,
            after_broadcast=after_broadcast,
        )
        self._decoder = EventDecoder(self.artifact.abi, self._address)
        self._chain_id = self._tx.call(lambda: int(w3.eth.chain_id))

    # ---------------------------------------------------------------- identity and chain

    @property
    def address(self) -> str:
        return self._address

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def account(self) -> str | None:
        return self._tx.address

    def block_number(self) -> int:
        return self._tx.call(lambda: int(self.w3.eth.block_number))

    def head(self) -> tuple[int, bytes]:
        block = self._tx.call(lambda: self.w3.eth.get_block("latest"))
        return int(block["number"]), bytes(block["hash"])

    def timestamp(self) -> int:
        return self._tx.call(lambda: int(self.w3.eth.get_block("latest")["timestamp"]))

    def balance(self) -> int:
        """The sending account's balance in wei (0 for a read-only ledger)."""
        account = self._tx.address
        if account is None:
            return 0
        return self._tx.call(
            lambda: int(self.w3.eth.get_balance(self.w3.to_checksum_address(account)))
        )

    def events(self, from_block: int, to_block: int | None = None) -> list[ChainEvent]:
        last = self.block_number() if to_block is None else to_block
        return self._tx.call(
            lambda: fetch_events(self.w3, self._decoder, self._address, from_block, last)
        )

    def code_matches_artifact(self) -> bool:
        """Whether the deployed runtime code is exactly this artifact's build."""
        code = self._tx.call(lambda: bytes(self.w3.eth.get_code(self._address)))
        return self.artifact.code_matches(code)

    # ---------------------------------------------------------------- transactions

    def _send(self, fn: ContractFunction, *, min_gas: int = 0) -> TxReceipt:
        receipt = self._tx.send(fn, min_gas=min_gas)
        return TxReceipt(
            tx_hash=bytes(receipt["transactionHash"]),
            block=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=tuple(self._decoder.decode_all(receipt["logs"])),
        )

    def register(self, bls_key: bytes, proof_of_possession: bytes, peer_key: bytes) -> TxReceipt:
        return self._send(
            self._contract.functions.register(
                bytes(bls_key), bytes(proof_of_possession), word(peer_key, "peer key")
            )
        )

    def deregister(self) -> TxReceipt:
        return self._send(self._contract.functions.deregister())

    def submit_update(self, round: int, cid: bytes, num_samples: int) -> TxReceipt:
        return self._send(self._contract.functions.submitUpdate(round, cid, num_samples))

    def claim_seat(self, round: int, proof: bytes, bls_key: bytes) -> TxReceipt:
        return self._send(self._contract.functions.claimSeat(round, bytes(proof), bytes(bls_key)))

    def propose_aggregate(self, round: int, cid: bytes, updates_root: bytes) -> ProposalReceipt:
        sent = self._send(
            self._contract.functions.proposeAggregate(
                round, cid, word(updates_root, "updates root")
            )
        )
        ids = [e.proposal_id for e in sent.events if isinstance(e, AggregateProposed)]
        return ProposalReceipt(
            tx_hash=sent.tx_hash,
            block=sent.block,
            gas_used=sent.gas_used,
            events=sent.events,
            proposal_id=ids[0],
        )

    def vote(self, round: int, proposal_id: int, approve: bool) -> TxReceipt:
        # Estimated while another vote may still be in flight: if that one lands first, this
        # vote is the one that finalizes the round and opens the next (about 182k gas, where an
        # ordinary vote takes 47k). Unused gas is not charged, so the limit covers that case.
        return self._send(
            self._contract.functions.vote(round, proposal_id, approve), min_gas=FINALIZING_VOTE_GAS
        )

    def close_round(self, round: int) -> TxReceipt:
        return self._send(self._contract.functions.closeRound(round))

    def start(self) -> TxReceipt:
        return self._send(self._contract.functions.start())

    def allow(self, node: str) -> TxReceipt:
        return self._send(self._contract.functions.allow(checksum(node)))

    def disallow(self, node: str) -> TxReceipt:
        return self._send(self._contract.functions.disallow(checksum(node)))

    def set_allowlist(self, enabled: bool) -> TxReceipt:
        return self._send(self._contract.functions.setAllowlist(enabled))

    def set_config(self, config: RoundConfig) -> TxReceipt:
        return self._send(self._contract.functions.setConfig(config.as_tuple()))

    def pause(self) -> TxReceipt:
        return self._send(self._contract.functions.pause())

    def unpause(self) -> TxReceipt:
        return self._send(self._contract.functions.unpause())

    def transfer_ownership(self, new_owner: str) -> TxReceipt:
        return self._send(self._contract.functions.transferOwnership(checksum(new_owner)))

    def accept_ownership(self) -> TxReceipt:
        return self._send(self._contract.functions.acceptOwnership())

    # ---------------------------------------------------------------- views

    def _view(self, fn: ContractFunction) -> Any:
        return self._tx.call(fn.call)

    def version(self) -> int:
        return int(self._view(self._contract.functions.version()))

    def owner(self) -> str:
        return str(self._view(self._contract.functions.owner()))

    def pending_owner(self) -> str:
        return str(self._view(self._contract.functions.pendingOwner()))

    def paused(self) -> bool:
        return bool(self._view(self._contract.functions.paused()))

    def model_spec_hash(self) -> bytes:
        return bytes(self._view(self._contract.functions.modelSpecHash()))

    def genesis_model(self) -> bytes:
        return bytes(self._view(self._contract.functions.genesisModel()))

    def allowlist_enabled(self) -> bool:
        return bool(self._view(self._contract.functions.allowlistEnabled()))

    def config(self) -> RoundConfig:
        return RoundConfig.from_tuple(self._view(self._contract.functions.config()))

    def current_round(self) -> int:
        return int(self._view(self._contract.functions.currentRound()))

    def phase(self, round: int) -> Phase:
        return Phase(self._view(self._contract.functions.phase(round)))

    def get_round(self, round: int) -> RoundInfo:
        view = self._view(self._contract.functions.getRound(round))._asdict()
        fields = {snake(name): value for name, value in view.items()}
        fields["phase"] = Phase(fields["phase"])
        for name in ("seed", "vrf_accumulator", "review_policy"):
            fields[name] = bytes(fields[name])
        return RoundInfo(**fields)

    def get_node(self, node: str) -> NodeInfo:
        address = checksum(node)
        view = self._view(self._contract.functions.getNode(address))
        return NodeInfo(
            address=address,
            registered=bool(view.registered),
            allowed=bool(view.allowed),
            bls_key_hash=bytes(view.blsKeyHash),
            peer_key=bytes(view.peerKey),
            eligible_from=int(view.eligibleFrom),
        )

    def bls_key_owner(self, bls_key_hash: bytes) -> str:
        key = word(bls_key_hash, "BLS key hash")
        return str(self._view(self._contract.functions.blsKeyOwner(key)))

    def node_count(self) -> int:
        return int(self._view(self._contract.functions.nodeCount()))

    def is_eligible(self, round: int, node: str) -> bool:
        return bool(self._view(self._contract.functions.isEligible(round, checksum(node))))

    def update_of(self, round: int, node: str) -> bytes:
        return bytes(self._view(self._contract.functions.updateOf(round, checksum(node))))

    def seats(self, round: int) -> Sequence[Seat]:
        return [
            Seat(holder=str(seat.holder), rank=int(seat.rank))
            for seat in self._view(self._contract.functions.seats(round))
        ]

    def is_seat_holder(self, round: int, node: str) -> bool:
        return bool(self._view(self._contract.functions.isSeatHolder(round, checksum(node))))

    def has_voted(self, round: int, node: str) -> bool:
        return bool(self._view(self._contract.functions.hasVoted(round, checksum(node))))

    def get_proposal(self, round: int, proposal_id: int) -> Proposal:
        view = self._view(self._contract.functions.getProposal(round, proposal_id))
        return Proposal(
            round=round,
            proposal_id=proposal_id,
            proposer=str(view.proposer),
            cid=bytes(view.cid),
            updates_root=bytes(view.updatesRoot),
            approvals=int(view.approvals),
            rejections=int(view.rejections),
        )

    def global_model(self) -> tuple[int, bytes]:
        round, cid = self._view(self._contract.functions.globalModel())
        return int(round), bytes(cid)

    def base_model(self, round: int) -> bytes:
        return bytes(self._view(self._contract.functions.baseModel(round)))


def open_ledger(
    w3: Web3,
    address: str,
    *,
    artifact: Artifact | None = None,
    private_key: bytes | None = None,
    poll_latency: float = 0.005,
    receipt_timeout: float = 120.0,
    journal: Journal | None = None,
    confirmations: int = 0,
    after_broadcast: Callable[[bytes], None] | None = None,
) -> Web3Ledger:
    """A ledger for `address`, after checking a FlareRounds answers there.

    The runtime code is compared with the artifact; code from another build is accepted when it
    answers FlareRounds' views (an older deployment), anything else is refused.
    """
    ledger = Web3Ledger(
        w3,
        address,
        artifact,
        private_key,
        poll_latency=poll_latency,
        receipt_timeout=receipt_timeout,
        journal=journal,
        confirmations=confirmations,
        after_broadcast=after_broadcast,
    )
    where = f"{ledger.address} on chain {ledger.chain_id} ({endpoint_of(w3)})"
    code = ledger._tx.call(lambda: bytes(w3.eth.get_code(ledger._address)))
    if not code:
        raise NoContractError(
            f"no contract at {where}",
            hint="check the contract address and the RPC endpoint (--address/--deployment and "
            "--rpc, or a node config's [chain] table): the deployment may be on another chain",
        )
    if ledger.artifact.code_matches(code):
        return ledger
    answers = (FlareError, Web3Exception, DecodingError, ValueError)
    try:
        version: int | None = ledger.version()
    except answers:
        version = None  # interface version 1 had no version(), and other contracts have none
    try:
        ledger.model_spec_hash()
        ledger.current_round()
    except answers as error:
        raise NotFlareRoundsError(
            f"the contract at {where} is not a FlareRounds",
            hint="check the address; it answers none of FlareRounds' views",
        ) from error
    if version != INTERFACE_VERSION:
        raise UnsupportedVersionError(
            f"the FlareRounds at {where} speaks interface version {version or 1}; this "
            f"flare-node speaks version {INTERFACE_VERSION}",
            hint="the contract is not upgradeable: the deployer redeploys and moves the "
            "federation (docs/deployer.md, 'Redeploying')",
        )
    try:
        ledger.config()
    except answers as error:
        raise NotFlareRoundsError(
            f"the contract at {where} claims version {version} but does not answer its views",
            hint="check the address",
        ) from error
    return ledger
