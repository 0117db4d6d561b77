"""dag-pb nodes carrying UnixFS file data: the bytes IPFS hashes for every inner node of a file.

A node is a protobuf PBNode whose links (Hash, Name "", Tsize) precede its Data, a UnixFS
message {Type: File, filesize, blocksizes[]}; Tsize counts every block byte under the link,
blocksizes the file bytes. Encoding writes exactly what Kubo writes (checked against Kubo's own
fixtures in tests/vectors/cid); decoding reads what any importer wrote, checks the sizes add up,
and turns anything else into `StorageIntegrityError` naming the block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from flare.protocol.cid import (
    CODEC_DAG_PB,
    CODEC_RAW,
    Cid,
    CidError,
    StorageIntegrityError,
    UnsupportedCidError,
    decode_varint,
    encode_varint,
)

__all__ = ["FileLink", "FileNode", "block_links", "decode_file_node", "encode_file_node"]

_FILE = 2  # UnixFS Data.Type File
_LEGACY_RAW = 0  # UnixFS Data.Type Raw: old importers' dag-pb-wrapped leaves, readable only


@dataclass(frozen=True, slots=True)
class FileLink:
    """A child of a file node: CID, Tsize (block bytes below) and blocksize (file bytes below)."""

    cid: Cid
    tsize: int
    filesize: int


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded dag-pb file node: inline bytes first, then the children's bytes in order."""

    links: tuple[FileLink, ...]
    inline: bytes
    filesize: int


def _field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


# Keys of the fields every link repeats, encoded once: (field number << 3) | wire type.
_LINK = b"\x12"  # PBNode.Links, length-delimited
_LINK_HASH = b"\x0a"  # PBLink.Hash, length-delimited
_EMPTY_NAME = b"\x12\x00"  # PBLink.Name = "", as Kubo writes it
_LINK_TSIZE = b"\x18"  # PBLink.Tsize, varint
_BLOCKSIZE = b"\x20"  # Data.blocksizes, varint (unpacked, as Kubo writes it)


def encode_file_node(links: Sequence[FileLink]) -> bytes:
    """The dag-pb bytes of a UnixFS file node over `links` (no inline data).

    Field keys are spelled out once above: an add of 256 MiB encodes some 1,000 links, and
    building every key from its field number cost more than the rest of the encoding.
    """
    total = sum(link.filesize for link in links)
    unixfs = [_field_varint(1, _FILE), _field_varint(3, total)]
    unixfs.extend(_BLOCKSIZE + encode_varint(link.filesize) for link in links)
    encoded: list[bytes] = []
    for link in links:
        binary = link.cid.binary
        body = b"".join(
            (
                _LINK_HASH,
                encode_varint(len(binary)),
                binary,
                _EMPTY_NAME,
                _LINK_TSIZE,
                encode_varint(link.tsize),
            )
        )
        encoded += (_LINK, encode_varint(len(body)), body)
    return b"".join(encoded) + _field_bytes(1, b"".join(unixfs))


def _fields(cid: Cid, data: bytes | memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of a protobuf message; only varint and length-delimited wires."""
    view = memoryview(data)
    offset = 0
    try:
        while offset < len(view):
            key, offset = decode_varint(view, offset)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, offset = decode_varint(view, offset)
                yield number, value
            elif wire == 2:
                length, offset = decode_varint(view, offset)
                if offset + length > len(view):
                    raise ValueError("a length-delimited field runs past the end")
                yield number, view[offset : offset + length]
                offset += length
            else:
                raise ValueError(f"protobuf wire type {wire} is not used by dag-pb or UnixFS")
    except ValueError as error:
        raise StorageIntegrityError(cid.text, f"not valid protobuf: {error}") from error


def _packed_varints(cid: Cid, data: memoryview) -> list[int]:
    values: list[int] = []
    offset = 0
    try:
        while offset < len(data):
            value, offset = decode_varint(data, offset)
            values.append(value)
    except ValueError as error:
        raise StorageIntegrityError(cid.text, f"bad packed blocksizes: {error}") from error
    return values


_LINK_PREFIXES = {
    bytes((1, CODEC_RAW, 0x12, 32)): CODEC_RAW,
    bytes((1, CODEC_DAG_PB, 0x12, 32)): CODEC_DAG_PB,
}


def _link_target(parent: Cid, binary: bytes) -> Cid:
    """The CID in a PBLink's Hash; CIDv0 links (older DAGs) read as their dag-pb CIDv1."""
    codec = _LINK_PREFIXES.get(binary[:4])
    if codec is not None and len(binary) == 36:  # the common case, without the general parser
        return Cid(codec, binary[4:])
    if len(binary) == 34 and binary[:2] == b"\x12\x20":
        return Cid(CODEC_DAG_PB, binary[2:])
    try:
        return Cid.from_binary(binary)
    except UnsupportedCidError:
        raise
    except CidError as error:
        raise StorageIntegrityError(parent.text, f"a link is not a CID: {error}") from error


def _pb_node(cid: Cid, data: bytes) -> tuple[list[tuple[Cid, int, str]], bytes | None]:
    """(links as (cid, tsize, name), Data) of a dag-pb block."""
    links: list[tuple[Cid, int, str]] = []
    payload: bytes | None = None
    for number, value in _fields(cid, data):
        if number == 2 and isinstance(value, memoryview):
            target, tsize, name = None, 0, ""
            for sub, item in _fields(cid, value):
                if sub == 1 and isinstance(item, memoryview):
                    target = _link_target(cid, bytes(item))
                elif sub == 2 and isinstance(item, memoryview):
                    name = bytes(item).decode("utf-8", errors="replace")
                elif sub == 3 and isinstance(item, int):
                    tsize = item
                else:
                    raise StorageIntegrityError(cid.text, f"unexpected PBLink field {sub}")
            if target is None:
                raise StorageIntegrityError(cid.text, "a dag-pb link has no Hash")
            links.append((target, tsize, name))
        elif number == 1 and isinstance(value, memoryview) and payload is None:
            payload = bytes(value)
        else:
            raise StorageIntegrityError(cid.text, f"unexpected PBNode field {number}")
    return links, payload


def block_links(cid: Cid, data: bytes) -> list[Cid]:
    """CIDs a block links to (none for raw blocks): what pinning and gc follow."""
    if cid.codec == CODEC_RAW:
        return []
    return [target for target, _, _ in _pb_node(cid, data)[0]]


def decode_file_node(cid: Cid, data: bytes) -> FileNode:
    """Decode and check a dag-pb UnixFS file node (already verified against `cid`)."""
    links, payload = _pb_node(cid, data)
    if payload is None:
        raise StorageIntegrityError(cid.text, "the dag-pb node carries no UnixFS data")
    kind: int | None = None
    inline = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, value in _fields(cid, payload):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, memoryview):
            inline = bytes(value)
        elif number == 3 and isinstance(value, int):
            filesize = value
        elif number == 4 and isinstance(value, int):
            blocksizes.append(value)
        elif number == 4 and isinstance(value, memoryview):  # a packed encoder's blocksizes
            blocksizes.extend(_packed_varints(cid, value))
        elif number in (5, 6, 7, 8):  # hashType/fanout (HAMT only), mode, mtime: not needed
            continue
        else:
            raise StorageIntegrityError(cid.text, f"unexpected UnixFS field {number}")
    if kind not in (_FILE, _LEGACY_RAW):
        raise UnsupportedCidError(
            f"{cid.text} is a UnixFS node of type {kind}, not a file",
            hint="flare-node stores single files; fetch directories with an IPFS client",
        )
    if len(blocksizes) != len(links):
        raise StorageIntegrityError(
            cid.text, f"{len(links)} links but {len(blocksizes)} blocksizes"
        )
    if any(name for _, _, name in links):
        raise StorageIntegrityError(cid.text, "a file chunk link carries a name")
    total = len(inline) + sum(blocksizes)
    if filesize is not None and filesize != total:
        raise StorageIntegrityError(
            cid.text, f"filesize {filesize} but inline data and blocksizes add up to {total}"
        )
    file_links = tuple(
        FileLink(target, tsize, size)
        for (target, tsize, _), size in zip(links, blocksizes, strict=True)
    )
    return FileNode(file_links, inline, total)
