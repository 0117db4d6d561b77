"""The IPFS backend against a real daemon: same CIDs as the embedded store, content crossing.

The golden files are the ones in tests/vectors/cid; each is added to the daemon and to the
embedded store, and both must print the committed CID. The two ~45 MB vectors next to the
two-level one are marked slow (the two-level DAG itself stays in the default run, ~2 s).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flare.node.store.embedded import EmbeddedStore
from flare.node.store.ipfs import IpfsStore
from flare.node.store.transfer import transfer
from flare.protocol.cid import CODEC_RAW, Cid
from flare.protocol.unixfs import CHUNK_SIZE

pytestmark = [
    pytest.mark.ipfs,
    pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning"),
]

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "vectors" / "cid" / "cid-vectors.json").read_text()
)
SLOW = {"full-first-level", "two-level-minimal"}


def vector_content(name: str, size: int) -> bytes:
    return hashlib.shake_128(f"flare-cid-vector/{name}".encode()).digest(size)


@pytest.fixture
def ipfs(ipfs_api: str) -> Iterator[IpfsStore]:
    with IpfsStore(ipfs_api, fetch_timeout=0.5) as store:
        yield store


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "store") as store:
        yield store


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            entry, id=entry["name"], marks=pytest.mark.slow if entry["name"] in SLOW else ()
        )
        for entry in VECTORS["files"]
    ],
)
def test_daemon_and_embedded_store_print_the_golden_cid(
    entry: dict[str, Any], ipfs: IpfsStore, embedded: EmbeddedStore
) -> None:
    data = vector_content(entry["name"], entry["size"])

    from_daemon = ipfs.put(data)  # pinned: js-ipfs gc deletes ~10 blocks/s, keep later gcs short
    from_embedded = embedded.put(data)

    assert from_daemon == from_embedded == entry["cid"]


def test_content_added_to_the_daemon_is_fetched_and_verified_into_the_embedded_store(
    ipfs: IpfsStore, embedded: EmbeddedStore
) -> None:
    data = random.randbytes(5 * CHUNK_SIZE + 3)
    cid = ipfs.put(data)

    copied = transfer(cid, ipfs, embedded)

    assert copied == cid
    assert embedded.get(cid) == data
    assert embedded.pins() == [cid]
    ipfs.unpin(cid)


def test_content_added_to_the_embedded_store_is_fetched_and_verified_from_the_daemon(
    ipfs: IpfsStore, embedded: EmbeddedStore
) -> None:
    data = random.randbytes(2 * CHUNK_SIZE + 11)
    cid = embedded.put(data)

    copied = transfer(cid, embedded, ipfs, pin=False)

    assert copied == cid
    assert ipfs.get(cid) == data
    assert ipfs.size(cid) == len(data)


def test_gc_on_the_daemon_keeps_pins_and_drops_the_rest(ipfs: IpfsStore) -> None:
    pinned = ipfs.put(random.randbytes(CHUNK_SIZE * 2))
    loose = ipfs.put(random.randbytes(CHUNK_SIZE * 2), pin=False)

    ipfs.gc()

    assert ipfs.has(pinned)
    assert not ipfs.has(loose)
    assert ipfs.unpin(pinned)
    ipfs.gc()
    assert not ipfs.has(pinned)


def test_pinning_unknown_content_fails_within_the_fetch_timeout(ipfs: IpfsStore) -> None:
    cid = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"  # sha256 of nothing here

    with pytest.raises(LookupError, match=cid):
        ipfs.pin(cid)


def remove_block(api: str, cid: str) -> None:
    """`ipfs block rm CID` over the RPC API, as an operator (or a disk failure) might."""
    _, _, host, _, port, _ = api.split("/")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", f"/api/v0/block/rm?arg={cid}")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_has_walks_unpinned_content_and_misses_a_removed_leaf(
    ipfs: IpfsStore, ipfs_api: str
) -> None:
    data = random.randbytes(CHUNK_SIZE * 3)
    whole = ipfs.put(data, pin=False)
    lost = ipfs.put(data[:CHUNK_SIZE] + random.randbytes(CHUNK_SIZE), pin=False)
    assert ipfs.has(whole)
    assert ipfs.has(lost)

    remove_block(ipfs_api, Cid.of_block(CODEC_RAW, data[:CHUNK_SIZE]).text)  # shared leaf

    assert not ipfs.has(whole)  # the root is there; a leaf is not
    assert not ipfs.has(lost)


def test_has_trusts_a_recursive_pin_without_walking(ipfs: IpfsStore) -> None:
    pinned = ipfs.put(random.randbytes(CHUNK_SIZE * 2 + 1))

    assert pinned in ipfs.pins()
    assert ipfs.has(pinned)
