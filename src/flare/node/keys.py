"""Secret files and the node's Ethereum V3 keystore (scrypt).

Key files are attacker-reachable input (copied between machines, restored from backups), so
every KDF parameter is read and capped *before* any derivation runs: a file asking for 64 GiB
of scrypt memory is refused, not obeyed. Files are written atomically with mode 0600 and are
refused on load when group or others have any access. Files written together (a node's three
keys) change together even when the writing process is killed: see `write_private_files`.
eth_keyfile (0.7 s to import) is loaded only inside the functions that need it, so the CLI stays
fast. The sealed ed25519 key and the node home layout live in `flare.node.identity`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flare.node.atomic import NO_HARD_LINKS, fsync_directory, staged_file, write_file_atomically
from flare.protocol.errors import ConfigError, IntegrityError

KEY_FILE_MAX_BYTES = 64 * 1024
INIT_HINT = "create the node keys with `flare-node init`, or pass --home"

# What a key file may ask for. The defaults written here sit well inside these caps.
SCRYPT_MAX_MEMORY = 1 << 30  # 128·n·r bytes; geth's standard n=2^18, r=8 is 256 MiB
SCRYPT_MAX_WORK = 1 << 24  # n·r·p; geth's standard is 2^21
PBKDF2_MAX_ITERATIONS = 1 << 22  # eth-keyfile's default is 1,000,000

JOURNAL_NAME = ".replacing.json"
"""Present only while several key files are being replaced: the staged files that become them."""
JOURNAL_FORMAT = "flare-key-replacement/1"
_STAGED_NAME = re.compile(r"\.(?P<target>[^/\\]+)\.[0-9a-f]{32}\.tmp")  # `atomic.staged_file`'s


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
    the read is still the file that was checked. A replacement of the files beside it that a
    killed process left half done is completed first, so no reader ever sees old and new keys
    mixed.
    """
    finish_replacement(path.parent)
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

    Without `force` an existing file is never replaced. With `force` the old file is first
    kept beside it as a backup.
    """
    (backup,) = write_private_files([(path, data)], force=force)
    return backup


def write_private_files(
    files: Sequence[tuple[Path, bytes]], *, force: bool = False
) -> list[Path | None]:
    """Write several secret files of one directory as one change: all of them, or none.

    Every file is written and synced under a temporary name first, so the usual failures (a
    full disk, a read-only directory) happen before any key is replaced. With `force` the old
    files are then linked to backups. Before the first rename, a journal naming the staged
    files is written: from then on the change is decided, and a process killed between the
    renames leaves it to be finished by the next one to read or write a key there
    (`finish_replacement`). A rename that fails puts back the files already renamed. Returns,
    per file, the backup of the file it replaced (with `force`) or None. Writers of one
    directory take turns (an flock on the directory).
    """
    directories = {path.parent for path, _ in files}
    if len(directories) != 1:
        raise ValueError("write_private_files writes the files of exactly one directory")
    (directory,) = directories
    try:
        with _directory_lock(directory):
            _roll_forward(directory)
            _remove_orphans(directory, {path.name for path, _ in files})
            backups = _write_staged(directory, files, force=force)
            fsync_directory(directory)
            if len(files) > 1:
                (directory / JOURNAL_NAME).unlink()
                fsync_directory(directory)
    except KeyFileError:
        raise
    except OSError as error:
        raise _write_error(error) from None
    return backups


def _write_staged(
    directory: Path, files: Sequence[tuple[Path, bytes]], *, force: bool
) -> list[Path | None]:
    """Stage, back up, journal and rename `files` (the directory lock is held)."""
    journal = directory / JOURNAL_NAME
    with contextlib.ExitStack() as stack:
        staged = [stack.enter_context(staged_file(path, data, mode=0o600)) for path, data in files]
        backups: list[Path | None] = []
        committed = 0
        try:
            for item in staged:
                backups.append(_back_up(item.target) if force else None)
            if len(staged) > 1:
                document = {"format": JOURNAL_FORMAT, "staged": [i.temporary.name for i in staged]}
                write_file_atomically(journal, json.dumps(document).encode(), mode=0o600)
            for item in staged:
                item.commit(exclusive=not force)
                committed += 1
        except BaseException as failure:
            _undo([item.target for item in staged], backups, committed=committed)
            journal.unlink(missing_ok=True)
            if isinstance(failure, FileExistsError):
                raise KeyFileExistsError(
                    f"{staged[committed].target} already exists; refusing to overwrite a key",
                    hint="pass --force to replace it (the old file is kept as a .bak backup)",
                ) from None
            raise
    return backups


def finish_replacement(directory: Path) -> None:
    """Complete a replacement of key files in `directory` that a killed process left half done.

    Once the journal is written the new files are all complete, so finishing means renaming the
    staged files that are still there; before it, the old files were never touched. Costs one
    `lstat` when there is nothing to finish.
    """
    if not os.path.lexists(directory / JOURNAL_NAME):
        return
    try:
        with _directory_lock(directory):
            _roll_forward(directory)
    except KeyFileError:
        raise
    except OSError as error:
        raise KeyFileError(
            f"cannot finish replacing the keys in {directory}: {error.strerror or error}",
            hint="a replacement of the keys (`flare-node init --force`) was interrupted; run "
            "this again as the user who owns the key directory",
        ) from None


def _roll_forward(directory: Path) -> None:
    """Rename every staged file the journal lists over its target, then drop the journal."""
    journal = directory / JOURNAL_NAME
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return  # nothing pending, or another process finished it meanwhile
    staged = _journal_entries(data)
    if staged is None:
        raise KeyFileError(
            f"{journal} is not a {JOURNAL_FORMAT} journal; refusing to guess which keys are "
            "current",
            hint="compare the key files with their .bak backups, keep one complete set, then "
            "delete the journal",
        )
    for name, target in staged:
        with contextlib.suppress(FileNotFoundError):  # renamed before the process died
            os.replace(directory / name, directory / target)
    fsync_directory(directory)
    journal.unlink()
    fsync_directory(directory)


def _journal_entries(data: bytes) -> list[tuple[str, str]] | None:
    """(staged name, target name) per file a journal lists; None if it is not a journal.

    Only names `atomic.staged_file` gives, each renamed to the name it was staged for: a
    journal cannot send a file anywhere else.
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != JOURNAL_FORMAT:
        return None
    names = document.get("staged")
    if not isinstance(names, list):
        return None
    entries = []
    for name in names:
        match = _STAGED_NAME.fullmatch(name) if isinstance(name, str) else None
        if match is None:
            return None
        entries.append((name, match["target"]))
    return entries


def _remove_orphans(directory: Path, targets: set[str]) -> None:
    """Delete staged copies of `targets` (and of the journal) left by a writer killed before
    its change was decided: with the lock held and no journal, nothing else refers to them."""
    with os.scandir(directory) as found:
        orphans = [
            entry.path
            for entry in found
            if (match := _STAGED_NAME.fullmatch(entry.name))
            and match["target"] in {*targets, JOURNAL_NAME}
        ]
    for path in orphans:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on the directory itself: no lock file appears among the keys."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _undo(paths: list[Path], backups: list[Path | None], *, committed: int) -> None:
    """Put back what a failed `write_private_files` changed: the old keys, or no keys.

    The first `committed` paths were replaced (or created); the backup after them, if any, was
    taken for a file that was never replaced and is simply removed.
    """
    for path, backup in reversed(list(zip(paths[:committed], backups[:committed], strict=True))):
        if backup is not None:
            os.replace(backup, path)
        else:
            path.unlink(missing_ok=True)
    for backup in backups[committed:]:
        if backup is not None:
            backup.unlink(missing_ok=True)


def _back_up(path: Path) -> Path | None:
    """A copy of `path` beside it (a hard link where the file system has them), or None."""
    backup = path.with_name(f"{path.name}.{secrets.token_hex(4)}.bak")
    try:
        os.link(path, backup)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        write_file_atomically(backup, path.read_bytes(), mode=0o600, exclusive=True)
    return backup


def _write_error(error: OSError) -> KeyFileError:
    return KeyFileError(
        f"cannot write {error.filename or 'a key file'}: {error.strerror or error}",
        hint="check that the key directory is writable and the disk is not full",
    )


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
