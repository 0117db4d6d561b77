"""The IPFS backend: a daemon's RPC API (Kubo in production, js-ipfs in tests) via ipfshttpclient.

Every add passes the importer settings explicitly (CIDv1, raw leaves, 256 KiB chunks, sha2-256)
because daemons differ in their defaults (Kubo's newer profile uses 1 MiB chunks); the bytes
are also hashed locally on their way out, and an add whose CID differs from the local one is an
error, so a daemon never silently names a file differently from the embedded store. Reads walk
the DAG with `block/get` and verify every block before handing a byte out.

Every call runs under `NetworkLimits`: a connect limit, an idle limit (the longest silence while
sending or waiting) and a deadline for the whole call, retries included; hitting one raises
`TimeLimitError` naming the daemon and the limit. Calls that fail to reach the daemon are
retried a bounded number of times with exponential backoff within the deadline, then raise
`StoreUnavailableError` naming the daemon's address.
"""

from __future__ import annotations

import io
import re
import socket
import time
import warnings
from collections.abc import Callable, Generator
from typing import BinaryIO, TypeVar

import ipfshttpclient
import requests
from ipfshttpclient import exceptions as ipfs_errors
from urllib3 import exceptions as urllib3_errors

from flare.node.store.pipeline import FileReads, stream_file
from flare.protocol.cid import (
    CODEC_DAG_PB,
    Cid,
    StorageIntegrityError,
    decode_cid,
    encode_cid,
    verify_block,
)
from flare.protocol.dagpb import block_links
from flare.protocol.errors import FlareError, causes
from flare.protocol.limits import Deadline, NetworkLimits, TimeLimitError
from flare.protocol.store import BlockNotFoundError, GcReport, Progress, StoreUnavailableError
from flare.protocol.unixfs import CHUNK_SIZE, FileHasher

__all__ = ["DaemonError", "IpfsStore", "api_multiaddr"]

# ipfshttpclient 0.7.0 passes urllib3 a `strict` flag that urllib3 2.x deprecates on every new
# connection pool; the warning is about the library, not about anything a user can change.
warnings.filterwarnings(
    "ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning
)

T = TypeVar("T")

_RETRYABLE = (ipfs_errors.ConnectionError, ipfs_errors.TimeoutError, ipfs_errors.ProtocolError)
_MISSING = re.compile(r"timed out|deadline exceeded|not found|could not find", re.IGNORECASE)
_ADD_OPTIONS = {"cid-base": "base32", "hash": "sha2-256"}


class DaemonError(FlareError, RuntimeError):
    """The daemon answered a request with an error that is not about missing content."""


def api_multiaddr(host: str, port: int) -> str:
    """The RPC multiaddr ipfshttpclient expects for `host:port`."""
    if re.fullmatch(r"[0-9.]+", host):
        protocol = "ip4"
    elif ":" in host:
        protocol = "ip6"
    else:
        protocol = "dns"
    return f"/{protocol}/{host.strip('[]')}/tcp/{port}/http"


class IpfsStore(FileReads):
    """A `BlobStore` over an IPFS daemon's RPC API."""

    def __init__(
        self,
        api: str,
        *,
        limits: NetworkLimits | None = None,
        fetch_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`api` is the RPC multiaddr (see `api_multiaddr`); `limits` bound every call;
        `fetch_timeout` bounds how long the daemon may search the network for a block before
        it counts as missing."""
        self._api = api
        self._limits = limits if limits is not None else NetworkLimits()
        self._fetch_timeout = f"{fetch_timeout:g}s"
        self._has_timeout = f"{min(fetch_timeout, 2.0):g}s"
        self._retries = max(1, retries)
        self._backoff = backoff
        self._sleep = sleep
        # Read the source in whole chunks: the local hasher then never re-buffers.
        self._client = ipfshttpclient.Client(
            api, timeout=(self._limits.connect, self._limits.idle), chunk_size=CHUNK_SIZE
        )

    @property
    def location(self) -> str:
        return self._api

    # ------------------------------------------------------------------ writing

    def put(self, data: bytes, *, pin: bool = True) -> str:
        return self.put_stream(io.BytesIO(data), pin=pin)

    def put_stream(
        self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None
    ) -> str:
        start = stream.tell() if stream.seekable() else None

        def attempt(timeout: tuple[float, float]) -> tuple[Cid, Cid]:
            if start is not None:
                stream.seek(start)
            tee = _HashingReader(stream, progress)
            answer = self._client.add(
                tee,
                cid_version=1,
                raw_leaves=True,
                chunker=f"size-{CHUNK_SIZE}",
                pin=pin,
                opts=dict(_ADD_OPTIONS),
                timeout=timeout,
            )
            return tee.finish(), Cid.parse(str(answer["Hash"]))

        local, remote = self._call("add", attempt, retry=start is not None)
        if remote == local:
            return local.text
        hint = "the daemon ignored the importer settings; upgrade it or use Kubo"
        if pin:  # do not leave the wrongly named copy pinned on the daemon
            try:
                self.unpin(remote.text)
            except FlareError as error:
                hint += f"; its pin on {remote} could not be removed ({error.message})"
        raise StorageIntegrityError(
            remote.text,
            f"the daemon named the content {remote}, but its bytes hash to {local}",
            hint=hint,
        )

    # ------------------------------------------------------------------ reading

    def _stream(
        self, root: Cid, progress: Progress | None, max_bytes: int | None
    ) -> Generator[bytes, None, None]:
        return stream_file(
            root,
            lambda block: self._fetch(root, block),
            progress=progress,
            max_bytes=max_bytes,
            workers=4,
            window=16,
        )

    def has(self, cid: str) -> bool:
        """Whether the daemon holds every block of `cid`, asking no peers.

        A recursive pin is complete by the daemon's own guarantee: one request. Otherwise the
        DAG is walked: inner nodes are read and verified, leaves only looked up. `offline`
        keeps Kubo from asking peers; js-ipfs ignores it, so a short timeout backs it.
        """
        root = Cid.parse(cid)
        if self._pinned_recursively(root):
            return True
        todo = [root]
        seen: set[bytes] = set()
        try:
            while todo:
                block = todo.pop()
                if block.digest in seen:
                    continue
                seen.add(block.digest)
                if block.codec == CODEC_DAG_PB:
                    data = self._fetch(root, block, offline=True)
                    verify_block(block, data)
                    todo.extend(block_links(block, data))
                else:
                    self._stat(root, block)
        except BlockNotFoundError:
            return False
        return True

    def _pinned_recursively(self, root: Cid) -> bool:
        try:
            answer = self._call(
                f"pin/ls {root}",
                lambda t: self._client.pin.ls(root.text, type="recursive", timeout=t),
            )
        except DaemonError as error:
            if "not pinned" in error.message or _MISSING.search(error.message):
                return False
            raise
        return any(encode_cid(decode_cid(key)) == root.text for key in answer["Keys"])

    def _stat(self, root: Cid, cid: Cid) -> None:
        """Raise BlockNotFoundError unless the daemon holds block `cid` itself."""
        try:
            self._call(
                f"block/stat {cid}",
                lambda t: self._client.block.stat(
                    cid.text, opts={"offline": "true", "timeout": self._has_timeout}, timeout=t
                ),
            )
        except DaemonError as error:
            if _MISSING.search(error.message):
                raise BlockNotFoundError(root.text, self._api, block=cid.text) from error
            raise

    def _fetch(self, root: Cid, cid: Cid, *, offline: bool = False) -> bytes:
        opts = (
            {"offline": "true", "timeout": self._has_timeout}
            if offline
            else {"timeout": self._fetch_timeout}
        )
        try:
            data = self._call(
                f"block/get {cid}", lambda t: self._client.block.get(cid.text, opts=opts, timeout=t)
            )
        except DaemonError as error:
            if _MISSING.search(error.message):
                raise BlockNotFoundError(root.text, self._api, block=cid.text) from error
            raise
        if not isinstance(data, bytes):
            raise DaemonError(f"the daemon at {self._api} sent no bytes for block {cid}")
        return data

    # ------------------------------------------------------------------ pins and gc

    def pin(self, cid: str) -> None:
        root = Cid.parse(cid)
        try:
            self._call(
                f"pin/add {root}",
                lambda t: self._client.pin.add(
                    root.text, opts={"timeout": self._fetch_timeout}, timeout=t
                ),
            )
        except DaemonError as error:
            if _MISSING.search(error.message):
                raise BlockNotFoundError(root.text, self._api) from error
            raise

    def unpin(self, cid: str) -> bool:
        root = Cid.parse(cid)
        try:
            self._call(f"pin/rm {root}", lambda t: self._client.pin.rm(root.text, timeout=t))
        except DaemonError as error:
            if "not pinned" in error.message:
                return False
            raise
        return True

    def pins(self) -> list[str]:
        # No cid-base here: a daemon may hold CIDv0 pins, which base32 cannot spell; they are
        # converted to CIDv1 text like every other CID this store hands out.
        answer = self._call("pin/ls", lambda t: self._client.pin.ls(type="recursive", timeout=t))
        return sorted(encode_cid(decode_cid(key)) for key in answer["Keys"])

    def gc(self) -> GcReport:
        answer = self._call("repo/gc", lambda t: self._client.repo.gc(timeout=t))
        errors = [item["Error"] for item in answer if item.get("Error")]
        if errors:
            raise DaemonError(f"the daemon at {self._api} reported gc errors: {errors[0]}")
        removed = sum(1 for item in answer if item.get("Key"))
        return GcReport(removed_blocks=removed, freed_bytes=None)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> IpfsStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _call(
        self, what: str, request: Callable[[tuple[float, float]], T], *, retry: bool = True
    ) -> T:
        """Run `request` under the limits, retrying transport failures with backoff while the
        deadline allows; daemon errors are final. `request` takes the (connect, idle) timeouts
        of its attempt."""
        attempts = self._retries if retry else 1
        clock = Deadline(self._limits)
        attempt = 1
        while True:
            try:
                return request(clock.attempt())
            except ipfs_errors.ErrorResponse as error:
                raise DaemonError(f"the daemon at {self._api} refused {what}: {error}") from error
            except (*_RETRYABLE, requests.RequestException) as error:
                delay = self._backoff * 2 ** (attempt - 1)
                if attempt < attempts and clock.allows_wait(delay):
                    self._sleep(delay)
                    attempt += 1
                    continue
                phase = _timeout_phase(error)
                if phase is not None:
                    limit, seconds = clock.which(phase)
                    raise TimeLimitError(
                        f"the IPFS daemon at {self._api}", what, limit, seconds
                    ) from error
                raise StoreUnavailableError(self._api, attempt, _reason(error)) from error
            except ipfs_errors.Error as error:
                raise DaemonError(f"the daemon at {self._api} failed {what}: {error}") from error


def _timeout_phase(error: BaseException) -> str | None:
    """ "connect" or "idle" when a timeout caused `error`, else None.

    urllib3's `NewConnectionError` (refused, unresolvable) subclasses `ConnectTimeoutError` for
    old callers' sake; it is no timeout, and is left out.
    """
    linked = [c for c in causes(error) if not isinstance(c, urllib3_errors.NewConnectionError)]
    if any(
        isinstance(c, requests.ConnectTimeout | urllib3_errors.ConnectTimeoutError) for c in linked
    ):
        return "connect"
    if any(
        isinstance(c, requests.Timeout | urllib3_errors.TimeoutError | TimeoutError) for c in linked
    ):
        return "idle"
    return None


def _reason(error: Exception) -> str:
    """The useful end of a transport error ("Connection refused"), not urllib3's whole story."""
    if any(
        isinstance(c, socket.gaierror | urllib3_errors.NameResolutionError) for c in causes(error)
    ):
        return "the host name could not be resolved (check the address)"
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(error))
    return found.group(1).strip() if found else str(error)[:200]


class _HashingReader:
    """A read-only stream that hashes (and counts) what the HTTP client reads from it."""

    name = "content"

    def __init__(self, stream: BinaryIO, progress: Progress | None) -> None:
        self._stream = stream
        self._hasher = FileHasher()
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hasher.update(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def finish(self) -> Cid:
        return self._hasher.finish()
