"""`Web3Ledger`: the protocol's `Ledger` port over a deployed FlareRounds contract.

Works the same over the in-process chain and a JSON-RPC node. Every call goes through the
`Transactor`, so reverts arrive as the contract's own `ContractError` subclasses and transport
failures as `UnavailableError`s naming the endpoint. `open_ledger` checks that the address holds
a FlareRounds before anything is sent to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import BlockNotFound, Web3Exception
from web3.types import FilterParams

from flare.chain.artifact import Artifact, load_artifact
from flare.chain.calls import ContractCalls
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
CLAIM_SEAT_GAS = 400_000
"""Gas limit of a seat claim, sent without an estimate. Its cost is bounded: one BLS
verification at EIP-2537 prices and one step down a heap of at most 64 seats; bench/gas.py
measures about 225k, 270k at most with 64 seats in the worst order. Estimating it re-runs the
BLS verification a dozen times on the RPC node (about 50 ms on anvil against 5 ms for the
one simulation); unused gas is not charged."""


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
        self._calls = ContractCalls(self.artifact.abi)
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
        number, hash_ = self._block("latest")
        assert number is not None  # the latest block always exists
        return number, hash_

    def block_hash(self, number: int) -> bytes | None:
        found, hash_ = self._block(number)
        return None if found is None else hash_

    def _block(self, which: int | str) -> tuple[int | None, bytes]:
        """(number, hash) of a block, (None, b"") for none; read every loop step, so raw."""
        if self._tx.embedded:
            try:
                block = self._tx.call(lambda: self.w3.eth.get_block(cast(Any, which)))
            except BlockNotFound:
                return None, b""
            return int(block["number"]), bytes(block["hash"])
        tag = which if isinstance(which, str) else hex(which)
        with self._tx.guard():
            raw = self._tx.rpc("eth_getBlockByNumber", [tag, False])
        if raw is None:
            return None, b""
        return int(raw["number"], 16), bytes.fromhex(str(raw["hash"])[2:])

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
            lambda: fetch_events(self._logs, self._decoder, self._address, from_block, last)
        )

    def _logs(self, query: dict[str, Any]) -> Sequence[Mapping[str, Any]]:
        if self._tx.embedded:
            return self.w3.eth.get_logs(cast(FilterParams, query))
        blocks = {"fromBlock": hex(query["fromBlock"]), "toBlock": hex(query["toBlock"])}
        return cast(Sequence[Mapping[str, Any]], self._tx.rpc("eth_getLogs", [{**query, **blocks}]))

    def code_matches_artifact(self) -> bool:
        """Whether the deployed runtime code is exactly this artifact's build."""
        code = self._tx.call(lambda: bytes(self.w3.eth.get_code(self._address)))
        return self.artifact.code_matches(code)

    # ---------------------------------------------------------------- transactions

    def _send(self, fn: ContractFunction, *, min_gas: int = 0, gas: int | None = None) -> TxReceipt:
        receipt = self._tx.send(fn, min_gas=min_gas, gas=gas)
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
        return self._send(
            self._contract.functions.claimSeat(round, bytes(proof), bytes(bls_key)),
            gas=CLAIM_SEAT_GAS,
        )

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

    def _view(self, name: str, *args: Any) -> Any:
        function = self._calls[name]
        return function.decode(self._tx.read(self._address, function.encode(args)))

    def version(self) -> int:
        return int(self._view("version"))

    def owner(self) -> str:
        return str(self._view("owner"))

    def pending_owner(self) -> str:
        return str(self._view("pendingOwner"))

    def paused(self) -> bool:
        return bool(self._view("paused"))

    def model_spec_hash(self) -> bytes:
        return bytes(self._view("modelSpecHash"))

    def genesis_model(self) -> bytes:
        return bytes(self._view("genesisModel"))

    def allowlist_enabled(self) -> bool:
        return bool(self._view("allowlistEnabled"))

    def config(self) -> RoundConfig:
        return RoundConfig.from_tuple(self._view("config"))

    def current_round(self) -> int:
        return int(self._view("currentRound"))

    def phase(self, round: int) -> Phase:
        return Phase(self._view("phase", round))

    def get_round(self, round: int) -> RoundInfo:
        view = self._view("getRound", round)._asdict()
        fields = {snake(name): value for name, value in view.items()}
        fields["phase"] = Phase(fields["phase"])
        for name in ("seed", "vrf_accumulator", "review_policy"):
            fields[name] = bytes(fields[name])
        return RoundInfo(**fields)

    def get_node(self, node: str) -> NodeInfo:
        address = checksum(node)
        view = self._view("getNode", address)
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
        return str(self._view("blsKeyOwner", key))

    def node_count(self) -> int:
        return int(self._view("nodeCount"))

    def is_eligible(self, round: int, node: str) -> bool:
        return bool(self._view("isEligible", round, checksum(node)))

    def update_of(self, round: int, node: str) -> bytes:
        return bytes(self._view("updateOf", round, checksum(node)))

    def seats(self, round: int) -> Sequence[Seat]:
        return [
            Seat(holder=str(seat.holder), rank=int(seat.rank))
            for seat in self._view("seats", round)
        ]

    def is_seat_holder(self, round: int, node: str) -> bool:
        return bool(self._view("isSeatHolder", round, checksum(node)))

    def has_voted(self, round: int, node: str) -> bool:
        return bool(self._view("hasVoted", round, checksum(node)))

    def get_proposal(self, round: int, proposal_id: int) -> Proposal:
        view = self._view("getProposal", round, proposal_id)
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
        round, cid = self._view("globalModel")
        return int(round), bytes(cid)

    def base_model(self, round: int) -> bytes:
        return bytes(self._view("baseModel", round))


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
