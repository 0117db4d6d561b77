"""UnixFS files as IPFS builds them: raw-leaf chunks under a balanced tree of dag-pb nodes.

This is the importer of `ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`, written
from the UnixFS and dag-pb specs so that the embedded store and any IPFS daemon name the same
bytes with the same CID:

- the file is cut into 262144-byte chunks, each a `raw` block (a file of one chunk is that block;
  an empty file is the empty raw block);
- chunks are grouped under dag-pb nodes of at most 174 links, left to right; when a level
  overflows, a new level is started above it (go-unixfs's "balanced" layout);
- a node is a dag-pb UnixFS file node (`flare.protocol.dagpb`).

`FileHasher` builds the DAG incrementally (memory bounded by one chunk plus 174 links per level);
`iter_file` reads one back from any block source, verifying every block as it goes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from flare.protocol.cid import (
    CODEC_DAG_PB,
    CODEC_RAW,
    Cid,
    StorageIntegrityError,
    verify_block,
)
from flare.protocol.dagpb import FileLink, decode_file_node, encode_file_node
from flare.protocol.errors import IntegrityError

__all__ = [
    "CHUNK_SIZE",
    "MAX_DEPTH",
    "MAX_LINKS",
    "Block",
    "ContentTooLargeError",
    "FileHasher",
    "file_size",
    "iter_file",
]

CHUNK_SIZE = 262_144
MAX_LINKS = 174
MAX_DEPTH = 64  # a 256 KiB x 174-ary tree of any real file is < 10 levels; deeper is hostile


class ContentTooLargeError(IntegrityError):
    """A file is larger than the reader allowed; refused from its verified root, unread.

    An IntegrityError because content over the bound its reader sets (an update bundle's size
    bound, say) cannot be what it was registered as: callers skip it like any bad peer data.
    """

    def __init__(self, cid: str, size: int, limit: int) -> None:
        super().__init__(
            f"{cid} holds {size} bytes, more than the {limit} bytes this read allows",
            hint="nothing past its root block was read; skip it, or raise the limit if "
            "content this large is expected",
        )
        self.cid = cid
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Block:
    """One block as stored: its CID and its exact bytes.

    `data` may be a view into the `bytes` the importer was given, or into the caller's own
    buffer when the importer was built with `copy_chunks=False`, so that full chunks reach a
    store without being copied.
    """

    cid: Cid
    data: bytes | memoryview


class FileHasher:
    """Streaming UnixFS importer: feed bytes with `update`, get the root CID from `finish`.

    Every block is passed to `on_block` as soon as it is complete (children before parents, the
    root last), so a store can write them while the input is still being read; without
    `on_block` only digests are kept, which is the `--only-hash` path.

    A whole chunk handed to `update` at a chunk boundary becomes its leaf's `data` as it is: a
    view of immutable `bytes` always, and a view of any buffer with `copy_chunks=False`. Then
    the caller lends that buffer until the block's consumer is done with it (a store reusing
    read buffers once their blocks are written). Other bytes are buffered here, so copied.
    """

    def __init__(
        self,
        on_block: Callable[[Block], None] | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
        copy_chunks: bool = True,
    ) -> None:
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self._on_block = on_block
        self._copy_chunks = copy_chunks
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._pending = bytearray()
        self._levels: list[list[FileLink]] = [[]]
        self._leaves = 0
        self._finished = False
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the file (any length)."""
        if self._finished:
            raise ValueError("FileHasher.update() after finish()")
        view = memoryview(data).cast("B")
        self.size += len(view)
        chunk = self._chunk_size
        if self._pending:
            taken = chunk - len(self._pending)
            self._pending += view[:taken]
            view = view[taken:]
            if len(self._pending) < chunk:
                return
            self._add_leaf(self._pending)
            self._pending = bytearray()
        while len(view) >= chunk:
            self._add_leaf(view[:chunk])
            view = view[chunk:]
        self._pending += view

    def finish(self) -> Cid:
        """Close the file and return its root CID (the last block given to `on_block`)."""
        if self._finished:
            raise ValueError("FileHasher.finish() called twice")
        self._finished = True
        if self._pending or self._leaves == 0:
            self._add_leaf(self._pending)
        level = 0
        while True:
            links = self._levels[level]
            if level == len(self._levels) - 1 and len(links) == 1:
                return links[0].cid
            self._push(level + 1, self._seal(links))
            level += 1

    def _add_leaf(self, chunk: bytes | bytearray | memoryview) -> None:
        self._leaves += 1
        cid = Cid(CODEC_RAW, hashlib.sha256(chunk).digest())
        if self._on_block is not None:
            if isinstance(chunk, memoryview) and not self._copy_chunks:
                self._on_block(Block(cid, chunk))
            else:
                self._on_block(Block(cid, _frozen(chunk)))
        self._push(0, FileLink(cid, len(chunk), len(chunk)))

    def _push(self, level: int, link: FileLink) -> None:
        if level == len(self._levels):
            self._levels.append([])
        links = self._levels[level]
        if len(links) == self._max_links:
            parent = self._seal(links)
            links.clear()
            self._push(level + 1, parent)
        links.append(link)

    def _seal(self, links: list[FileLink]) -> FileLink:
        data = encode_file_node(links)
        cid = Cid.of_block(CODEC_DAG_PB, data)
        if self._on_block is not None:
            self._on_block(Block(cid, data))
        tsize = len(data) + sum(link.tsize for link in links)
        return FileLink(cid, tsize, sum(link.filesize for link in links))


def file_cid(data: bytes) -> Cid:
    """The CID a store gives `data` (what `ipfs add --only-hash` prints), computed in memory."""
    hasher = FileHasher()
    hasher.update(data)
    return hasher.finish()


def _frozen(chunk: bytes | bytearray | memoryview) -> bytes | memoryview:
    """`chunk` itself when nothing can change it later (a view of `bytes`), else a copy."""
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, memoryview) and isinstance(chunk.obj, bytes):
        return chunk
    return bytes(chunk)


def file_size(root: Cid, data: bytes) -> int:
    """Size in bytes of the file whose root block is `data` (verified here)."""
    verify_block(root, data)
    if root.codec == CODEC_RAW:
        return len(data)
    return decode_file_node(root, data).filesize


def iter_file(
    root: Cid,
    fetch: Callable[[Cid], bytes],
    *,
    hint: Callable[[Sequence[Cid]], None] | None = None,
    max_bytes: int | None = None,
) -> Iterator[bytes]:
    """Yield a file's bytes in order, fetching, verifying and checking every block.

    Each block must hash to its CID, and each child must hold exactly the bytes its parent's
    blocksizes promise, so truncated or substituted blocks fail with `StorageIntegrityError`
    naming the CID instead of yielding a wrong file. Memory: one block plus one path of nodes.
    `hint`, when given, hears each node's children as soon as it is decoded, so a backend can
    start fetching them ahead of the walk.

    With `max_bytes`, a file whose verified root declares more is refused with
    `ContentTooLargeError` before any other block is fetched or hinted. The root's size is the
    sum of its blocksizes, and every child is held to its blocksize, so a walk that passes that
    check can never yield more than the root declared.
    """
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
    stack: list[tuple[Iterator[FileLink], int]] = []
    pending: tuple[Cid, int | None, int] | None = (root, None, 0)
    while pending is not None or stack:
        if pending is None:
            links, depth = stack[-1]
            link = next(links, None)
            if link is None:
                stack.pop()
                continue
            pending = (link.cid, link.filesize, depth + 1)
        cid, expected, depth = pending
        pending = None
        data = fetch(cid)
        verify_block(cid, data)
        if cid.codec == CODEC_RAW:
            if max_bytes is not None and expected is None and len(data) > max_bytes:
                raise ContentTooLargeError(cid.text, len(data), max_bytes)
            if expected is not None and len(data) != expected:
                raise StorageIntegrityError(
                    cid.text, f"the block holds {len(data)} bytes, its parent says {expected}"
                )
            yield data
            continue
        node = decode_file_node(cid, data)
        if max_bytes is not None and expected is None and node.filesize > max_bytes:
            raise ContentTooLargeError(cid.text, node.filesize, max_bytes)
        if expected is not None and node.filesize != expected:
            raise StorageIntegrityError(
                cid.text, f"the node holds {node.filesize} bytes, its parent says {expected}"
            )
        if depth >= MAX_DEPTH:
            raise StorageIntegrityError(cid.text, f"the DAG is deeper than {MAX_DEPTH} levels")
        if hint is not None:
            hint([link.cid for link in node.links])
        if node.inline:
            yield node.inline
        stack.append((iter(node.links), depth))
