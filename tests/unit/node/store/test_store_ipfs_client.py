"""The IPFS backend without a daemon: retries, error mapping and verification of what it reads.

A dead daemon is a closed port on 127.0.0.1; a lying daemon is a stand-in client object. The
real-daemon tests live in tests/integration/ipfs.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from ipfshttpclient import exceptions as ipfs_errors

from flare.node.store.ipfs import DaemonError, IpfsStore, api_multiaddr
from flare.protocol.cid import CODEC_RAW, Cid, StorageIntegrityError
from flare.protocol.store import BlockNotFoundError, ContentTooLargeError, StoreUnavailableError
from flare.protocol.unixfs import CHUNK_SIZE, FileHasher

pytestmark = pytest.mark.filterwarnings(
    # ipfshttpclient 0.7 hands urllib3 2.x a deprecated argument; see flare.node.store.ipfs.
    "ignore:The 'strict' parameter is no longer needed:FutureWarning"
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_dead_daemon_is_retried_with_backoff_then_named() -> None:
    address = api_multiaddr("127.0.0.1", closed_port())
    slept: list[float] = []
    store = IpfsStore(address, retries=3, backoff=0.25, sleep=slept.append)

    with pytest.raises(StoreUnavailableError) as caught:
        store.pins()

    assert slept == [0.25, 0.5]
    assert caught.value.attempts == 3
    assert address in str(caught.value)
    assert "refused" in str(caught.value).lower()
    assert isinstance(caught.value, ConnectionError)


def test_a_one_shot_stream_is_not_retried() -> None:
    slept: list[float] = []
    store = IpfsStore(api_multiaddr("127.0.0.1", closed_port()), sleep=slept.append)

    class OneShot(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def read(self, size: int = -1) -> bytes:
            return b""

    with pytest.raises(StoreUnavailableError) as caught:
        store.put_stream(OneShot())  # type: ignore[arg-type]

    assert slept == []
    assert caught.value.attempts == 1


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "/ip4/127.0.0.1/tcp/5001/http"),
        ("ipfs.internal", "/dns/ipfs.internal/tcp/5001/http"),
        ("[::1]", "/ip6/::1/tcp/5001/http"),
    ],
)
def test_api_multiaddr(host: str, expected: str) -> None:
    assert api_multiaddr(host, 5001) == expected


def refused(message: str) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise ipfs_errors.ErrorResponse(message, None)

    return fail


def fake_store(**sections: Any) -> IpfsStore:
    store = IpfsStore("/ip4/127.0.0.1/tcp/5001/http", sleep=lambda _: None)
    client = SimpleNamespace(
        block=SimpleNamespace(), pin=SimpleNamespace(), repo=SimpleNamespace(), close=lambda: None
    )
    for name, value in sections.items():
        section, _, method = name.partition("_")
        if method:
            setattr(getattr(client, section), method, value)
        else:
            setattr(client, section, value)
    store._client = client  # type: ignore[assignment]
    return store


def test_a_block_that_does_not_match_its_cid_is_rejected() -> None:
    leaf = Cid.of_block(CODEC_RAW, b"the real bytes")
    store = fake_store(block_get=lambda cid, **_: b"something else")

    with pytest.raises(StorageIntegrityError) as caught:
        store.get(leaf.text)

    assert caught.value.cid == leaf.text


def test_blocks_are_read_through_the_dag_and_verified() -> None:
    data = bytes(range(256)) * (CHUNK_SIZE // 128)  # two chunks
    blocks: dict[str, bytes] = {}
    hasher = FileHasher(lambda block: blocks.__setitem__(block.cid.text, bytes(block.data)))
    hasher.update(data)
    root = hasher.finish()
    store = fake_store(block_get=lambda cid, **_: blocks[cid])

    assert store.get(root.text) == data
    assert store.size(root.text) == len(data)


def test_an_add_the_daemon_names_differently_is_an_integrity_error() -> None:
    other = Cid.of_block(CODEC_RAW, b"not these bytes").text
    unpinned: list[str] = []
    store = fake_store(
        add=lambda *_, **__: {"Hash": other}, pin_rm=lambda cid, **_: unpinned.append(cid)
    )

    with pytest.raises(StorageIntegrityError, match="hash to"):
        store.put(b"these bytes")

    assert unpinned == [other]


def test_add_passes_the_importer_settings() -> None:
    seen: dict[str, Any] = {}

    def add(stream: Any, **options: Any) -> dict[str, str]:
        seen.update(options)
        hasher = FileHasher()
        hasher.update(stream.read(-1))
        return {"Hash": hasher.finish().text}

    fake_store(add=add).put(b"content", pin=False)

    assert seen["cid_version"] == 1
    assert seen["raw_leaves"] is True
    assert seen["chunker"] == "size-262144"
    assert seen["pin"] is False
    assert seen["opts"] == {"cid-base": "base32", "hash": "sha2-256"}


def test_a_block_the_daemon_cannot_find_is_not_found() -> None:
    missing = Cid.of_block(CODEC_RAW, b"absent").text
    store = fake_store(
        block_get=refused("Failed to get block: request timed out"),
        block_stat=refused("context deadline exceeded"),
        pin_ls=refused(f"path '{missing}' is not pinned"),
    )

    with pytest.raises(BlockNotFoundError, match=missing):
        store.get(missing)
    assert store.has(missing) is False


def test_has_answers_from_a_recursive_pin_without_walking() -> None:
    pinned = Cid.of_block(CODEC_RAW, b"pinned")
    asked: list[str] = []

    def pin_ls(cid: str, **options: Any) -> dict[str, Any]:
        asked.append(options["type"])
        return {"Keys": {cid: {"Type": "recursive"}}}

    store = fake_store(pin_ls=pin_ls, block_stat=refused("must not be asked"))

    assert store.has(pinned.text) is True
    assert asked == ["recursive"]


def test_other_daemon_errors_are_reported_as_such() -> None:
    store = fake_store(block_get=refused("repo is locked"))

    with pytest.raises(DaemonError, match="repo is locked"):
        store.get(Cid.of_block(CODEC_RAW, b"x").text)


def test_unpin_of_something_not_pinned_is_false() -> None:
    store = fake_store(pin_rm=refused("Failed to remove pin: bafk... is not pinned"))

    assert store.unpin(Cid.of_block(CODEC_RAW, b"x").text) is False


def test_pins_are_listed_as_base32_cidv1_even_when_the_daemon_holds_cidv0() -> None:
    keys = {
        "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN": {"Type": "recursive"},
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am": {"Type": "recursive"},
    }
    store = fake_store(pin_ls=lambda **_: {"Keys": keys})

    assert store.pins() == [
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
        "bafybeiffndsajwhk3lwjewwdxqntmjm4b5wxaaanokonsggenkbw6slwk4",
    ]


def test_gc_counts_removed_blocks_and_surfaces_errors() -> None:
    removed = [{"Key": {"/": "bafkrei1"}}, {"Key": {"/": "bafkrei2"}}]

    assert fake_store(repo_gc=lambda **_: removed).gc().removed_blocks == 2
    with pytest.raises(DaemonError, match="disk"):
        fake_store(repo_gc=lambda **_: [{"Error": "disk on fire"}]).gc()


def test_an_unpin_that_fails_after_a_misnamed_add_keeps_the_integrity_error() -> None:
    other = Cid.of_block(CODEC_RAW, b"not these bytes").text
    adds: list[int] = []

    def add(*_: Any, **__: Any) -> dict[str, str]:
        adds.append(1)
        return {"Hash": other}

    def unreachable(*_: Any, **__: Any) -> None:
        raise ipfs_errors.ConnectionError("connection refused")

    for pin_rm in (refused("pin store is locked"), unreachable):
        adds.clear()
        store = fake_store(add=add, pin_rm=pin_rm)

        with pytest.raises(StorageIntegrityError, match="hash to") as caught:
            store.put(b"these bytes")

        assert adds == [1]  # a failed clean-up never re-runs the add
        assert caught.value.hint is not None
        assert f"its pin on {other} could not be removed" in caught.value.hint


def test_a_read_over_max_bytes_fetches_only_the_root() -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256)
    blocks: dict[str, bytes] = {}
    hasher = FileHasher(lambda block: blocks.__setitem__(block.cid.text, bytes(block.data)))
    hasher.update(data)
    root = hasher.finish()
    fetched: list[str] = []

    def block_get(cid: str, **_: Any) -> bytes:
        fetched.append(cid)
        return blocks[cid]

    store = fake_store(block_get=block_get)

    with pytest.raises(ContentTooLargeError) as caught:
        store.get(root.text, max_bytes=len(data) - 1)

    assert fetched == [root.text]
    assert caught.value.size == len(data)
    assert store.get(root.text, max_bytes=len(data)) == data
