"""V3 keystores and secret files: round trips, interoperability, permissions and KDF caps."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import eth_keyfile.keyfile
import pytest
from eth_account import Account
from eth_keys.datatypes import PrivateKey

from flare.node import keys
from flare.protocol.errors import FlareError

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
PASSWORD = "correct horse battery staple"
CHEAP_N = 2  # scrypt n for tests: the format is what is under test, not the cost


def write(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def keystore_document(**crypto_changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(keys.encrypt_keystore(KEY, PASSWORD, scrypt_n=CHEAP_N))
    for name, value in crypto_changes.items():
        section, _, field = name.partition("__")
        target = document["crypto"] if not field else document["crypto"][section]
        target[field or section] = value
    return document


def test_keystore_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "k.json", keys.encrypt_keystore(KEY, PASSWORD, scrypt_n=CHEAP_N))

    assert keys.read_keystore(path, PASSWORD) == KEY
    assert keys.keystore_address(path) == PrivateKey(KEY).public_key.to_address()


def test_reads_keystores_written_by_eth_account(tmp_path: Path) -> None:
    for kdf, cost in (("scrypt", CHEAP_N), ("pbkdf2", 1)):
        document = Account.encrypt(KEY, PASSWORD, kdf=kdf, iterations=cost)
        path = write(tmp_path / f"{kdf}.json", json.dumps(document))

        assert keys.read_keystore(path, PASSWORD) == KEY


def test_eth_account_reads_our_keystores() -> None:
    document = json.loads(keys.encrypt_keystore(KEY, PASSWORD, scrypt_n=CHEAP_N))

    assert bytes(Account.decrypt(document, PASSWORD)) == KEY
    assert document["crypto"]["kdf"] == "scrypt"


def test_wrong_password_is_reported_as_such(tmp_path: Path) -> None:
    path = write(tmp_path / "k.json", keys.encrypt_keystore(KEY, PASSWORD, scrypt_n=CHEAP_N))

    with pytest.raises(keys.WrongPasswordError, match="wrong password") as caught:
        keys.read_keystore(path, "not the password")

    assert isinstance(caught.value, FlareError)
    assert caught.value.hint is not None
    assert "FLARE_PASSWORD" in caught.value.hint


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660])
def test_files_open_to_group_or_others_are_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "k.json", keys.encrypt_keystore(KEY, PASSWORD, scrypt_n=CHEAP_N), mode)

    with pytest.raises(keys.InsecureKeyFileError, match=f"{mode:04o}") as caught:
        keys.read_keystore(path, PASSWORD)

    assert caught.value.hint == f"run: chmod 600 {path}"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_files_are_accepted(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "k.json", keys.encrypt_keystore(KEY, PASSWORD, scrypt_n=CHEAP_N), mode)

    assert keys.read_keystore(path, PASSWORD) == KEY


BAD_KEYSTORES = {
    "huge scrypt n": {"kdfparams__n": 1 << 30},
    "scrypt memory over cap": {"kdfparams__n": 1 << 20, "kdfparams__r": 16},
    "scrypt work over cap": {"kdfparams__n": 1 << 18, "kdfparams__p": 64},
    "n not a power of two": {"kdfparams__n": 3},
    "n is a string": {"kdfparams__n": "262144"},
    "n is a bool": {"kdfparams__n": True},
    "dklen 64": {"kdfparams__dklen": 64},
    "no salt": {"kdfparams__salt": None},
    "unknown kdf": {"kdf": "argon2"},
    "other cipher": {"cipher": "aes-256-gcm"},
    "short iv": {"cipherparams__iv": "00" * 8},
    "short ciphertext": {"ciphertext": "00" * 16},
    "no mac": {"mac": None},
}


@pytest.mark.parametrize("changes", BAD_KEYSTORES.values(), ids=BAD_KEYSTORES.keys())
def test_bad_keystores_are_refused_before_any_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    path = write(tmp_path / "k.json", json.dumps(keystore_document(**changes)))

    def no_derivation(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a KDF ran on a keystore that should have been refused")

    monkeypatch.setattr(eth_keyfile.keyfile, "decode_keyfile_json", no_derivation)

    with pytest.raises(keys.KeyFileError, match="cannot be used"):
        keys.read_keystore(path, PASSWORD)


def test_costly_pbkdf2_and_other_prf_are_refused(tmp_path: Path) -> None:
    document = Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=1)
    for change in ({"c": keys.PBKDF2_MAX_ITERATIONS + 1}, {"prf": "hmac-sha512"}):
        changed = json.loads(json.dumps(document))
        changed["crypto"]["kdfparams"].update(change)
        path = write(tmp_path / "k.json", json.dumps(changed))

        with pytest.raises(keys.KeyFileError, match="pbkdf2"):
            keys.read_keystore(path, PASSWORD)


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('{"version": 4}', "not 3")],
)
def test_malformed_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path / "k.json", content)

    with pytest.raises(keys.KeyFileError, match=message):
        keys.read_keystore(path, PASSWORD)


def test_missing_large_and_non_regular_files_are_refused(tmp_path: Path) -> None:
    large = write(tmp_path / "large.json", b" " * (keys.KEY_FILE_MAX_BYTES + 1))
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)

    with pytest.raises(keys.KeyFileMissingError, match="does not exist"):
        keys.read_keystore(tmp_path / "absent.json", PASSWORD)
    with pytest.raises(keys.KeyFileError, match="larger than"):
        keys.read_keystore(large, PASSWORD)
    with pytest.raises(keys.KeyFileError, match="regular file"):
        keys.read_keystore(directory, PASSWORD)


def test_write_private_file_is_0600_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        keys.write_private_file(tmp_path / "secret", b"data")
    finally:
        os.umask(old)

    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secret").read_bytes() == b"data"


def test_write_private_file_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    keys.write_private_file(target, b"old")

    with pytest.raises(keys.KeyFileExistsError, match="refusing to overwrite"):
        keys.write_private_file(target, b"new")

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]  # no temporary left behind


def test_write_private_file_with_force_keeps_a_backup(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    keys.write_private_file(target, b"old")

    backup = keys.write_private_file(target, b"new", force=True)

    assert target.read_bytes() == b"new"
    assert backup is not None
    assert backup.read_bytes() == b"old"
    assert backup.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["secret", backup.name])


def test_write_private_file_works_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "secret"

    keys.write_private_file(target, b"old")
    with pytest.raises(keys.KeyFileExistsError):
        keys.write_private_file(target, b"new")
    backup = keys.write_private_file(target, b"new", force=True)

    assert target.read_bytes() == b"new"
    assert backup is not None
    assert backup.read_bytes() == b"old"
