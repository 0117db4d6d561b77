"""The node home: creating and loading its three keys, sealed keys and their caps, upgrades."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import nacl.pwhash
import pytest
from eth_keys.datatypes import PrivateKey

from flare.node import identity, keys
from flare.node.identity import KeyType

PASSWORD = "correct horse battery staple"
# The cheapest costs the formats allow: tests check behaviour, not the KDF's strength.
CHEAP = identity.KdfCost(
    scrypt_n=2,
    argon2_opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
    argon2_memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN,
)
SECRET = bytes(range(32))
KEY_FILES = ["bls.json", "ethereum.json", "peer.json"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "node-home"


def sealed(tmp_path: Path, key_type: KeyType = KeyType.ED25519, **changes: Any) -> Path:
    document = json.loads(
        identity.seal_secret_key(
            SECRET,
            PASSWORD,
            key_type=key_type,
            opslimit=CHEAP.argon2_opslimit,
            memlimit=CHEAP.argon2_memlimit,
        )
    )
    for name, value in changes.items():
        section, _, field = name.partition("__")
        if field:
            document[section][field] = value
        else:
            document[section] = value
    path = tmp_path / "sealed.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def test_create_writes_private_files_in_a_private_home(home: Path) -> None:
    old = os.umask(0o022)
    try:
        created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    finally:
        os.umask(old)

    assert home.stat().st_mode & 0o777 == 0o700
    assert created.paths.keys_dir.stat().st_mode & 0o777 == 0o700
    for path in created.paths.all:
        assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in created.paths.keys_dir.iterdir()) == KEY_FILES
    assert created.backups == ()


def test_load_returns_the_keys_that_create_made(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    loaded = identity.load_node_keys(home, PASSWORD)

    assert loaded.identity == created.identity
    assert PrivateKey(loaded.ethereum_key).public_key.to_checksum_address() == (
        created.identity.address
    )
    assert KeyType.BLS12_381.public_key(loaded.bls_secret_key) == created.identity.bls_public_key
    assert KeyType.ED25519.public_key(loaded.peer_secret_key) == created.identity.peer_public_key
    assert len(created.identity.bls_public_key) == 256
    assert len(created.identity.peer_public_key) == 32


def test_public_identity_needs_no_password(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    assert identity.read_identity(home) == created.identity


def test_keys_are_fresh_for_every_node(tmp_path: Path) -> None:
    first = identity.create_node_keys(tmp_path / "a", PASSWORD, cost=CHEAP).identity
    second = identity.create_node_keys(tmp_path / "b", PASSWORD, cost=CHEAP).identity

    assert first.address != second.address
    assert first.bls_public_key != second.bls_public_key
    assert first.peer_public_key != second.peer_public_key


def test_existing_keys_are_not_overwritten_without_force(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    before = {p: p.read_bytes() for p in created.paths.all}

    with pytest.raises(keys.KeyFileExistsError, match="already holds keys"):
        identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    assert {p: p.read_bytes() for p in before} == before


def test_force_replaces_keys_and_keeps_loadable_backups(home: Path, tmp_path: Path) -> None:
    old = identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    new = identity.create_node_keys(home, "another password", cost=CHEAP, force=True)

    assert new.identity != old.identity
    assert identity.load_node_keys(home, "another password").identity == new.identity
    ethereum_backup, bls_backup, peer_backup = new.backups
    assert keys.keystore_address(ethereum_backup) == old.identity.address.lower()
    assert KeyType.BLS12_381.public_key(
        identity.open_sealed_key(bls_backup, PASSWORD, KeyType.BLS12_381)
    ) == (old.identity.bls_public_key)
    assert KeyType.ED25519.public_key(
        identity.open_sealed_key(peer_backup, PASSWORD, KeyType.ED25519)
    ) == (old.identity.peer_public_key)


def fail_when_target_is(
    monkeypatch: pytest.MonkeyPatch, function: str, name: str, code: int = errno.EIO
) -> None:
    """Make os.<function>(source, target) fail for a target called `name`, pass otherwise."""
    real = getattr(os, function)

    def failing(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(target).name == name:
            raise OSError(code, os.strerror(code), str(source), None, str(target))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(os, function, failing)


def test_a_failed_second_key_swap_leaves_the_old_pair(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    fail_when_target_is(monkeypatch, "replace", "peer.json")

    with pytest.raises(keys.KeyFileError, match="cannot write"):
        identity.create_node_keys(home, "another password", cost=CHEAP, force=True)

    monkeypatch.undo()
    assert identity.load_node_keys(home, PASSWORD).identity == old.identity
    assert sorted(p.name for p in old.paths.keys_dir.iterdir()) == KEY_FILES


def test_a_failed_first_creation_leaves_no_half_pair(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_when_target_is(monkeypatch, "link", "peer.json")

    with pytest.raises(keys.KeyFileError, match="cannot write"):
        identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    assert list(identity.KeyPaths(home).keys_dir.iterdir()) == []


def test_a_full_disk_is_met_before_any_key_is_replaced(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    real_open = os.open

    def full_for_the_peer_key(path: Any, flags: int, *args: Any) -> int:
        if Path(path).name.startswith(".peer.json.") and flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", full_for_the_peer_key)
    with pytest.raises(keys.KeyFileError, match="No space left"):
        identity.create_node_keys(home, "another password", cost=CHEAP, force=True)

    monkeypatch.undo()
    assert identity.load_node_keys(home, PASSWORD).identity == old.identity
    assert sorted(p.name for p in old.paths.keys_dir.iterdir()) == KEY_FILES


def test_keys_already_there_are_refused_even_when_only_one_exists(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    created.paths.ethereum.unlink()
    created.paths.bls.unlink()

    with pytest.raises(keys.KeyFileExistsError, match=r"already holds keys \(peer\.json\)"):
        identity.refuse_existing_keys(home)
    with pytest.raises(keys.KeyFileExistsError, match="already holds keys"):
        identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    identity.refuse_existing_keys(home / "elsewhere")  # a home without keys passes


def test_wrong_password_is_reported_for_every_key(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    with pytest.raises(keys.WrongPasswordError, match="keystore"):
        identity.load_node_keys(home, "wrong password")
    with pytest.raises(keys.WrongPasswordError, match="sealed key"):
        identity.open_sealed_key(created.paths.bls, "wrong password", KeyType.BLS12_381)
    with pytest.raises(keys.WrongPasswordError, match="sealed key"):
        identity.open_sealed_key(created.paths.peer, "wrong password", KeyType.ED25519)


def test_loading_refuses_group_readable_key_files(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    created.paths.bls.chmod(0o640)

    with pytest.raises(keys.InsecureKeyFileError):
        identity.load_node_keys(home, PASSWORD)
    with pytest.raises(keys.InsecureKeyFileError):
        identity.read_identity(home)


def test_missing_home_points_to_init(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyFileMissingError) as caught:
        identity.read_identity(tmp_path / "nowhere")

    assert caught.value.hint is not None
    assert "flare-node init" in caught.value.hint


def test_altered_keystore_address_is_detected(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    document = json.loads(created.paths.ethereum.read_text())
    document["address"] = "00" * 20
    created.paths.ethereum.write_text(json.dumps(document))

    with pytest.raises(keys.KeyMismatchError, match="not the address it declares"):
        identity.load_node_keys(home, PASSWORD)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_sealed_key_round_trip(tmp_path: Path, key_type: KeyType) -> None:
    path = sealed(tmp_path, key_type)

    assert identity.open_sealed_key(path, PASSWORD, key_type) == SECRET
    assert identity.sealed_public_key(path, key_type) == key_type.public_key(SECRET)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_sealed_key_with_a_swapped_public_key_is_detected(
    tmp_path: Path, key_type: KeyType
) -> None:
    path = sealed(tmp_path, key_type, public_key=key_type.public_key(b"\x01" * 32).hex())

    with pytest.raises(keys.KeyMismatchError):
        identity.open_sealed_key(path, PASSWORD, key_type)


def test_a_sealed_key_of_the_other_type_is_refused_before_derivation(tmp_path: Path) -> None:
    path = sealed(tmp_path, KeyType.ED25519)

    with pytest.raises(keys.KeyFileError, match="holds a 'ed25519' key, not bls12-381"):
        identity.open_sealed_key(path, PASSWORD, KeyType.BLS12_381)


def test_a_sealed_file_without_a_type_is_an_earlier_ed25519_key(tmp_path: Path) -> None:
    path = sealed(tmp_path, KeyType.ED25519)
    document = json.loads(path.read_text())
    del document["key_type"]
    path.write_text(json.dumps(document))

    assert identity.open_sealed_key(path, PASSWORD, KeyType.ED25519) == SECRET


def test_sealed_key_with_altered_ciphertext_fails_authentication(tmp_path: Path) -> None:
    document = json.loads(sealed(tmp_path).read_text())
    ciphertext = bytearray.fromhex(document["cipher"]["ciphertext"])
    ciphertext[0] ^= 1
    path = sealed(tmp_path, cipher__ciphertext=ciphertext.hex())

    with pytest.raises(keys.WrongPasswordError):
        identity.open_sealed_key(path, PASSWORD, KeyType.ED25519)


BAD_SEALED = {
    "opslimit over cap": {"kdf__opslimit": identity.ARGON2_MAX_OPSLIMIT + 1},
    "memlimit over cap": {"kdf__memlimit": identity.ARGON2_MAX_MEMLIMIT * 2},
    "memlimit under libsodium minimum": {"kdf__memlimit": 1024},
    "opslimit zero": {"kdf__opslimit": 0},
    "opslimit as text": {"kdf__opslimit": "2"},
    "not argon2id": {"kdf__name": "scrypt"},
    "short salt": {"kdf__salt": "00" * 8},
    "other cipher": {"cipher__name": "aes-gcm"},
    "short nonce": {"cipher__nonce": "00" * 12},
    "short ciphertext": {"cipher__ciphertext": "00" * 32},
    "unknown format": {"format": "flare-sealed-key/2"},
    "bad public key": {"public_key": "zz"},
}


@pytest.mark.parametrize("changes", BAD_SEALED.values(), ids=BAD_SEALED.keys())
def test_bad_sealed_keys_are_refused_before_any_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    path = sealed(tmp_path, **changes)

    def no_derivation(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("Argon2id ran on a sealed key that should have been refused")

    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", no_derivation)

    with pytest.raises(keys.KeyFileError, match="cannot be used"):
        identity.open_sealed_key(path, PASSWORD, KeyType.ED25519)


def test_node_keys_never_show_secrets_in_repr(home: Path) -> None:
    identity.create_node_keys(home, PASSWORD, cost=CHEAP)

    loaded = identity.load_node_keys(home, PASSWORD)

    text = repr(loaded)
    assert loaded.ethereum_key.hex() not in text
    for secret in (loaded.ethereum_key, loaded.bls_secret_key, loaded.peer_secret_key):
        assert secret.hex() not in text
        assert repr(secret) not in text


def test_a_home_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(keys.KeyFileError, match="cannot create the key directory"):
        identity.create_node_keys(blocker / "home", PASSWORD, cost=CHEAP)


def legacy_home(home: Path) -> identity.KeyPaths:
    """A home as an earlier flare-node made it: ethereum.json and the ed25519 key as vrf.json."""
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    created.paths.bls.unlink()
    created.paths.peer.rename(created.paths.legacy_vrf)
    return created.paths


def test_an_earlier_home_is_named_and_pointed_to_add_bls(home: Path) -> None:
    legacy_home(home)

    for load in (
        lambda: identity.read_identity(home),
        lambda: identity.load_node_keys(home, PASSWORD),
    ):
        with pytest.raises(keys.KeyFileMissingError, match="no BLS key") as caught:
            load()
        assert caught.value.hint is not None
        assert "keys add-bls" in caught.value.hint


def test_add_bls_upgrades_an_earlier_home_and_keeps_its_peer_key(home: Path) -> None:
    paths = legacy_home(home)
    peer = identity.sealed_public_key(paths.legacy_vrf, KeyType.ED25519)
    address = keys.keystore_address(paths.ethereum)

    added = identity.add_bls_key(home, PASSWORD, cost=CHEAP)

    assert sorted(p.name for p in paths.keys_dir.iterdir()) == KEY_FILES
    assert paths.bls.stat().st_mode & 0o777 == 0o600
    loaded = identity.load_node_keys(home, PASSWORD)
    assert loaded.identity == added.identity
    assert loaded.identity.peer_public_key == peer
    assert loaded.identity.address.lower() == address


def test_add_bls_needs_the_homes_password_and_changes_nothing_without_it(home: Path) -> None:
    paths = legacy_home(home)

    with pytest.raises(keys.WrongPasswordError):
        identity.add_bls_key(home, "wrong password", cost=CHEAP)

    assert sorted(p.name for p in paths.keys_dir.iterdir()) == ["ethereum.json", "vrf.json"]


def test_add_bls_refuses_a_home_that_has_one(home: Path) -> None:
    created = identity.create_node_keys(home, PASSWORD, cost=CHEAP)
    before = created.paths.bls.read_bytes()

    with pytest.raises(keys.KeyFileExistsError, match="already exists"):
        identity.add_bls_key(home, PASSWORD, cost=CHEAP)

    assert created.paths.bls.read_bytes() == before


def test_an_earlier_home_counts_as_holding_keys(home: Path) -> None:
    legacy_home(home)

    with pytest.raises(keys.KeyFileExistsError, match=r"vrf\.json"):
        identity.refuse_existing_keys(home)
