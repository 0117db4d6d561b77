"""Hex on the command line: one parser, so every option reads hex and reports it the same way.

People paste hex from block explorers, event logs and other tools, with or without `0x`, in
either case, sometimes with stray whitespace; what comes back is the bytes, or a `ConfigError`
that names the option and says how many bytes it wants. Commands parse their hex before they
connect to anything, so a typo is a usage error (exit 2) and not a wait on the network.
"""

from __future__ import annotations

import re

from flare.protocol.errors import ConfigError

__all__ = ["parse_address", "parse_hex"]

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_ADDRESS = re.compile(r"[0-9a-fA-F]{40}")


def parse_hex(text: str, *, length: int | None = None, what: str) -> bytes:
    """The bytes `text` spells in hex (an optional 0x prefix); exactly `length` of them if given.

    `what` names the input in the error, e.g. "--model-spec".
    """
    digits = text.strip()
    digits = digits[2:] if digits[:2] in ("0x", "0X") else digits
    shown = text if len(text) <= 24 else text[:20] + "..."
    wanted = f"{length}-byte hex ({2 * length} hex digits, 0x optional)" if length else "hex"
    if not _HEX.fullmatch(digits):
        raise ConfigError(f"{what} {shown!r} is not {wanted}", hint=_hint(length))
    value = bytes.fromhex(digits)
    if length is not None and len(value) != length:
        raise ConfigError(
            f"{what} {shown!r} is {len(value)} bytes, not {wanted}", hint=_hint(length)
        )
    return value


def parse_address(text: str, *, what: str) -> str:
    """The checksummed (EIP-55) form of the 20-byte account address `text` spells.

    An address in one case carries no checksum; a mixed-case one does, and it must match:
    a mismatch is almost always a mistyped character, so no corrected address is suggested
    (it would be the checksum of the typo, another account).
    """
    from eth_utils.address import to_checksum_address

    digits = text.strip()
    digits = digits[2:] if digits[:2] in ("0x", "0X") else digits
    shown = text if len(text) <= 46 else text[:42] + "..."
    if not _ADDRESS.fullmatch(digits):
        raise ConfigError(
            f"{what} {shown!r} is not an address (0x and 40 hex digits, 20 bytes)",
            hint="give 0x followed by 40 hex digits",
        )
    checksummed = str(to_checksum_address("0x" + digits.lower()))
    if digits not in (digits.lower(), digits.upper()) and digits != checksummed[2:]:
        raise ConfigError(
            f"{what} {text.strip()} fails its EIP-55 checksum: a character is probably mistyped",
            hint="copy the address again from its source (an all-lower-case one skips the check)",
        )
    return checksummed


def _hint(length: int | None) -> str:
    if length is None:
        return "give an even number of hex digits, e.g. 0x00ff"
    return f"give 0x followed by {2 * length} hex digits"
