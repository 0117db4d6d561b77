"""Secret files and the node's Ethereum V3 keystore (scrypt).

Key files are attacker-reachable input (copied between machines, restored from backups), so
every KDF parameter is read and capped *before* any derivation runs: a file asking for 64 GiB
of scrypt memory is refused, not obeyed. Files are written atomically with mode 0600 and are
refused on load when group or others have any access. eth_keyfile (0.7 s to import) is loaded
only inside the functions that need it, so the CLI stays fast. The sealed ed25519 key and the
node home layout live in `flare.node.identity`.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any

from flare.protocol.errors import ConfigError, IntegrityError

KEY_FILE_MAX_BYTES = 64 * 1024
INIT_HINT = "create the node keys with `flare-node init`, or pass --home"

# What a key file may ask for. The defaults written here sit well inside these caps.
SCRYPT_MAX_MEMORY = 1 << 30  # 128·n·r bytes; geth's standard n=2^18, r=8 is 256 MiB
SCRYPT_MAX_WORK = 1 << 24  # n·r·p; geth's standard is 2^21
PBKDF2_MAX_ITERATIONS = 1 << 22  # eth-keyfile's default is 1,000,000


class KeyFileError(ConfigError):
    """A key or password file is missing, unsafe, malformed or too costly to open."""


class KeyFileMissingError(KeyFileError):
    """A key or password file does not exist."""


class InsecureKeyFileError(KeyFileError):
    """A key or password file grants access to group or others."""


class KeyFileExistsError(KeyFileError):
    """Refused to overwrite an existing key file."""


class WrongPasswordError(KeyFileError):
    """The password does not open the key file."""


class KeyMismatchError(IntegrityError):
    """A decrypted key does not match the public identity stored beside it."""


# ------------------------------------------------------------------ files


def read_private_file(path: Path, *, what: str, missing_hint: str | None = None) -> bytes:
    """The bytes of a secret-bearing file, refused unless only its owner can access it.

    The mode is checked on the opened descriptor, so a file swapped in between the check and
    the read is still the file that was checked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not hang
    except FileNotFoundError:
        raise KeyFileMissingError(f"{what} {path} does not exist", hint=missing_hint) from None
    except OSError as error:
        raise KeyFileError(f"cannot open {what} {path}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{what} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise InsecureKeyFileError(
                f"{what} {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); refusing to use it",
                hint=f"run: chmod 600 {path}",
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(KEY_FILE_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > KEY_FILE_MAX_BYTES:
        raise KeyFileError(f"{what} {path} is larger than {KEY_FILE_MAX_BYTES} bytes")
    return data


def write_private_file(path: Path, data: bytes, *, force: bool = False) -> Path | None:
    """Write `data` to `path` atomically with mode 0600; returns the backup of a replaced file.

    Without `force` an existing file is never replaced (the final step is a hard link, which
    fails if the name exists). With `force` the old file is first kept beside it as a backup.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    backup: Path | None = None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force and path.exists():
            backup = path.with_name(f"{path.name}.{secrets.token_hex(4)}.bak")
            if not _hard_link(path, backup):
                os.rename(path, backup)
            os.replace(tmp, path)
        else:
            try:
                if not _hard_link(tmp, path):
                    if path.exists():
                        raise FileExistsError(path)
                    os.rename(tmp, path)
            except FileExistsError:
                raise KeyFileExistsError(
                    f"{path} already exists; refusing to overwrite a key",
                    hint="pass --force to replace it (the old file is kept as a .bak backup)",
                ) from None
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return backup


def _hard_link(source: Path, target: Path) -> bool:
    """Link `target` to `source` atomically, failing if it exists; False without link support.

    Callers fall back to an existence check and a rename, which leaves a small window.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ Ethereum V3 keystore


def encrypt_keystore(private_key: bytes, password: str, *, scrypt_n: int = 1 << 18) -> bytes:
    """A V3 keystore (scrypt, r=8, p=1) of a secp256k1 key, as JSON bytes."""
    from eth_keyfile.keyfile import create_keyfile_json

    document = create_keyfile_json(
        private_key, password.encode(), version=3, kdf="scrypt", iterations=scrypt_n
    )
    return json.dumps(document, indent=2).encode() + b"\n"


def read_keystore(path: Path, password: str) -> bytes:
    """The 32-byte secp256k1 private key in the V3 keystore at `path`."""
    document = parse_json(read_private_file(path, what="keystore", missing_hint=INIT_HINT), path)
    problem = _keystore_problem(document)
    if problem is not None:
        raise KeyFileError(
            f"keystore {path} cannot be used: {problem}",
            hint="only Ethereum V3 keystores (scrypt or pbkdf2, aes-128-ctr) within the cost "
            "caps in docs/keys.md are accepted",
        )
    from eth_keyfile.keyfile import decode_keyfile_json

    try:
        return bytes(decode_keyfile_json(document, password.encode()))
    except ValueError as error:
        if "MAC mismatch" in str(error):
            raise WrongPasswordError(
                f"wrong password for keystore {path}",
                hint="check --password-file or $FLARE_PASSWORD",
            ) from None
        raise KeyFileError(f"keystore {path} cannot be decrypted: {error}") from None


def keystore_address(path: Path) -> str:
    """The address a keystore declares (unauthenticated until the key is decrypted)."""
    document = parse_json(read_private_file(path, what="keystore", missing_hint=INIT_HINT), path)
    address = document.get("address")
    if not isinstance(address, str) or len(address.removeprefix("0x")) != 40:
        raise KeyFileError(f"keystore {path} has no valid address field")
    return "0x" + address.removeprefix("0x").lower()


def _keystore_problem(document: dict[str, Any]) -> str | None:
    """What makes a keystore unusable or too costly to open, checked before deriving anything."""
    if document.get("version") != 3:
        return f"version {document.get('version')!r} is not 3"
    crypto = document.get("crypto", document.get("Crypto"))
    if not isinstance(crypto, dict):
        return "no crypto section"
    if crypto.get("cipher") != "aes-128-ctr":
        return f"cipher {crypto.get('cipher')!r} is not aes-128-ctr"
    cipherparams = crypto.get("cipherparams")
    iv = cipherparams.get("iv") if isinstance(cipherparams, dict) else None
    for name, value, size in (
        ("iv", iv, 16),
        ("ciphertext", crypto.get("ciphertext"), 32),
        ("mac", crypto.get("mac"), 32),
    ):
        if hex_length(value) != size:
            return f"{name} is not {size} hex-encoded bytes"
    params = crypto.get("kdfparams")
    if not isinstance(params, dict):
        return "no kdfparams"
    if params.get("dklen") != 32:
        return "kdf dklen is not 32"
    if not 1 <= (hex_length(params.get("salt")) or 0) <= 128:
        return "kdf salt is missing or longer than 128 bytes"
    if crypto.get("kdf") == "scrypt":
        if not all(type(params.get(v)) is int and params[v] >= 1 for v in ("n", "r", "p")):
            return "scrypt n, r, p must be positive integers"
        n, r, p = params["n"], params["r"], params["p"]
        if n < 2 or n & (n - 1):
            return f"scrypt n={n} is not a power of two"
        if 128 * n * r > SCRYPT_MAX_MEMORY or n * r * p > SCRYPT_MAX_WORK:
            return f"scrypt cost n={n}, r={r}, p={p} exceeds the cap"
        return None
    if crypto.get("kdf") == "pbkdf2":
        c = params.get("c")
        if params.get("prf") != "hmac-sha256":
            return "pbkdf2 prf is not hmac-sha256"
        if type(c) is not int or not 1 <= c <= PBKDF2_MAX_ITERATIONS:
            return f"pbkdf2 iterations {c!r} outside 1..{PBKDF2_MAX_ITERATIONS}"
        return None
    return f"kdf {crypto.get('kdf')!r} is not scrypt or pbkdf2"


# ------------------------------------------------------------------ shared parsing


def parse_json(data: bytes, path: Path) -> dict[str, Any]:
    """The JSON object a key file holds."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeyFileError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise KeyFileError(f"{path} does not hold a JSON object")
    return document


def hex_length(value: Any) -> int | None:
    """Byte length of a hex string (optional 0x), or None when `value` is not one."""
    if not isinstance(value, str):
        return None
    digits = value.removeprefix("0x")
    try:
        return len(bytes.fromhex(digits)) if len(digits) % 2 == 0 else None
    except ValueError:
        return None
