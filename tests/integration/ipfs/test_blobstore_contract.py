"""One conformance suite for every BlobStore: the embedded store and a real IPFS daemon.

Whatever backend a node runs, these are the promises the rest of flare-node relies on.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from flare_testing import cid_of

from flare.node.store.embedded import EmbeddedStore
from flare.node.store.ipfs import IpfsStore
from flare.protocol.cid import CidError
from flare.protocol.store import BlobStore, BlockNotFoundError, ContentTooLargeError
from flare.protocol.unixfs import CHUNK_SIZE

pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'strict' parameter is no longer needed:FutureWarning"
)


@pytest.fixture(params=["embedded", pytest.param("ipfs", marks=pytest.mark.ipfs)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    backend: BlobStore
    if request.param == "embedded":
        backend = EmbeddedStore(tmp_path / "store")
    else:
        backend = IpfsStore(request.getfixturevalue("ipfs_api"), fetch_timeout=0.5)
    yield backend
    backend.close()


def unique(size: int) -> bytes:
    """Content no other test (sharing the daemon) has added."""
    return random.randbytes(size)


def test_conforms_to_the_port(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert store.location


@pytest.mark.parametrize("size", [0, 5, CHUNK_SIZE, 3 * CHUNK_SIZE + 1])
def test_put_then_get(store: BlobStore, size: int) -> None:
    data = unique(size)

    cid = store.put(data)

    assert cid == cid_of(data)
    assert store.get(cid) == data
    assert store.size(cid) == size
    assert store.has(cid)


def test_streams_in_and_out_with_progress(store: BlobStore) -> None:
    data = unique(2 * CHUNK_SIZE + 17)
    sent: list[int] = []
    received: list[int] = []

    cid = store.put_stream(io.BytesIO(data), progress=sent.append)
    pieces = list(store.get_stream(cid, progress=received.append))

    assert b"".join(pieces) == data
    assert sum(sent) == sum(received) == len(data)
    assert len(pieces) == 3


def test_pins_unpins_and_collects(store: BlobStore) -> None:
    kept = store.put(unique(CHUNK_SIZE + 1))
    loose = store.put(unique(CHUNK_SIZE + 2), pin=False)

    assert kept in store.pins()
    assert loose not in store.pins()
    report = store.gc()

    assert report.removed_blocks >= 3
    assert store.has(kept)
    assert not store.has(loose)
    assert store.unpin(kept) is True
    assert store.unpin(kept) is False
    store.gc()
    assert not store.has(kept)


def test_pin_keeps_content_added_unpinned(store: BlobStore) -> None:
    cid = store.put(unique(100), pin=False)

    store.pin(cid)
    store.gc()

    assert cid in store.pins()
    assert store.has(cid)
    store.unpin(cid)


def test_unknown_content_is_not_found(store: BlobStore) -> None:
    unknown = cid_of(unique(64))

    assert not store.has(unknown)
    with pytest.raises(BlockNotFoundError) as caught:
        store.get(unknown)

    assert unknown in str(caught.value)
    assert store.location in str(caught.value)


def test_bad_cid_text_is_a_config_error(store: BlobStore) -> None:
    with pytest.raises(CidError):
        store.get("bafy-not-a-cid")


def test_reads_over_max_bytes_are_refused(store: BlobStore) -> None:
    data = unique(2 * CHUNK_SIZE + 3)
    cid = store.put(data)

    assert store.get(cid, max_bytes=len(data)) == data
    with pytest.raises(ContentTooLargeError) as caught:
        store.get(cid, max_bytes=len(data) - 1)
    with pytest.raises(ContentTooLargeError):
        next(store.get_stream(cid, max_bytes=CHUNK_SIZE))

    assert caught.value.cid == cid
    assert caught.value.limit == len(data) - 1
    store.unpin(cid)
