"""Content identifiers: CIDv1 in binary form (on-chain) and base32 text (everywhere else).

A CID is `varint(1) || varint(codec) || multihash`, the multihash being
`varint(hash code) || varint(digest length) || digest`. Text is multibase: `b` then RFC 4648
base32, lowercase, unpadded. flare-node writes only raw (0x55) and dag-pb (0x70) blocks hashed
with sha2-256, and reads only those, because those are what `ipfs add --cid-version=1
--raw-leaves` produces; any other codec or hash is refused with `UnsupportedCidError` rather
than trusted. Legacy text forms (CIDv0 `Qm...`, base58btc `z...`) are accepted on input and
converted to CIDv1, as `ipfs cid base32` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

from flare.protocol.errors import ConfigError, IntegrityError

__all__ = [
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "SHA2_256",
    "Cid",
    "CidError",
    "StorageIntegrityError",
    "UnsupportedCidError",
    "decode_cid",
    "decode_varint",
    "encode_cid",
    "encode_varint",
    "verify_block",
]

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
SHA2_256 = 0x12
_SHA2_256_LENGTH = 32
_CODEC_NAMES = {CODEC_RAW: "raw", CODEC_DAG_PB: "dag-pb"}
# version 1, codec, sha2-256, digest length: every codec here fits a one-byte varint.
_BINARY_PREFIX = {codec: bytes((1, codec, SHA2_256, _SHA2_256_LENGTH)) for codec in _CODEC_NAMES}
_MAX_VARINT_BYTES = 9  # the multiformats unsigned-varint limit (63 bits)
_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: value for value, char in enumerate(_BASE58)}


class CidError(ConfigError):
    """Text or bytes that are not a well-formed CIDv1 (a ValueError through ConfigError)."""


class UnsupportedCidError(CidError):
    """A well-formed CID whose codec or hash function flare-node does not read or write."""


class StorageIntegrityError(IntegrityError):
    """Bytes read for a CID do not hash to it, or do not form the DAG it names.

    `cid` is the base32 text of the block or file that failed, so logs and peers can name it.
    """

    def __init__(self, cid: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"content for {cid} is corrupt: {reason}",
            hint=hint or "the bytes were rejected; fetch them again from another source",
        )
        self.cid = cid
        self.reason = reason


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, the multiformats varint (also protobuf's)."""
    if value < 0:
        raise ValueError(f"varint cannot encode negative {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """(value, next offset); raises ValueError on truncation or a non-minimal encoding."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        position = offset + index
        if position >= len(data):
            raise ValueError("varint is truncated")
        byte = data[position]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise ValueError("varint is not minimally encoded")
            return value, position + 1
    raise ValueError(f"varint is longer than {_MAX_VARINT_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class Cid:
    """A CIDv1 over a sha2-256 digest, as flare-node stores and fetches it."""

    codec: int
    digest: bytes
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.codec not in _CODEC_NAMES:
            raise UnsupportedCidError(
                f"codec 0x{self.codec:x} is not supported (only raw 0x55 and dag-pb 0x70)",
                hint="flare-node reads files added with `ipfs add --cid-version=1 --raw-leaves`",
            )
        if len(self.digest) != _SHA2_256_LENGTH:
            raise CidError(f"a sha2-256 digest has 32 bytes, not {len(self.digest)}")

    @classmethod
    def of_block(cls, codec: int, data: bytes | memoryview) -> Cid:
        """The CID naming `data` stored under `codec`."""
        return cls(codec, hashlib.sha256(data).digest())

    @classmethod
    def from_binary(cls, binary: bytes) -> Cid:
        """Parse binary CID bytes (the on-chain form), refusing codecs and hashes not read here."""
        codec, hash_code, digest = _split_binary(binary)
        if hash_code != SHA2_256:
            raise UnsupportedCidError(
                f"hash function 0x{hash_code:x} is not supported (only sha2-256 0x12)",
                hint="re-add the content with the default sha2-256 hash",
            )
        return cls(codec, digest)

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse CID text (base32 CIDv1, or a legacy form converted to CIDv1)."""
        return cls.from_binary(decode_cid(text))

    @property
    def binary(self) -> bytes:
        """The binary form, as the contract stores and events carry it."""
        return _BINARY_PREFIX[self.codec] + self.digest

    @property
    def text(self) -> str:
        """The base32 multibase text (`bafk...` for raw, `bafy...` for dag-pb).

        Computed on first use and kept: hashing a chunk must not pay for base32 (pure Python).
        """
        text = self._text
        if text is None:
            text = _base32_text(self.binary)
            object.__setattr__(self, "_text", text)
        return text

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES[self.codec]

    def __str__(self) -> str:
        return self.text


def verify_block(cid: Cid, data: bytes | memoryview) -> None:
    """Raise `StorageIntegrityError` unless `data` hashes to `cid` (constant-time compare)."""
    if not hmac.compare_digest(hashlib.sha256(data).digest(), cid.digest):
        raise StorageIntegrityError(cid.text, f"a {len(data)}-byte block does not hash to it")


def encode_cid(binary: bytes) -> str:
    """Base32 text (`b...`) of a binary CIDv1; raises `CidError` if the bytes are not one."""
    _split_binary(binary)
    return _base32_text(binary)


def decode_cid(text: str) -> bytes:
    """Binary CIDv1 of CID text; raises `CidError` on anything that is not a CID.

    Accepts base32 CIDv1 (`b`/`B`), base58btc CIDv1 (`z`) and CIDv0 (`Qm...`, returned as the
    equivalent dag-pb CIDv1). Only the syntax is checked here; `Cid.parse` also checks that the
    codec and hash are ones flare-node supports.
    """
    if not isinstance(text, str) or not (text := text.strip()):
        raise CidError("a CID must be non-empty text")
    if len(text) == 46 and text.startswith("Qm"):
        multihash = _base58_decode(text)
        if multihash[:2] != bytes((SHA2_256, _SHA2_256_LENGTH)) or len(multihash) != 34:
            raise CidError(f"{text!r} is not a CIDv0 (a base58 sha2-256 multihash)")
        binary = bytes((1, CODEC_DAG_PB)) + multihash
    elif text[0] in "bB":
        binary = _base32_decode(text)
    elif text[0] == "z":
        binary = _base58_decode(text[1:])
    else:
        raise CidError(
            f"{text!r} is not CID text",
            hint="use a base32 CIDv1 such as the `bafy...` or `bafk...` that `store add` prints",
        )
    _split_binary(binary, shown=text)
    return binary


def _split_binary(binary: bytes, *, shown: str | None = None) -> tuple[int, int, bytes]:
    """(codec, hash code, digest) of a binary CIDv1, checking the framing and digest length."""
    label = shown if shown is not None else "0x" + bytes(binary[:40]).hex()
    if not isinstance(binary, bytes | bytearray | memoryview):
        raise CidError(f"a binary CID must be bytes, not {type(binary).__name__}")
    try:
        version, offset = decode_varint(binary)
        codec, offset = decode_varint(binary, offset)
        hash_code, offset = decode_varint(binary, offset)
        length, offset = decode_varint(binary, offset)
    except ValueError as error:
        raise CidError(f"{label} is not a CID: {error}") from error
    if version != 1:
        raise CidError(f"{label} is not a CIDv1 (version {version})")
    digest = bytes(binary[offset:])
    if len(digest) != length:
        raise CidError(f"{label} is not a CID: its digest has {len(digest)} bytes, not {length}")
    return codec, hash_code, digest


def _base32_text(binary: bytes) -> str:
    return "b" + base64.b32encode(binary).decode("ascii").rstrip("=").lower()


def _base32_decode(text: str) -> bytes:
    prefix, body = text[0], text[1:]
    expected = body.lower() if prefix == "b" else body.upper()
    if not body or body != expected or not set(body.upper()) <= _BASE32_ALPHABET:
        raise CidError(f"{text!r} is not base32 CID text")
    upper = body.upper()
    try:
        binary = base64.b32decode(upper + "=" * (-len(upper) % 8))
    except binascii.Error as error:
        raise CidError(f"{text!r} is not base32 CID text: {error}") from error
    if _base32_text(binary)[1:] != body.lower():
        raise CidError(f"{text!r} is not canonical base32 (stray trailing bits)")
    return binary


def _base58_decode(text: str) -> bytes:
    value = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            raise CidError(f"{text!r} is not base58btc text")
        value = value * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return b"\x00" * zeros + body
