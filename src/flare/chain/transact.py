"""Sign, send and confirm transactions; turn every way one can fail into a `FlareError`.

On a node, each transaction is simulated first (gas estimation, or a single `eth_call` for a
call of bounded cost sent at a fixed limit), so a revert surfaces before anything is signed,
decoded into the contract's own error. It is then signed locally and sent;
the HTTP provider's bounded retries re-send the same signed bytes, which is idempotent (same
hash, same nonce). A mined transaction with status 0 (state changed between simulation and
mining, or out of gas) is replayed to recover the reason. The in-process chain skips the
simulation: it executes in Python, where a BLS pairing alone takes most of a second, so a
transaction runs once and only a failed one is replayed for its reason (its nonce is spent,
which costs nothing on a dev chain). A request the
node answers with a JSON-RPC error (insufficient funds, a stale nonce, a log query over its
limits) becomes a `RequestRejectedError` carrying the node's own message.

A node runs unattended, so the hazards of a real chain are handled here rather than left to
mine later:

- Nonces come from the account's *mined* count. An account has one sender that waits for each
  receipt, so a transaction still pending when the next one is signed is stuck (its wait timed
  out, or the process died): the new one takes its nonce and outbids it by 12.5% (the usual
  replacement rule), found through the journal, so the stuck one can never land late.
- A transaction the node forgets (a reorg dropped it, or its pool evicted it) fails at once
  with `TransactionDroppedError` instead of waiting out the receipt timeout; with
  `confirmations`, a receipt counts only once that many blocks are on top of it, and is
  re-read then, following the transaction if a reorg moved it.
- Once a transaction is signed, a lost connection is a `TransactionInDoubtError` that names it:
  it may have been sent, and the caller checks the chain before sending it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from eth_utils.exceptions import ValidationError as EvmValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint, TxParams

from flare.chain.connect import RpcUnavailableError, endpoint_of, is_embedded, rpc_errors
from flare.chain.reverts import RevertDecoder
from flare.protocol.errors import ConfigError, FlareError, UnavailableError
from flare.protocol.ledger_errors import RevertedError

T = TypeVar("T")

GAS_MARGIN = 1.25  # headroom over the estimate: estimates are taken on the state before mining
EMBEDDED_GAS_LIMIT = 12_000_000  # above a FlareRounds deployment, below the block gas limit
# A replacement must outbid the pending transaction at its nonce: geth and most nodes want
# 10% more on both the fee cap and the tip; 12.5% (1/8) clears that with integer rounding.
REPLACEMENT_BUMP_DIVISOR = 8


class ReadOnlyLedgerError(ConfigError):
    """A transaction was asked of a ledger opened without a key."""


class RequestRejectedError(FlareError, RuntimeError):
    """The node answered a request with a JSON-RPC error instead of a result."""


class TransactionRejectedError(RequestRejectedError):
    """The node refused the transaction (funds, nonce, fee) before it was mined."""


class TransactionRevertedError(RevertedError):
    """The transaction was mined but failed, and replaying it gave no reason.

    A contract refusal like any other (a `ContractError`): usually a race with another
    transaction in the same block, so a caller re-reads the state rather than giving up.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(error_name="TransactionReverted", message=message, hint=hint)


class ReceiptTimeoutError(UnavailableError):
    """The transaction was sent but not mined (or not confirmed) in time.

    `tx_hash` names it: a later send from the account replaces it if it is still pending.
    """

    def __init__(
        self, message: str, *, hint: str | None = None, tx_hash: bytes | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.tx_hash = tx_hash


class TransactionDroppedError(UnavailableError):
    """The node knows the transaction no more: neither mined nor pending.

    An `UnavailableError`, so the node loop retries the step later, after checking the chain:
    the effect is absent, and the step is done again with a new transaction at the same nonce.
    """

    def __init__(self, url: str, tx_hash: bytes, nonce: int, *, after: str) -> None:
        super().__init__(
            f"transaction 0x{tx_hash.hex()} (nonce {nonce}) is gone from {url} {after}: "
            "a reorg (or the node) dropped it",
            hint="the node re-checks the chain and redoes the step",
        )
        self.url = url
        self.tx_hash = tx_hash
        self.nonce = nonce


class TransactionInDoubtError(RpcUnavailableError):
    """The endpoint failed after a transaction was signed: it may or may not have been sent.

    Still an `RpcUnavailableError` (the endpoint is what failed), with the transaction named so
    an operator can look it up; the loop checks the chain before it sends the step again.
    """

    def __init__(self, cause: RpcUnavailableError, tx_hash: bytes, nonce: int) -> None:
        # Not RpcUnavailableError.__init__: the message is the cause's, extended.
        UnavailableError.__init__(
            self,
            f"{cause.message}; transaction 0x{tx_hash.hex()} was signed (nonce {nonce}) and "
            "may have been sent; the node checks the chain before sending it again",
            hint=cause.hint,
        )
        self.url = cause.url
        self.tx_hash = tx_hash
        self.nonce = nonce


@runtime_checkable
class TxJournal(Protocol):
    """The node's durable record of the transactions it signed (NodeState implements it).

    `record` is called once a transaction is signed and before it is broadcast, so after a
    crash the node can look the transaction up; `signed_at` finds the transactions signed at a
    nonce, so a stuck one is outbid rather than left to mine late.
    """

    def record(self, tx_hash: bytes, nonce: int) -> None: ...

    def signed_at(self, nonce: int) -> Sequence[bytes]: ...


# The older form, a bare `journal(tx_hash, nonce)` callback, is still taken: it records only.
JournalCallback = Callable[[bytes, int], None]
Journal = TxJournal | JournalCallback


class _Journals:
    """The given journal (if any) plus this process's own memory of what it signed.

    The memory covers senders without a durable journal (the CLI, deployments) for as long as
    the process lives; the durable journal covers restarts.
    """

    def __init__(self, journal: Journal | None) -> None:
        self.durable: TxJournal | None = None
        self._callback: JournalCallback | None = None
        if isinstance(journal, TxJournal):
            self.durable = journal
        elif journal is not None:
            self._callback = journal
        self._memory: dict[int, list[bytes]] = {}

    def record(self, tx_hash: bytes, nonce: int) -> None:
        if self.durable is not None:
            self.durable.record(tx_hash, nonce)
        elif self._callback is not None:
            self._callback(tx_hash, nonce)
        for spent in [n for n in self._memory if n < nonce]:
            del self._memory[spent]  # signed at the mined nonce: the lower ones are settled
        hashes = self._memory.setdefault(nonce, [])
        if tx_hash not in hashes:
            hashes.append(tx_hash)

    def signed_at(self, nonce: int) -> list[bytes]:
        found = list(self.durable.signed_at(nonce)) if self.durable is not None else []
        return found + [h for h in self._memory.get(nonce, []) if h not in found]


class Transactor:
    """Sends contract calls from one account (or none: read-only) over one connection.

    `journal` records each transaction once it is signed and before it is broadcast (a
    `TxJournal`, or a bare `journal(tx_hash, nonce)` callback), and finds the stuck ones to
    outbid. `confirmations`: blocks on top of the receipt's block to wait for (0: the receipt
    is enough, as on dev chains; the in-process chain never reorganizes and ignores it).
    `after_broadcast(tx_hash)` runs once the node accepted the transaction and before the wait
    for its receipt: a crash-test point, and where tests act on the chain deterministically.
    `receipt_timeout` bounds the wait for the receipt, then again the wait for confirmations.
    """

    def __init__(
        self,
        w3: Web3,
        decoder: RevertDecoder,
        private_key: bytes | None = None,
        *,
        receipt_timeout: float = 120.0,
        poll_latency: float = 0.005,
        journal: Journal | None = None,
        confirmations: int = 0,
        after_broadcast: Callable[[bytes], None] | None = None,
    ) -> None:
        if confirmations < 0:
            raise ConfigError(
                f"confirmations must be 0 or more, got {confirmations}",
                hint="0 on dev chains; elsewhere the depth of the reorgs to ride out",
            )
        self.w3 = w3
        self.url = endpoint_of(w3)
        self._decoder = decoder
        self._account = Account.from_key(private_key) if private_key is not None else None
        self._receipt_timeout = receipt_timeout
        self._poll_latency = poll_latency
        self._embedded = is_embedded(self.url)
        self._journals = _Journals(journal)
        self.journal = self._journals.durable
        self.confirmations = confirmations
        self.after_broadcast = after_broadcast

    @property
    def address(self) -> str | None:
        """The sending account, or None when read-only."""
        return self._account.address if self._account is not None else None

    @contextmanager
    def guard(self, *, sending: bool = False) -> Iterator[None]:
        """Map transport failures, reverts and refusals raised inside to `FlareError`s.

        `sending`: the block sends a transaction, so a refusal is a `TransactionRejectedError`.
        """
        with rpc_errors(self.url):
            try:
                yield
            except (ContractLogicError, TransactionFailed) as error:
                decoded = self._decoder.from_exception(error)
                if decoded is None:
                    raise
                raise decoded from error
            except Web3RPCError as error:
                raise self._rejected(_rpc_message(error), sending) from error
            except EvmValidationError as error:
                # The in-process EVM refuses a transaction it cannot include (funds, nonce) by
                # raising where a node would answer with a JSON-RPC error.
                if not self._embedded:
                    raise
                raise self._rejected(str(error), sending) from error

    def _rejected(self, message: str, sending: bool) -> RequestRejectedError:
        if sending:
            return TransactionRejectedError(
                f"{self.url} refused the transaction: {message}", hint=_rejection_hint(message)
            )
        return RequestRejectedError(
            f"{self.url} refused the request: {message}", hint=_refusal_hint(message)
        )

    def call(self, read: Callable[[], T]) -> T:
        """Run a view call under `guard`."""
        with self.guard():
            return read()

    @property
    def embedded(self) -> bool:
        """Whether this is the in-process chain (no JSON-RPC underneath)."""
        return self._embedded

    def rpc(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request past web3's middleware: the raw result (hex strings).

        For the reads a node repeats every step, where web3's middleware and formatters cost
        more than the request. A JSON-RPC error is raised as web3 raises it: a revert of an
        `eth_call` as `ContractLogicError`, anything else as `Web3RPCError`; callers run it
        under `guard`. Not for the in-process chain, which needs web3's eth-tester middleware.
        """
        if self._embedded:
            raise ConfigError(f"{method} by raw JSON-RPC needs an HTTP endpoint")
        response = self.w3.provider.make_request(RPCEndpoint(method), params)
        errors = raise_contract_logic_error_on_revert if method == "eth_call" else None
        return self.w3.manager.formatted_response(response, params, errors)

    def read(self, to: str, data: bytes) -> bytes:
        """`eth_call` of `data` at `to` on the latest block, under `guard`: the return data."""
        with self.guard():
            if self._embedded:
                call: TxParams = {"to": cast(Any, to), "data": HexBytes(data)}
                return bytes(self.w3.eth.call(call, "latest"))
            params = [{"to": to, "data": "0x" + data.hex()}, "latest"]
            return bytes(HexBytes(self.rpc("eth_call", params)))

    def send(self, build: Any, *, min_gas: int = 0, gas: int | None = None) -> dict[str, Any]:
        """Send a prepared contract call or constructor (anything with `build_transaction`).

        `min_gas` is a floor under the estimate, for a call whose cost depends on what lands
        before it (a vote estimated as an ordinary one can become the finalizing one). `gas`
        is a fixed limit for a call whose cost is bounded and known: it is simulated once with
        `eth_call` (a revert still surfaces before signing) instead of estimated, which a node
        does by re-running the call a dozen times in a binary search.
        Returns the web3 receipt of the mined, successful (and confirmed) transaction.
        """
        if self._account is None:
            raise ReadOnlyLedgerError(
                "this command sends a transaction but no key was given",
                hint="pass --keystore (or --dev-account N on a local dev chain)",
            )
        sender = self._account.address
        with self.guard(sending=True):
            # The mined count, not the pending one: whatever is pending from this account is
            # stuck (see the module docstring) and is replaced at its nonce.
            nonce = int(self.w3.eth.get_transaction_count(sender, "latest"))
            if self._embedded:
                # py-evm estimates gas by a binary search of ~13 executions, and even one
                # simulating call doubles the cost of a transaction that checks a BLS pairing
                # (pure Python, ~0.85 s). So the in-process chain sends at a fixed limit with no
                # simulation; a revert is mined with status 0 and its replay names the reason.
                # It mines each transaction as it arrives: nothing is ever pending to outbid.
                fixed = {"from": sender, "nonce": nonce, "gas": EMBEDDED_GAS_LIMIT}
                tx = dict(build.build_transaction(fixed))
            elif gas is not None:
                tx = dict(build.build_transaction({"from": sender, "nonce": nonce, "gas": gas}))
                self.w3.eth.call(cast(TxParams, _simulated(tx)), "latest")
                tx.update(outbid(tx, self._stuck_at(sender, nonce)))
            else:
                tx = dict(build.build_transaction({"from": sender, "nonce": nonce}))
                tx["gas"] = max(int(tx["gas"] * GAS_MARGIN), min_gas)
                tx.update(outbid(tx, self._stuck_at(sender, nonce)))
            signed = self._account.sign_transaction(tx)
            tx_hash = bytes(signed.hash)
            self._journals.record(tx_hash, nonce)
            with self._in_doubt(tx_hash, nonce):
                self._broadcast(bytes(signed.raw_transaction), tx_hash)
            if self.after_broadcast is not None:
                self.after_broadcast(tx_hash)
            with self._in_doubt(tx_hash, nonce):
                receipt = self._wait(tx_hash, nonce)
        if int(receipt["status"]) != 1:
            self._explain_failure(tx, receipt)
        return receipt

    def _stuck_at(self, sender: str, nonce: int) -> list[dict[str, Any]]:
        """The transactions this account signed at `nonce` that the node still has pending."""
        stuck = []
        for tx_hash in self._journals.signed_at(nonce):
            found = self._lookup(tx_hash)
            if (
                found is not None
                and found.get("blockNumber") is None
                and str(found.get("from", "")).lower() == sender.lower()
            ):
                stuck.append(found)
        return stuck

    @contextmanager
    def _in_doubt(self, tx_hash: bytes, nonce: int) -> Iterator[None]:
        """A transport failure from here on names the signed transaction."""
        try:
            with rpc_errors(self.url):
                yield
        except RpcUnavailableError as error:
            raise TransactionInDoubtError(error, tx_hash, nonce) from error

    def _broadcast(self, raw: bytes, tx_hash: bytes) -> None:
        """Send once; the provider already retried transport failures with the same bytes."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError:
            # A retried send whose first attempt got through is "already known": fine.
            # Otherwise `guard` reports the node's refusal.
            if not self._known(tx_hash):
                raise

    def _lookup(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The transaction as the node has it (mined or pending), or None if it does not."""
        try:
            return dict(self.w3.eth.get_transaction(HexBytes(tx_hash)))
        except TransactionNotFound:
            return None

    def _known(self, tx_hash: bytes) -> bool:
        return self._lookup(tx_hash) is not None

    def _receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        try:
            return dict(self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        except TransactionNotFound:
            return None

    def _wait(self, tx_hash: bytes, nonce: int) -> dict[str, Any]:
        """The receipt, once mined and (with `confirmations`) confirmed."""
        receipt = self._mined(tx_hash, nonce, time.monotonic() + self._receipt_timeout)
        if self.confirmations == 0 or self._embedded:
            return receipt
        return self._confirmed(tx_hash, nonce, receipt)

    def _mined(self, tx_hash: bytes, nonce: int, deadline: float) -> dict[str, Any]:
        """Poll for the receipt; a transaction the node no longer knows fails at once."""
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                return receipt
            if not self._known(tx_hash):
                raise TransactionDroppedError(self.url, tx_hash, nonce, after="before it was mined")
            if time.monotonic() >= deadline:
                raise ReceiptTimeoutError(
                    f"transaction 0x{tx_hash.hex()} (nonce {nonce}) was not mined within "
                    f"{self._receipt_timeout:g}s on {self.url}",
                    hint="it may still be mined: the node checks the chain before sending the "
                    "step again, and its next transaction replaces this one if still pending",
                    tx_hash=tx_hash,
                )
            time.sleep(self._poll_latency)

    def _confirmed(self, tx_hash: bytes, nonce: int, receipt: dict[str, Any]) -> dict[str, Any]:
        """Wait until `confirmations` blocks are on top of the receipt's, then re-read it.

        A reorg in between may have moved the transaction to another block (count again from
        there), put it back in the pool (wait for it to be mined again) or dropped it.
        """
        deadline = time.monotonic() + self._receipt_timeout
        while True:
            target = int(receipt["blockNumber"]) + self.confirmations
            while int(self.w3.eth.block_number) < target:
                if time.monotonic() >= deadline:
                    raise ReceiptTimeoutError(
                        f"transaction 0x{tx_hash.hex()} (nonce {nonce}) was mined in block "
                        f"{receipt['blockNumber']} but not confirmed by {self.confirmations} "
                        f"more blocks within {self._receipt_timeout:g}s on {self.url}",
                        hint="the chain is slow or stalled: the node checks the chain before "
                        "sending the step again",
                        tx_hash=tx_hash,
                    )
                time.sleep(self._poll_latency)
            current = self._receipt(tx_hash)
            if current is None:
                if not self._known(tx_hash):
                    raise TransactionDroppedError(
                        self.url,
                        tx_hash,
                        nonce,
                        after=f"after it was mined in block {receipt['blockNumber']}",
                    )
                current = self._mined(tx_hash, nonce, deadline)
            elif current["blockHash"] == receipt["blockHash"]:
                return current
            receipt = current

    def _explain_failure(self, tx: dict[str, Any], receipt: dict[str, Any]) -> None:
        block = int(receipt["blockNumber"])
        failed = f"transaction 0x{bytes(receipt['transactionHash']).hex()} failed in block {block}"
        if int(receipt["gasUsed"]) >= int(tx["gas"]):
            raise TransactionRevertedError(
                f"{failed}: it ran out of gas ({receipt['gasUsed']} of {tx['gas']})",
                hint="retry; the gas estimate was taken on an earlier state",
            )
        replay = _call_of(tx, "gas")
        # The parent block's state reproduces the failure exactly; nodes that prune history
        # (anvil --prune-history) no longer have it, and the latest state usually still does.
        for at in (max(0, block - 1), "latest"):
            try:
                with self.guard():
                    self.w3.eth.call(replay, block_identifier=at)
            except RequestRejectedError:
                continue
            break
        raise TransactionRevertedError(
            f"{failed} (gas used {receipt['gasUsed']} of {tx['gas']}) and replaying it gives "
            "no reason",
            hint="it may have raced another transaction; read the state and retry",
        )


def _simulated(tx: dict[str, Any]) -> dict[str, Any]:
    """The call a signed transaction makes, for `eth_call`: no nonce or fees, the same limit."""
    return {key: tx[key] for key in ("from", "to", "data", "value", "gas") if key in tx}


def outbid(tx: dict[str, Any], stuck: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Fee fields for `tx` that replace every transaction in `stuck` (same nonce).

    Each fee rises to at least 1/8 above the highest of the stuck ones (and by at least 1 wei),
    never below what `tx` already offers. A legacy `gasPrice` counts as both fee cap and tip.
    """
    if not stuck:
        return {}

    def bump(value: int) -> int:
        return value + max(1, -(-value // REPLACEMENT_BUMP_DIVISOR))

    def highest(field: str) -> int:
        return max(int(old.get(field, old.get("gasPrice", 0)) or 0) for old in stuck)

    cap, tip = bump(highest("maxFeePerGas")), bump(highest("maxPriorityFeePerGas"))
    if "maxFeePerGas" in tx:
        new_tip = max(int(tx.get("maxPriorityFeePerGas", 0)), tip)
        return {
            "maxPriorityFeePerGas": new_tip,
            "maxFeePerGas": max(int(tx["maxFeePerGas"]), cap, new_tip),
        }
    if "gasPrice" in tx:
        return {"gasPrice": max(int(tx["gasPrice"]), cap, tip)}
    return {}


def _call_of(tx: dict[str, Any], *extra: str) -> TxParams:
    """The parts of a transaction an `eth_call` replays."""
    return cast(TxParams, {k: tx[k] for k in ("from", "to", "data", "value", *extra) if k in tx})


def _rpc_message(error: Web3RPCError) -> str:
    """The node's own words: the `message` of the JSON-RPC error object when there is one."""
    response = error.rpc_response
    detail = response.get("error") if response is not None else None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return str(detail["message"])
    return str(error.message or error)


def _rejection_hint(message: str) -> str:
    lowered = message.lower()
    if "insufficient funds" in lowered or "cannot afford" in lowered:
        return "fund the sending account with the chain's native token"
    if "replacement" in lowered:
        # Transactions are signed at the mined nonce: this one met a pending transaction of
        # the account that the journal does not know, with fees this one does not outbid.
        return (
            "another transaction from this account, not signed by this node, is pending at "
            "the same nonce; wait until it is mined or dropped and retry"
        )
    if "nonce" in lowered:
        return (
            "another transaction from this account was mined meanwhile (is the key used "
            "elsewhere?); retry"
        )
    if "fee" in lowered or "underpriced" in lowered:
        return "the fee was too low for this node; retry"
    return "check the account and the node's logs"


def _refusal_hint(message: str) -> str:
    lowered = message.lower()
    if any(word in lowered for word in ("range", "limit", "too many", "more than", "too large")):
        return (
            "the node limits how much one request may ask for (often eth_getLogs block ranges); "
            "use a node without that limit, such as your own"
        )
    return "check the request and the node's logs"
