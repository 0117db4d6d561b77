"""The UnixFS importer against an independent bottom-up reference, and the verifying reader.

The reference below rebuilds the balanced layout the way the spec describes it (group the
leaves in runs of `max_links`, then group the parents, until one node is left) with its own
protobuf encoder, so a shared bug would have to be made twice. Small chunk sizes and fan-outs
let hypothesis reach multi-level trees with a few kilobytes.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flare.protocol.cid import (
    CODEC_DAG_PB,
    CODEC_RAW,
    Cid,
    StorageIntegrityError,
    UnsupportedCidError,
)
from flare.protocol.dagpb import FileLink, block_links, decode_file_node, encode_file_node
from flare.protocol.unixfs import (
    MAX_DEPTH,
    Block,
    ContentTooLargeError,
    FileHasher,
    file_size,
    iter_file,
)


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def _ld(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _reference(data: bytes, chunk: int, max_links: int) -> tuple[bytes, dict[bytes, bytes]]:
    """(root binary CID, {binary CID: block}) built bottom-up from the spec."""
    blocks: dict[bytes, bytes] = {}
    level = []  # (binary cid, tsize, file bytes)
    for start in range(0, max(len(data), 1), chunk):
        leaf = data[start : start + chunk]
        cid = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(leaf).digest()
        blocks[cid] = leaf
        level.append((cid, len(leaf), len(leaf)))
    while len(level) > 1:
        parents = []
        for start in range(0, len(level), max_links):
            group = level[start : start + max_links]
            total = sum(size for _, _, size in group)
            unixfs = b"\x08\x02\x18" + _varint(total)
            unixfs += b"".join(b"\x20" + _varint(size) for _, _, size in group)
            links = b"".join(
                _ld(0x12, _ld(0x0A, cid) + b"\x12\x00\x18" + _varint(tsize))
                for cid, tsize, _ in group
            )
            node = links + _ld(0x0A, unixfs)
            cid = bytes([1, 0x70, 0x12, 0x20]) + hashlib.sha256(node).digest()
            blocks[cid] = node
            parents.append((cid, len(node) + sum(t for _, t, _ in group), total))
        level = parents
    return level[0][0], blocks


def _import(data: bytes, chunk: int, max_links: int) -> tuple[Cid, list[Block]]:
    emitted: list[Block] = []
    hasher = FileHasher(emitted.append, chunk_size=chunk, max_links=max_links)
    hasher.update(data)
    return hasher.finish(), emitted


shapes = st.tuples(
    st.binary(max_size=4096), st.integers(min_value=1, max_value=64), st.integers(2, 5)
)


@settings(max_examples=150, deadline=None)
@given(shapes)
def test_importer_matches_the_bottom_up_reference(shape: tuple[bytes, int, int]) -> None:
    data, chunk, max_links = shape

    root, emitted = _import(data, chunk, max_links)
    expected_root, expected_blocks = _reference(data, chunk, max_links)

    assert root.binary == expected_root
    assert {block.cid.binary: bytes(block.data) for block in emitted} == expected_blocks
    assert emitted[-1].cid == root


@settings(max_examples=100, deadline=None)
@given(shapes)
def test_reader_returns_the_imported_bytes(shape: tuple[bytes, int, int]) -> None:
    data, chunk, max_links = shape
    root, emitted = _import(data, chunk, max_links)
    store = {block.cid: bytes(block.data) for block in emitted}

    assert b"".join(iter_file(root, store.__getitem__)) == data
    assert file_size(root, store[root]) == len(data)


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
def test_how_bytes_are_fed_does_not_change_the_cid(data: bytes, cuts: list[int]) -> None:
    whole = FileHasher(chunk_size=256, max_links=3)
    whole.update(data)
    pieces = FileHasher(chunk_size=256, max_links=3)
    previous = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        pieces.update(data[previous:cut])
        previous = cut

    assert pieces.finish() == whole.finish()
    assert pieces.size == len(data)


def test_children_are_emitted_before_their_parents() -> None:
    _, emitted = _import(bytes(range(256)) * 40, chunk=100, max_links=3)
    seen: set[Cid] = set()

    for block in emitted:
        assert set(block_links(block.cid, bytes(block.data))) <= seen
        seen.add(block.cid)


def test_hasher_refuses_use_after_finish() -> None:
    hasher = FileHasher()
    hasher.finish()

    with pytest.raises(ValueError, match="after finish"):
        hasher.update(b"late")
    with pytest.raises(ValueError, match="twice"):
        hasher.finish()


def _tree(data: bytes) -> tuple[Cid, dict[Cid, bytes]]:
    root, emitted = _import(data, chunk=10, max_links=3)
    return root, {block.cid: bytes(block.data) for block in emitted}


def test_a_substituted_block_is_rejected_naming_it() -> None:
    root, store = _tree(bytes(range(95)))
    victim = next(cid for cid in store if cid.codec == CODEC_RAW)
    store[victim] = b"X" * len(store[victim])

    with pytest.raises(StorageIntegrityError) as caught:
        b"".join(iter_file(root, store.__getitem__))

    assert caught.value.cid == victim.text


def test_a_leaf_shorter_than_its_parent_promises_is_rejected() -> None:
    leaf = Cid.of_block(CODEC_RAW, b"12345")
    node = encode_file_node([FileLink(leaf, 5, 10)])  # claims 10 bytes below the link
    root = Cid.of_block(CODEC_DAG_PB, node)
    store = {root: node, leaf: b"12345"}

    with pytest.raises(StorageIntegrityError, match="5 bytes, its parent says 10") as caught:
        list(iter_file(root, store.__getitem__))

    assert caught.value.cid == leaf.text


def test_a_missing_block_surfaces_the_fetch_error() -> None:
    root, store = _tree(bytes(50))
    del store[next(cid for cid in store if cid.codec == CODEC_RAW)]

    with pytest.raises(KeyError):
        list(iter_file(root, store.__getitem__))


def test_hint_announces_children_in_walk_order() -> None:
    root, store = _tree(bytes(range(200)))
    hinted: list[Cid] = []
    fetched: list[Cid] = []

    def fetch(cid: Cid) -> bytes:
        fetched.append(cid)
        return store[cid]

    list(iter_file(root, fetch, hint=hinted.extend))

    assert set(hinted) == set(store) - {root}
    assert fetched[0] == root
    assert [cid for cid in fetched if cid.codec == CODEC_RAW] == [
        cid for cid in hinted if cid.codec == CODEC_RAW
    ]


def _node(unixfs: bytes, links: bytes = b"") -> tuple[Cid, bytes]:
    data = links + _ld(0x0A, unixfs)
    return Cid.of_block(CODEC_DAG_PB, data), data


def test_a_directory_is_refused_as_unsupported() -> None:
    cid, data = _node(b"\x08\x01")

    with pytest.raises(UnsupportedCidError, match="not a file"):
        decode_file_node(cid, data)


@pytest.mark.parametrize(
    ("unixfs", "links", "reason"),
    [
        (b"\x08\x02\x18\x05", b"", "filesize 5"),
        (b"\x08\x02\x18\x01\x20\x01\x20\x01", b"", "0 links but 2 blocksizes"),
        (b"\x08\x02\x18\x00\x28", b"", "protobuf"),
        (b"\x08\x02\x0d\x00\x00\x00\x00", b"", "wire type 5"),
    ],
)
def test_malformed_file_nodes_are_rejected(unixfs: bytes, links: bytes, reason: str) -> None:
    cid, data = _node(unixfs, links)

    with pytest.raises(StorageIntegrityError, match=reason):
        decode_file_node(cid, data)


def test_a_named_chunk_link_is_rejected() -> None:
    leaf = Cid.of_block(CODEC_RAW, b"a")
    link = _ld(0x12, _ld(0x0A, leaf.binary) + _ld(0x12, b"name") + b"\x18\x01")
    cid, data = _node(b"\x08\x02\x18\x01\x20\x01", link)

    with pytest.raises(StorageIntegrityError, match="name"):
        decode_file_node(cid, data)


def test_inline_data_of_legacy_nodes_is_read_first() -> None:
    leaf = Cid.of_block(CODEC_RAW, b"tail")
    link = _ld(0x12, _ld(0x0A, leaf.binary) + b"\x18\x04")
    root, data = _node(b"\x08\x02" + _ld(0x12, b"head") + b"\x18\x08\x20\x04", link)
    store = {root: data, leaf: b"tail"}

    assert b"".join(iter_file(root, store.__getitem__)) == b"headtail"


def test_a_dag_deeper_than_the_limit_is_refused() -> None:
    child = Cid.of_block(CODEC_RAW, b"x")
    store = {child: b"x"}
    for _ in range(MAX_DEPTH + 1):
        node = encode_file_node([FileLink(child, 1, 1)])
        child = Cid.of_block(CODEC_DAG_PB, node)
        store[child] = node

    with pytest.raises(StorageIntegrityError, match="deeper"):
        list(iter_file(child, store.__getitem__))


@settings(max_examples=100, deadline=None)
@given(shapes, st.integers(min_value=0, max_value=5000))
def test_max_bytes_refuses_exactly_the_files_over_it(
    shape: tuple[bytes, int, int], max_bytes: int
) -> None:
    data, chunk, max_links = shape
    root, emitted = _import(data, chunk, max_links)
    store = {block.cid: bytes(block.data) for block in emitted}
    fetched: list[Cid] = []
    hinted: list[Cid] = []

    def fetch(cid: Cid) -> bytes:
        fetched.append(cid)
        return store[cid]

    if len(data) <= max_bytes:
        assert b"".join(iter_file(root, fetch, max_bytes=max_bytes)) == data
        return
    with pytest.raises(ContentTooLargeError) as caught:
        list(iter_file(root, fetch, hint=hinted.extend, max_bytes=max_bytes))

    assert fetched == [root]  # refused from the verified root, before any child is read
    assert hinted == []
    assert (caught.value.cid, caught.value.size, caught.value.limit) == (
        root.text,
        len(data),
        max_bytes,
    )


def test_a_lying_root_cannot_pass_max_bytes() -> None:
    leaf = Cid.of_block(CODEC_RAW, b"0123456789")
    node = encode_file_node([FileLink(leaf, 10, 4)])  # claims 4 bytes, the leaf holds 10
    root = Cid.of_block(CODEC_DAG_PB, node)

    with pytest.raises(StorageIntegrityError, match="10 bytes, its parent says 4"):
        list(iter_file(root, {root: node, leaf: b"0123456789"}.__getitem__, max_bytes=5))


def test_max_bytes_must_not_be_negative() -> None:
    root, store = _tree(b"abc")

    with pytest.raises(ValueError, match="max_bytes"):
        list(iter_file(root, store.__getitem__, max_bytes=-1))


def test_whole_chunks_of_a_mutable_buffer_are_copied_unless_lent() -> None:
    buffer = bytearray(b"a" * 10 + b"b" * 10)
    copied: list[Block] = []
    lent: list[Block] = []

    for blocks, copy_chunks in ((copied, True), (lent, False)):
        hasher = FileHasher(blocks.append, chunk_size=10, copy_chunks=copy_chunks)
        hasher.update(memoryview(buffer))
        hasher.finish()
    buffer[:] = b"c" * 20  # what a store reusing its read buffer does next

    assert [bytes(block.data) for block in copied[:2]] == [b"a" * 10, b"b" * 10]
    assert [bytes(block.data) for block in lent[:2]] == [b"c" * 10, b"c" * 10]
    assert [block.cid for block in lent] == [block.cid for block in copied]
