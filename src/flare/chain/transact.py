"""Sign, send and confirm transactions; turn every way one can fail into a `FlareError`.

On a node, each transaction is simulated first (gas estimation), so a revert surfaces before
anything is signed, decoded into the contract's own error. It is then signed locally and sent;
the HTTP provider's bounded retries re-send the same signed bytes, which is idempotent (same
hash, same nonce). A mined transaction with status 0 (state changed between simulation and
mining, or out of gas) is replayed to recover the reason. The in-process chain skips the
simulation: it executes in Python, where a BLS pairing alone takes most of a second, so a
transaction runs once and only a failed one is replayed for its reason (its nonce is spent,
which costs nothing on a dev chain). A request the
node answers with a JSON-RPC error (insufficient funds, a stale nonce, a log query over its
limits) becomes a `RequestRejectedError` carrying the node's own message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from eth_utils.exceptions import ValidationError as EvmValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError
from web3.types import TxParams

from flare.chain.connect import endpoint_of, is_embedded, rpc_errors
from flare.chain.reverts import RevertDecoder
from flare.protocol.errors import ConfigError, FlareError, UnavailableError
from flare.protocol.ledger_errors import RevertedError

T = TypeVar("T")

GAS_MARGIN = 1.25  # headroom over the estimate: estimates are taken on the state before mining
EMBEDDED_GAS_LIMIT = 12_000_000  # above a FlareRounds deployment, below the block gas limit


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
    """The transaction was sent but not mined in time."""


Journal = Callable[[bytes, int], None]


class Transactor:
    """Sends contract calls from one account (or none: read-only) over one connection.

    `journal(tx_hash, nonce)` is called once a transaction is signed and before it is
    broadcast: a node records the hash durably there, so after a crash it can look the
    transaction up instead of sending a second one.
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
    ) -> None:
        self.w3 = w3
        self.url = endpoint_of(w3)
        self._decoder = decoder
        self._account = Account.from_key(private_key) if private_key is not None else None
        self._receipt_timeout = receipt_timeout
        self._poll_latency = poll_latency
        self._embedded = is_embedded(self.url)
        self.journal = journal

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

    def send(self, build: Any) -> dict[str, Any]:
        """Send a prepared contract call or constructor (anything with `build_transaction`).

        Returns the web3 receipt of the mined, successful transaction.
        """
        if self._account is None:
            raise ReadOnlyLedgerError(
                "this command sends a transaction but no key was given",
                hint="pass --keystore (or --dev-account N on a local dev chain)",
            )
        sender = self._account.address
        with self.guard(sending=True):
            nonce = self.w3.eth.get_transaction_count(sender, "pending")
            if self._embedded:
                # py-evm estimates gas by a binary search of ~13 executions, and even one
                # simulating call doubles the cost of a transaction that checks a BLS pairing
                # (pure Python, ~0.85 s). So the in-process chain sends at a fixed limit with no
                # simulation; a revert is mined with status 0 and its replay names the reason.
                fixed = {"from": sender, "nonce": nonce, "gas": EMBEDDED_GAS_LIMIT}
                tx = dict(build.build_transaction(fixed))
            else:
                tx = dict(build.build_transaction({"from": sender, "nonce": nonce}))
                tx["gas"] = int(tx["gas"] * GAS_MARGIN)
            signed = self._account.sign_transaction(tx)
            tx_hash = bytes(signed.hash)
            if self.journal is not None:
                self.journal(tx_hash, int(nonce))
            self._broadcast(bytes(signed.raw_transaction), tx_hash)
            receipt = self._wait(tx_hash)
        if int(receipt["status"]) != 1:
            self._explain_failure(tx, receipt)
        return receipt

    def _broadcast(self, raw: bytes, tx_hash: bytes) -> None:
        """Send once; the provider already retried transport failures with the same bytes."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError:
            # A retried send whose first attempt got through is "already known": fine.
            # Otherwise `guard` reports the node's refusal.
            if not self._known(tx_hash):
                raise

    def _known(self, tx_hash: bytes) -> bool:
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def _wait(self, tx_hash: bytes) -> dict[str, Any]:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self._receipt_timeout, poll_latency=self._poll_latency
            )
        except TimeExhausted as error:
            raise ReceiptTimeoutError(
                f"transaction 0x{tx_hash.hex()} was not mined within "
                f"{self._receipt_timeout:.0f}s on {self.url}",
                hint="it may still be mined: check it later before sending it again",
            ) from error
        return dict(receipt)

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
    if "nonce" in lowered:
        return "another transaction from this account is pending; wait for it and retry"
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
