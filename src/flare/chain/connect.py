"""Open a chain by URL: `eth-tester://` (an EVM inside this process) or `http(s)://host:port`.

An embedded chain lives as long as the process: every `connect("eth-tester://")` in one process
returns the same chain, so in-process nodes (the demo, tests) share it, and it is gone when the
process exits. `eth-tester://NAME` opens a separate embedded chain per name.

HTTP endpoints get bounded retries with exponential backoff for transient failures (refused or
dropped connections, timeouts, 5xx) and a probe at connect time, so a wrong URL fails at once
with an `UnavailableError` that names it instead of a stack of `requests` errors later.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import BadResponseFormat
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import RPCEndpoint, RPCResponse

from flare.protocol.errors import ConfigError, UnavailableError

EMBEDDED_SCHEME = "eth-tester"
DEFAULT_RPC = "eth-tester://"
# Chain ids of local development chains: eth-tester's default and anvil's (also Hardhat's).
ETH_TESTER_CHAIN_ID = 131277322940537
ANVIL_CHAIN_ID = 31337
DEV_CHAIN_IDS = frozenset({ETH_TESTER_CHAIN_ID, ANVIL_CHAIN_ID})

_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.HTTPError)

_embedded: dict[str, Web3] = {}
_embedded_lock = threading.Lock()


class RpcUrlError(ConfigError):
    """The RPC URL is not one flare-node can speak to."""


class RpcUnavailableError(UnavailableError):
    """The endpoint did not answer (after retries) or did not answer JSON-RPC."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the chain at {url}: {reason}",
            hint="check the URL and that the node is running "
            "(locally: `anvil --host 127.0.0.1 --port 8545`), or use --rpc eth-tester://",
        )
        self.url = url


class _SerializedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe; nodes may call it from worker threads, so serialize."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


def is_embedded(url: str) -> bool:
    """Whether `url` names an in-process chain."""
    return urlsplit(url).scheme == EMBEDDED_SCHEME


def endpoint_of(w3: Web3) -> str:
    """The URL a connection was opened with, for messages (the embedded chain included)."""
    return str(getattr(w3, "flare_url", "eth-tester://"))


def connect(url: str = DEFAULT_RPC, *, timeout: float = 10.0, retries: int = 3) -> Web3:
    """A connected `Web3` for `url`; raises `RpcUrlError` or `RpcUnavailableError`."""
    parts = urlsplit(url)
    if parts.scheme == EMBEDDED_SCHEME:
        return _embedded_chain(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return _http_chain(url, timeout=timeout, retries=retries)
    raise RpcUrlError(
        f"unsupported RPC URL {url!r}",
        hint="use eth-tester:// for the in-process chain or http(s)://host:port for a node",
    )


def _embedded_chain(url: str) -> Web3:
    name = url.split("://", 1)[1]
    with _embedded_lock:
        w3 = _embedded.get(name)
        if w3 is None:
            w3 = Web3(_SerializedTesterProvider())
            w3.flare_url = url  # type: ignore[attr-defined]
            _embedded[name] = w3
        return w3


def _http_chain(url: str, *, timeout: float, retries: int) -> Web3:
    provider = Web3.HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        exception_retry_configuration=ExceptionRetryConfiguration(
            errors=_TRANSIENT, retries=max(1, retries), backoff_factor=0.1
        ),
    )
    w3 = Web3(provider)
    w3.flare_url = url  # type: ignore[attr-defined]
    with rpc_errors(url):
        w3.eth.chain_id  # noqa: B018  (the probe: fails now, naming the URL, if nothing answers)
    return w3


@contextmanager
def rpc_errors(url: str) -> Iterator[None]:
    """Turn transport failures that outlived the retries into an `RpcUnavailableError`."""
    try:
        yield
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise RpcUnavailableError(url, f"HTTP {status}") from error
    except requests.Timeout as error:
        raise RpcUnavailableError(url, "timed out") from error
    except requests.ConnectionError as error:
        raise RpcUnavailableError(url, "connection refused or dropped") from error
    except (BadResponseFormat, json.JSONDecodeError) as error:
        raise RpcUnavailableError(url, "the answer is not JSON-RPC") from error
