"""Golden CIDs printed by real IPFS daemons (tests/vectors/cid/cid-vectors.json).

`files` came from `ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` on a daemon
started by tests/vectors/cid/regenerate.py (which does not use flare-node's CID code); the
`kubo` entries were produced by Kubo and published in the UnixFS spec and Kubo's test fixtures.
The two-level cases (more than 174 chunks) hash ~45 MB each, about a second in all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from flare.protocol.cid import (
    CODEC_DAG_PB,
    Cid,
    UnsupportedCidError,
    decode_cid,
    encode_cid,
)
from flare.protocol.dagpb import FileLink, encode_file_node
from flare.protocol.unixfs import FileHasher, iter_file

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "vectors" / "cid" / "cid-vectors.json").read_text()
)


def vector_content(name: str, size: int) -> bytes:
    return hashlib.shake_128(f"flare-cid-vector/{name}".encode()).digest(size)


def test_vectors_cover_every_dag_shape() -> None:
    sizes = {entry["size"] for entry in VECTORS["files"]}

    assert 0 in sizes
    assert 262_144 in sizes
    assert 262_145 in sizes
    assert max(sizes) > 174 * 262_144  # a two-level DAG


@pytest.mark.parametrize("entry", VECTORS["files"], ids=lambda entry: entry["name"])
def test_importer_matches_the_daemon(entry: dict[str, Any]) -> None:
    data = vector_content(entry["name"], entry["size"])
    blocks: dict[Cid, bytes] = {}
    hasher = FileHasher(lambda block: blocks.__setitem__(block.cid, bytes(block.data)))
    hasher.update(data)
    root = hasher.finish()

    assert root.text == entry["cid"]
    assert b"".join(iter_file(root, blocks.__getitem__)) == data


@pytest.mark.parametrize("entry", VECTORS["kubo"]["raw_files"], ids=lambda entry: entry["cid"])
def test_small_files_are_single_raw_blocks(entry: dict[str, Any]) -> None:
    hasher = FileHasher()
    hasher.update(entry["text"].encode())

    assert hasher.finish().text == entry["cid"]


@pytest.mark.parametrize("entry", VECTORS["kubo"]["file_nodes"], ids=lambda entry: entry["name"])
def test_file_node_encoding_matches_kubo(entry: dict[str, Any]) -> None:
    links = [
        FileLink(Cid.parse(leaf["cid"]), leaf["size"], leaf["size"]) for leaf in entry["leaves"]
    ]

    node = encode_file_node(links)

    assert len(node) == entry["root_block_size"]
    assert Cid.of_block(CODEC_DAG_PB, node).text == entry["root"]


@pytest.mark.parametrize("entry", VECTORS["kubo"]["cidv0_to_v1"], ids=lambda entry: entry["v0"])
def test_cidv0_converts_like_ipfs_cid_base32(entry: dict[str, str]) -> None:
    assert encode_cid(decode_cid(entry["v0"])) == entry["v1"]


@pytest.mark.parametrize("entry", VECTORS["kubo"]["unsupported"], ids=lambda entry: entry["why"])
def test_unsupported_cids_are_refused(entry: dict[str, str]) -> None:
    assert encode_cid(decode_cid(entry["cid"])) == entry["cid"]
    with pytest.raises(UnsupportedCidError):
        Cid.parse(entry["cid"])


@pytest.mark.parametrize("entry", VECTORS["kubo"]["inline_files"], ids=lambda entry: entry["cid"])
def test_legacy_inline_files_are_readable(entry: dict[str, Any]) -> None:
    text = entry["text"].encode()
    unixfs = b"\x08\x02\x12" + bytes([len(text)]) + text + b"\x18" + bytes([len(text)])
    block = b"\x0a" + bytes([len(unixfs)]) + unixfs
    root = Cid.parse(entry["cid"])

    assert len(block) == entry["root_block_size"]
    assert b"".join(iter_file(root, {root: block}.__getitem__)) == text
