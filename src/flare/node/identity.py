"""The node's identity: its home layout, its sealed ed25519 key, and both keys together.

A node has two keys under one password: an Ethereum account (V3 keystore, see `keys.py`) that
signs transactions, and an ed25519 key that proves VRF seats and signs gossip. The ed25519 key
is sealed with Argon2id and XSalsa20-Poly1305; its public half is stored in clear so that
`flare-node keys show` needs no password, and is checked against the secret whenever the file
is opened. Layout (docs/keys.md):

    <home>/keys/ethereum.json   V3 keystore (scrypt)           0600
    <home>/keys/vrf.json        sealed ed25519 key (Argon2id)  0600
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from flare.node.keys import (
    INIT_HINT,
    KeyFileError,
    KeyFileExistsError,
    KeyMismatchError,
    WrongPasswordError,
    encrypt_keystore,
    hex_length,
    keystore_address,
    parse_json,
    read_keystore,
    read_private_file,
    write_private_files,
)
from flare.protocol import vrf

SEALED_FORMAT = "flare-sealed-key/1"
ARGON2_MAX_OPSLIMIT = 10
ARGON2_MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE  # 1 GiB
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_argon2 = nacl.pwhash.argon2id


@dataclass(frozen=True, slots=True)
class KdfCost:
    """How expensive the password KDFs are when keys are written (reading obeys the file)."""

    scrypt_n: int
    argon2_opslimit: int
    argon2_memlimit: int


# geth's standard scrypt and libsodium's "moderate" Argon2id: about 1.5 s and 256 MiB each.
STANDARD_COST = KdfCost(1 << 18, _argon2.OPSLIMIT_MODERATE, _argon2.MEMLIMIT_MODERATE)
# For small devices and CI: about 0.1 s, 64 MiB.
LIGHT_COST = KdfCost(1 << 12, _argon2.OPSLIMIT_INTERACTIVE, _argon2.MEMLIMIT_INTERACTIVE)


@dataclass(frozen=True, slots=True)
class KeyPaths:
    """Where a node home keeps its keys."""

    home: Path

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def ethereum(self) -> Path:
        return self.keys_dir / "ethereum.json"

    @property
    def vrf(self) -> Path:
        return self.keys_dir / "vrf.json"


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """What a node shows the world: its account address (EIP-55) and VRF public key."""

    address: str
    vrf_public_key: bytes


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """Both unlocked keys. Never printed: the secret fields are left out of repr."""

    ethereum_key: bytes = field(repr=False)
    vrf_secret_key: bytes = field(repr=False)
    identity: PublicIdentity


@dataclass(frozen=True, slots=True)
class CreatedKeys:
    """What `create_node_keys` wrote, and the backups of any keys it replaced."""

    identity: PublicIdentity
    paths: KeyPaths
    backups: tuple[Path, ...]


def refuse_existing_keys(home: Path) -> None:
    """Raise `KeyFileExistsError` if `home` holds either key: nothing is replaced without force.

    `flare-node init` calls it before asking for a password, so nobody types one for nothing.
    """
    paths = KeyPaths(home)
    existing = [path for path in (paths.ethereum, paths.vrf) if path.exists()]
    if existing:
        raise KeyFileExistsError(
            f"{home} already holds keys ({', '.join(p.name for p in existing)}); refusing to "
            "overwrite them",
            hint="use them as they are, or pass --force to replace them (the old files are "
            "kept as .bak backups)",
        )


def create_node_keys(
    home: Path, password: str, *, cost: KdfCost = STANDARD_COST, force: bool = False
) -> CreatedKeys:
    """Create the home (0700) and write a fresh Ethereum key and ed25519 key into it.

    Both files are written as one change: a failure leaves the old pair (or no keys), never a
    new Ethereum key beside an old VRF key.
    """
    paths = KeyPaths(home)
    if not force:
        refuse_existing_keys(home)
    try:
        if not home.exists():
            home.mkdir(mode=0o700, parents=True)
        paths.keys_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(paths.keys_dir, 0o700)  # the key directory is ours: tighten it if it existed
    except OSError as error:
        raise KeyFileError(
            f"cannot create the key directory {paths.keys_dir}: {error.strerror}",
            hint="pass --home (or set FLARE_HOME) to a directory you can write",
        ) from None

    ethereum_key = _new_ethereum_key()
    vrf_secret = secrets.token_bytes(vrf.SECRET_KEY_BYTES)
    keystore = encrypt_keystore(ethereum_key, password, scrypt_n=cost.scrypt_n)
    sealed = seal_secret_key(
        vrf_secret, password, opslimit=cost.argon2_opslimit, memlimit=cost.argon2_memlimit
    )
    backups = write_private_files([(paths.ethereum, keystore), (paths.vrf, sealed)], force=force)
    identity = PublicIdentity(_address_of(ethereum_key), vrf.public_key(vrf_secret))
    return CreatedKeys(identity, paths, tuple(b for b in backups if b is not None))


def load_node_keys(home: Path, password: str) -> NodeKeys:
    """Unlock both keys and check each against the public identity stored beside it."""
    paths = KeyPaths(home)
    ethereum_key = read_keystore(paths.ethereum, password)
    address = _address_of(ethereum_key)
    if address.lower() != keystore_address(paths.ethereum):
        raise KeyMismatchError(
            f"keystore {paths.ethereum} decrypts to {address}, not the address it declares",
            hint="the file was altered; restore it from a backup",
        )
    vrf_secret = open_sealed_key(paths.vrf, password)
    return NodeKeys(ethereum_key, vrf_secret, PublicIdentity(address, vrf.public_key(vrf_secret)))


def read_identity(home: Path) -> PublicIdentity:
    """The public identity, without a password (both files still pass the permission check)."""
    from eth_utils.address import to_checksum_address

    paths = KeyPaths(home)
    return PublicIdentity(
        to_checksum_address(keystore_address(paths.ethereum)), sealed_public_key(paths.vrf)
    )


def seal_secret_key(secret_key: bytes, password: str, *, opslimit: int, memlimit: int) -> bytes:
    """A sealed-key file (Argon2id + XSalsa20-Poly1305) holding a 32-byte ed25519 secret key."""
    salt = secrets.token_bytes(_argon2.SALTBYTES)
    sealed = nacl.secret.SecretBox(_argon2_key(password, salt, opslimit, memlimit)).encrypt(
        secret_key
    )
    document = {
        "format": SEALED_FORMAT,
        "public_key": vrf.public_key(secret_key).hex(),
        "kdf": {"name": "argon2id", "opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
        "cipher": {
            "name": "xsalsa20-poly1305",
            "nonce": sealed.nonce.hex(),
            "ciphertext": sealed.ciphertext.hex(),
        },
    }
    return json.dumps(document, indent=2).encode() + b"\n"


def open_sealed_key(path: Path, password: str) -> bytes:
    """The 32-byte ed25519 secret key sealed at `path`; KDF costs are capped before deriving."""
    document = _read_sealed(path)
    kdf, cipher = document["kdf"], document["cipher"]
    key = _argon2_key(password, bytes.fromhex(kdf["salt"]), kdf["opslimit"], kdf["memlimit"])
    try:
        secret_key = nacl.secret.SecretBox(key).decrypt(
            bytes.fromhex(cipher["ciphertext"]), bytes.fromhex(cipher["nonce"])
        )
    except nacl.exceptions.CryptoError:
        raise WrongPasswordError(
            f"wrong password for sealed key {path}", hint="check --password-file or $FLARE_PASSWORD"
        ) from None
    if vrf.public_key(secret_key).hex() != document["public_key"]:
        raise KeyMismatchError(
            f"sealed key {path} does not hold the secret of the public key it declares",
            hint="the file was altered; restore it from a backup",
        )
    return bytes(secret_key)


def sealed_public_key(path: Path) -> bytes:
    """The public key a sealed-key file declares (checked against the secret when opened)."""
    return bytes.fromhex(_read_sealed(path)["public_key"])


def _read_sealed(path: Path) -> dict[str, Any]:
    document = parse_json(read_private_file(path, what="sealed key", missing_hint=INIT_HINT), path)
    problem = _sealed_problem(document)
    if problem is not None:
        raise KeyFileError(
            f"sealed key {path} cannot be used: {problem}",
            hint=f"expected a {SEALED_FORMAT} file within the cost caps in docs/keys.md",
        )
    return document


def _sealed_problem(document: dict[str, Any]) -> str | None:
    """What makes a sealed key unusable or too costly to open, checked before deriving."""
    kdf, cipher = document.get("kdf"), document.get("cipher")
    if document.get("format") != SEALED_FORMAT:
        return f"format {document.get('format')!r} is not {SEALED_FORMAT}"
    if hex_length(document.get("public_key")) != vrf.PUBLIC_KEY_BYTES:
        return "public_key is not 32 hex-encoded bytes"
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
        return "kdf is not argon2id"
    ops, mem = kdf.get("opslimit"), kdf.get("memlimit")
    if type(ops) is not int or not _argon2.OPSLIMIT_MIN <= ops <= ARGON2_MAX_OPSLIMIT:
        return f"argon2id opslimit {ops!r} outside {_argon2.OPSLIMIT_MIN}..{ARGON2_MAX_OPSLIMIT}"
    if type(mem) is not int or not _argon2.MEMLIMIT_MIN <= mem <= ARGON2_MAX_MEMLIMIT:
        return f"argon2id memlimit {mem!r} outside {_argon2.MEMLIMIT_MIN}..{ARGON2_MAX_MEMLIMIT}"
    if hex_length(kdf.get("salt")) != _argon2.SALTBYTES:
        return f"argon2id salt is not {_argon2.SALTBYTES} hex-encoded bytes"
    if not isinstance(cipher, dict) or cipher.get("name") != "xsalsa20-poly1305":
        return "cipher is not xsalsa20-poly1305"
    if hex_length(cipher.get("nonce")) != nacl.secret.SecretBox.NONCE_SIZE:
        return "nonce has the wrong length"
    if (
        hex_length(cipher.get("ciphertext"))
        != vrf.SECRET_KEY_BYTES + nacl.secret.SecretBox.MACBYTES
    ):
        return "ciphertext has the wrong length"
    return None


def _argon2_key(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return bytes(
        _argon2.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            password.encode(),
            salt,
            opslimit=opslimit,
            memlimit=memlimit,
        )
    )


def _new_ethereum_key() -> bytes:
    while True:  # rejection sampling: a uniform scalar in [1, n); retries almost never happen
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < SECP256K1_ORDER:
            return candidate


def _address_of(private_key: bytes) -> str:
    from eth_keys.datatypes import PrivateKey

    return str(PrivateKey(private_key).public_key.to_checksum_address())
