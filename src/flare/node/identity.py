"""The node's identity: its home layout, its sealed keys, and all three keys together.

A node has three keys under one password:
- an Ethereum account (V3 keystore, see `keys.py`) that signs transactions;
- a BLS12-381 key whose unique signatures are the VRF proofs that win committee seats, checked
  on-chain (`flare.protocol.vrf`);
- an ed25519 key, the node's peer identity: libp2p, and the signature on its gossip.
The BLS and ed25519 secrets are sealed with Argon2id and XSalsa20-Poly1305; each file stores its
public key in clear, so `flare-node keys show` needs no password, and the public key is checked
against the secret whenever the file is opened. Layout (docs/keys.md):

    <home>/keys/ethereum.json   V3 keystore (scrypt)                 0600
    <home>/keys/bls.json        sealed BLS12-381 key (Argon2id)      0600
    <home>/keys/peer.json       sealed ed25519 peer key (Argon2id)   0600

A home made by an earlier flare-node has `vrf.json` (the ed25519 key that was also its VRF key)
and no BLS key; `add_bls_key` upgrades it in place.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing

from flare.node.keys import (
    INIT_HINT,
    KeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
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
from flare.protocol import bls

SEALED_FORMAT = "flare-sealed-key/1"
SECRET_KEY_BYTES = 32  # both an ed25519 seed and a BLS scalar
ARGON2_MAX_OPSLIMIT = 10
ARGON2_MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE  # 1 GiB
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ADD_BLS_HINT = "upgrade the home with `flare-node keys add-bls` (same password)"
_argon2 = nacl.pwhash.argon2id


class KeyType(StrEnum):
    """What a sealed-key file holds; files of earlier versions name none and hold ed25519."""

    ED25519 = "ed25519"
    BLS12_381 = "bls12-381"

    def public_key(self, secret_key: bytes) -> bytes:
        """The public key of a secret key of this type."""
        if self is KeyType.ED25519:
            return bytes(nacl.signing.SigningKey(secret_key).verify_key)
        return bls.public_key(secret_key)

    @property
    def public_key_bytes(self) -> int:
        return 32 if self is KeyType.ED25519 else bls.G2_BYTES

    def new_secret_key(self) -> bytes:
        if self is KeyType.ED25519:
            return secrets.token_bytes(SECRET_KEY_BYTES)
        return bls.new_secret_key()


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
    def bls(self) -> Path:
        return self.keys_dir / "bls.json"

    @property
    def peer(self) -> Path:
        return self.keys_dir / "peer.json"

    @property
    def legacy_vrf(self) -> Path:
        """The ed25519 key of a home made before BLS keys: the peer key, under its old name."""
        return self.keys_dir / "vrf.json"

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.ethereum, self.bls, self.peer)


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """What a node shows the world: its account (EIP-55), BLS key (256 bytes), peer key (32)."""

    address: str
    bls_public_key: bytes
    peer_public_key: bytes


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """All three unlocked keys. Never printed: the secret fields are left out of repr."""

    ethereum_key: bytes = field(repr=False)
    bls_secret_key: bytes = field(repr=False)
    peer_secret_key: bytes = field(repr=False)
    identity: PublicIdentity


@dataclass(frozen=True, slots=True)
class CreatedKeys:
    """What `create_node_keys` (or `add_bls_key`) wrote, and the backups of keys it replaced."""

    identity: PublicIdentity
    paths: KeyPaths
    backups: tuple[Path, ...]


def refuse_existing_keys(home: Path) -> None:
    """Raise `KeyFileExistsError` if `home` holds any key: nothing is replaced without force.

    `flare-node init` calls it before asking for a password, so nobody types one for nothing.
    """
    paths = KeyPaths(home)
    existing = [path for path in (*paths.all, paths.legacy_vrf) if path.exists()]
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
    """Create the home (0700) and write a fresh Ethereum, BLS and ed25519 key into it.

    The files are written as one change: a failure leaves the old keys (or no keys), never a
    new Ethereum key beside an old BLS key.
    """
    paths = KeyPaths(home)
    if not force:
        refuse_existing_keys(home)
    _make_keys_dir(paths)
    ethereum_key = _new_ethereum_key()
    bls_secret = KeyType.BLS12_381.new_secret_key()
    peer_secret = KeyType.ED25519.new_secret_key()
    files = [
        (paths.ethereum, encrypt_keystore(ethereum_key, password, scrypt_n=cost.scrypt_n)),
        (paths.bls, _seal(KeyType.BLS12_381, bls_secret, password, cost)),
        (paths.peer, _seal(KeyType.ED25519, peer_secret, password, cost)),
    ]
    backups = write_private_files(files, force=force)
    if force:
        paths.legacy_vrf.unlink(missing_ok=True)  # replaced by peer.json
    identity = PublicIdentity(
        _address_of(ethereum_key),
        KeyType.BLS12_381.public_key(bls_secret),
        KeyType.ED25519.public_key(peer_secret),
    )
    return CreatedKeys(identity, paths, tuple(b for b in backups if b is not None))


def add_bls_key(home: Path, password: str, *, cost: KdfCost = STANDARD_COST) -> CreatedKeys:
    """Upgrade a home made before BLS keys: add a BLS key, and keep the ed25519 key as the peer key.

    The password must open the home's existing keys (the new key is sealed under it too). The
    old `vrf.json` becomes `peer.json`: the BLS file and the peer file are written as one
    change, then `vrf.json` is removed. A home that already has a BLS key is refused.
    """
    paths = KeyPaths(home)
    if paths.bls.exists():
        raise KeyFileExistsError(
            f"{paths.bls} already exists: this home has a BLS key",
            hint="nothing to do; `flare-node keys show` prints it",
        )
    ethereum_key = read_keystore(paths.ethereum, password)
    peer_file = paths.peer if paths.peer.exists() else paths.legacy_vrf
    peer_secret = open_sealed_key(peer_file, password, KeyType.ED25519)
    bls_secret = KeyType.BLS12_381.new_secret_key()
    files = [(paths.bls, _seal(KeyType.BLS12_381, bls_secret, password, cost))]
    if peer_file == paths.legacy_vrf:
        files.append((paths.peer, read_private_file(peer_file, what="sealed key")))
    write_private_files(files)
    paths.legacy_vrf.unlink(missing_ok=True)
    identity = PublicIdentity(
        _address_of(ethereum_key),
        KeyType.BLS12_381.public_key(bls_secret),
        KeyType.ED25519.public_key(peer_secret),
    )
    return CreatedKeys(identity, paths, ())


def load_node_keys(home: Path, password: str) -> NodeKeys:
    """Unlock all three keys and check each against the public identity stored beside it."""
    paths = KeyPaths(home)
    ethereum_key = read_keystore(paths.ethereum, password)
    address = _address_of(ethereum_key)
    if address.lower() != keystore_address(paths.ethereum):
        raise KeyMismatchError(
            f"keystore {paths.ethereum} decrypts to {address}, not the address it declares",
            hint="the file was altered; restore it from a backup",
        )
    _require_bls(paths)
    bls_secret = open_sealed_key(paths.bls, password, KeyType.BLS12_381)
    peer_secret = open_sealed_key(paths.peer, password, KeyType.ED25519)
    identity = PublicIdentity(
        address,
        KeyType.BLS12_381.public_key(bls_secret),
        KeyType.ED25519.public_key(peer_secret),
    )
    return NodeKeys(ethereum_key, bls_secret, peer_secret, identity)


def read_identity(home: Path) -> PublicIdentity:
    """The public identity, without a password (every file still passes the permission check)."""
    from eth_utils.address import to_checksum_address

    paths = KeyPaths(home)
    address = to_checksum_address(keystore_address(paths.ethereum))
    _require_bls(paths)
    return PublicIdentity(
        address,
        sealed_public_key(paths.bls, KeyType.BLS12_381),
        sealed_public_key(paths.peer, KeyType.ED25519),
    )


def seal_secret_key(
    secret_key: bytes,
    password: str,
    *,
    key_type: KeyType = KeyType.ED25519,
    opslimit: int,
    memlimit: int,
) -> bytes:
    """A sealed-key file (Argon2id + XSalsa20-Poly1305) holding a 32-byte secret key."""
    salt = secrets.token_bytes(_argon2.SALTBYTES)
    sealed = nacl.secret.SecretBox(_argon2_key(password, salt, opslimit, memlimit)).encrypt(
        secret_key
    )
    document = {
        "format": SEALED_FORMAT,
        "key_type": key_type.value,
        "public_key": key_type.public_key(secret_key).hex(),
        "kdf": {"name": "argon2id", "opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
        "cipher": {
            "name": "xsalsa20-poly1305",
            "nonce": sealed.nonce.hex(),
            "ciphertext": sealed.ciphertext.hex(),
        },
    }
    return json.dumps(document, indent=2).encode() + b"\n"


def open_sealed_key(path: Path, password: str, key_type: KeyType) -> bytes:
    """The 32-byte secret key of `key_type` sealed at `path`; KDF costs are capped first."""
    document = _read_sealed(path, key_type)
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
    try:
        public = key_type.public_key(bytes(secret_key))
    except bls.BlsError:
        public = b""  # not a BLS scalar: it cannot match the declared public key either
    if public.hex() != document["public_key"]:
        raise KeyMismatchError(
            f"sealed key {path} does not hold the secret of the public key it declares",
            hint="the file was altered; restore it from a backup",
        )
    return bytes(secret_key)


def sealed_public_key(path: Path, key_type: KeyType) -> bytes:
    """The public key a sealed-key file declares (checked against the secret when opened)."""
    return bytes.fromhex(_read_sealed(path, key_type)["public_key"])


def _seal(key_type: KeyType, secret_key: bytes, password: str, cost: KdfCost) -> bytes:
    return seal_secret_key(
        secret_key,
        password,
        key_type=key_type,
        opslimit=cost.argon2_opslimit,
        memlimit=cost.argon2_memlimit,
    )


def _read_sealed(path: Path, key_type: KeyType) -> dict[str, Any]:
    document = parse_json(read_private_file(path, what="sealed key", missing_hint=INIT_HINT), path)
    problem = _sealed_problem(document, key_type)
    if problem is not None:
        raise KeyFileError(
            f"sealed key {path} cannot be used: {problem}",
            hint=f"expected a {SEALED_FORMAT} {key_type.value} key within the cost caps in "
            "docs/keys.md",
        )
    return document


def _sealed_problem(document: dict[str, Any], key_type: KeyType) -> str | None:
    """What makes a sealed key unusable or too costly to open, checked before deriving."""
    kdf, cipher = document.get("kdf"), document.get("cipher")
    if document.get("format") != SEALED_FORMAT:
        return f"format {document.get('format')!r} is not {SEALED_FORMAT}"
    declared = document.get("key_type", KeyType.ED25519.value)  # earlier files name no type
    if declared != key_type.value:
        return f"it holds a {declared!r} key, not {key_type.value}"
    if hex_length(document.get("public_key")) != key_type.public_key_bytes:
        return f"public_key is not {key_type.public_key_bytes} hex-encoded bytes"
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
    if hex_length(cipher.get("ciphertext")) != SECRET_KEY_BYTES + nacl.secret.SecretBox.MACBYTES:
        return "ciphertext has the wrong length"
    return None


def _require_bls(paths: KeyPaths) -> None:
    """A home from before BLS keys is named as such, not reported as a missing file."""
    if not paths.bls.exists() and paths.legacy_vrf.exists():
        raise KeyFileMissingError(
            f"{paths.home} has no BLS key: it was made by an earlier flare-node", hint=ADD_BLS_HINT
        )


def _make_keys_dir(paths: KeyPaths) -> None:
    try:
        if not paths.home.exists():
            paths.home.mkdir(mode=0o700, parents=True)
        paths.keys_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(paths.keys_dir, 0o700)  # the key directory is ours: tighten it if it existed
    except OSError as error:
        raise KeyFileError(
            f"cannot create the key directory {paths.keys_dir}: {error.strerror}",
            hint="pass --home (or set FLARE_HOME) to a directory you can write",
        ) from None


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
