"""Revert data to `ContractError` subclasses, the same on eth-tester and on a JSON-RPC node.

The two backends report a revert differently: web3 over eth-tester raises eth-tester's
`TransactionFailed` with the raw revert bytes printed inside the message (or the reason string
already decoded), a JSON-RPC node makes web3 raise `ContractCustomError`/`ContractLogicError`
with the data as hex. Both are reduced to the revert bytes, which are decoded against the ABI's
custom errors, `Error(string)` and `Panic(uint256)`.
"""

from __future__ import annotations

import ast
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from eth_utils.abi import collapse_if_tuple, function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError

from flare.protocol.ledger import ContractError, RevertedError, contract_error

ERROR_STRING = function_signature_to_4byte_selector("Error(string)")
PANIC = function_signature_to_4byte_selector("Panic(uint256)")
_REVERTED_PREFIX = "execution reverted"

# Solidity's panic codes (docs: "Panic via assert and error via require").
PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "bad storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialized function",
}


class RevertDecoder:
    """Knows a contract's custom errors by selector."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [collapse_if_tuple(arg) for arg in item.get("inputs", [])]
            names = [str(arg.get("name") or f"arg{i}") for i, arg in enumerate(item["inputs"])]
            signature = f"{item['name']}({','.join(types)})"
            self._errors[function_signature_to_4byte_selector(signature)] = (
                str(item["name"]),
                types,
                names,
            )

    def from_exception(self, error: BaseException) -> ContractError | None:
        """The contract error behind a web3 or eth-tester exception; None if it is no revert."""
        if isinstance(error, ContractLogicError):
            if error.data is None:
                return self.decode(b"")
            if isinstance(error.data, str) and error.data.startswith("0x"):
                return self.decode(bytes.fromhex(error.data[2:]))
            return _reason_error(str(error.message or error))
        if isinstance(error, TransactionFailed):
            raw = _tester_revert_bytes(error)
            if raw is not None:
                return self.decode(raw)
            return self._from_tester_message(str(error.args[0]) if error.args else "")
        return None

    def decode(self, data: bytes) -> ContractError:
        """Decode raw revert bytes."""
        if not data:
            return RevertedError(
                error_name="",
                message="the contract reverted without a reason",
                hint="out of gas, or no such function at this address (wrong address or build?)",
            )
        selector, payload = data[:4], data[4:]
        try:
            if selector == ERROR_STRING:
                return _reason_error(str(abi_decode(["string"], payload)[0]))
            if selector == PANIC:
                code = int(abi_decode(["uint256"], payload)[0])
                return RevertedError(
                    {"code": code},
                    error_name="Panic",
                    message=f"the contract panicked: 0x{code:02x} "
                    f"({PANIC_CODES.get(code, 'unknown panic code')})",
                    hint="this is a contract bug; report it with the transaction",
                )
            known = self._errors.get(selector)
            if known is not None:
                name, types, names = known
                values = abi_decode(types, payload)
                return contract_error(
                    name, {n: _plain(t, v) for n, t, v in zip(names, types, values, strict=True)}
                )
        except DecodingError:
            pass
        return RevertedError(
            {"data": data},
            error_name="0x" + selector.hex(),
            message=f"the contract reverted with unknown error data 0x{data.hex()}",
            hint="the contract at this address is not the FlareRounds build flare-node knows",
        )

    def _from_tester_message(self, message: str) -> ContractError | None:
        if not message.startswith(_REVERTED_PREFIX):
            return None
        detail = message[len(_REVERTED_PREFIX) :].removeprefix(":").strip()
        if detail.startswith(("b'", 'b"')):
            try:
                raw = ast.literal_eval(detail)
            except (ValueError, SyntaxError):
                raw = None
            if isinstance(raw, bytes):
                return self.decode(raw)
        if not detail:
            return self.decode(b"")
        return _reason_error(detail)


def _tester_revert_bytes(error: BaseException) -> bytes | None:
    """The raw revert bytes eth-tester keeps in the exception web3 re-raised from.

    web3 rewrites eth-tester's failure as text and, for any revert data that happens to
    ABI-decode as one string (as a custom error with a single string argument does), drops the
    selector; the original bytes survive on the exception chain.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TransactionFailed) and seen.args:
            inner = seen.args[0]
            if isinstance(inner, BaseException) and inner.args:
                inner = inner.args[0]
            if isinstance(inner, bytes):
                return inner
        seen = seen.__context__
    return None


def _reason_error(reason: str) -> ContractError:
    reason = reason.removeprefix(_REVERTED_PREFIX).removeprefix(":").strip()
    return RevertedError(
        {"reason": reason},
        error_name="Error",
        message=f"the contract reverted: {reason}",
    )


def _plain(abi_type: str, value: Any) -> Any:
    """ABI values as the protocol types them: checksummed addresses, bytes, ints."""
    if abi_type == "address":
        return to_checksum_address(value)
    return value
