"""Open a chain by URL: `eth-tester://` (an EVM inside this process) or `http(s)://host:port`.

An embedded chain lives as long as the process: every `connect("eth-tester://")` in one process
returns the same chain, so in-process nodes (the demo, tests) share it, and it is gone when the
process exits. `eth-tester://NAME` opens a separate embedded chain per name.

HTTP endpoints get bounded retries with exponential backoff for transient failures (refused or
dropped connections, timeouts, 5xx) and a probe at connect time, so a wrong URL fails at once
with an `UnavailableError` that names it instead of a stack of `requests` errors later. Every
request runs under `NetworkLimits` (connect, idle, and a deadline for the request with its
retries); an endpoint that accepts connections but never answers fails with `RpcTimeLimitError`
naming the URL and the limit, within the deadline.

web3 and requests load inside the functions that use them: the CLI imports `DEFAULT_RPC` from
here for its option defaults, and `flare-node --help` must not pay for web3.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flare.protocol.errors import ConfigError, UnavailableError, causes
from flare.protocol.limits import NetworkLimits, TimeLimitError

if TYPE_CHECKING:
    from web3 import Web3

EMBEDDED_SCHEME = "eth-tester"
DEFAULT_RPC = "eth-tester://"
# Chain ids of local development chains: eth-tester's default and anvil's (also Hardhat's).
ETH_TESTER_CHAIN_ID = 131277322940537
ANVIL_CHAIN_ID = 31337
DEV_CHAIN_IDS = frozenset({ETH_TESTER_CHAIN_ID, ANVIL_CHAIN_ID})

_embedded: dict[str, Web3] = {}
_embedded_lock = threading.Lock()
# The URL each connection was opened with, for messages and for telling embedded chains apart;
# weak, so a dropped connection is not kept alive by being named.
_urls: weakref.WeakKeyDictionary[Web3, str] = weakref.WeakKeyDictionary()


class RpcUrlError(ConfigError):
    """The RPC URL is not one flare-node can speak to."""


class RpcUnavailableError(UnavailableError):
    """The endpoint did not answer (after retries) or did not answer JSON-RPC."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"cannot reach the chain at {url}: {reason}",
            hint=hint
            or "check the URL and that the node is running "
            "(locally: `anvil --host 127.0.0.1 --port 8545`), or use --rpc eth-tester://",
        )
        self.url = url


class RpcTimeLimitError(RpcUnavailableError):
    """The endpoint hit one of the request limits: an `RpcUnavailableError` (the endpoint is
    what failed, so a sent transaction is in doubt) whose message names the limit."""

    def __init__(self, url: str, method: str, limit: str, seconds: float) -> None:
        limited = TimeLimitError(f"the chain at {url}", method, limit, seconds)
        UnavailableError.__init__(self, limited.message, hint=limited.hint)
        self.url = url
        self.limit = limit
        self.seconds = seconds


def is_embedded(url: str) -> bool:
    """Whether `url` names an in-process chain."""
    return urlsplit(url).scheme == EMBEDDED_SCHEME


def endpoint_of(w3: Web3) -> str:
    """The URL a connection was opened with, for messages (the embedded chain included).

    A `Web3` built elsewhere is named by its HTTP provider's URL, else as an embedded chain.
    """
    url = _urls.get(w3)
    if url is not None:
        return url
    endpoint = getattr(w3.provider, "endpoint_uri", None)
    return str(endpoint) if endpoint else DEFAULT_RPC


def connect(
    url: str = DEFAULT_RPC, *, limits: NetworkLimits | None = None, retries: int = 3
) -> Web3:
    """A connected `Web3` for `url`; raises `RpcUrlError` or `RpcUnavailableError`."""
    parts = urlsplit(url)
    if parts.scheme == EMBEDDED_SCHEME:
        return _embedded_chain(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return _http_chain(url, limits=limits or NetworkLimits(), retries=retries)
    raise RpcUrlError(
        f"unsupported RPC URL {url!r}",
        hint="use eth-tester:// for the in-process chain or http(s)://host:port for a node",
    )


def _embedded_chain(url: str) -> Web3:
    from web3 import Web3

    from flare.chain.embedded import SerializedTesterProvider

    name = url.split("://", 1)[1]
    with _embedded_lock:
        w3 = _embedded.get(name)
        if w3 is None:
            w3 = Web3(SerializedTesterProvider())
            _urls[w3] = url
            _embedded[name] = w3
        return w3


def _http_chain(url: str, *, limits: NetworkLimits, retries: int) -> Web3:
    from web3 import Web3

    w3 = Web3(_limited_provider(url, limits, retries))
    _urls[w3] = url
    with rpc_errors(url):
        w3.eth.chain_id  # noqa: B018  (the probe: fails now, naming the URL, if nothing answers)
    return w3


def _limited_provider(url: str, limits: NetworkLimits, retries: int) -> Any:
    """web3's HTTP provider, with each request bounded by `limits` and retried within them.

    web3's own retry loop knows attempts but no deadline, and a timeout comes out of it as a
    bare `requests` error; this one stops retrying when the next attempt would pass the
    deadline, and says which limit a timeout hit. Only the calls web3 deems safe to repeat are
    retried: reads, and eth_sendRawTransaction (the same signed bytes: one nonce, one hash).
    """
    import time

    import requests
    from eth_typing import URI
    from web3 import HTTPProvider
    from web3.providers.rpc.utils import check_if_retry_on_failure
    from web3.types import RPCEndpoint

    from flare.protocol.limits import Deadline

    transient = (requests.ConnectionError, requests.Timeout, requests.HTTPError)

    class LimitedProvider(HTTPProvider):
        def _make_request(self, method: Any, request_data: bytes) -> bytes:
            clock = Deadline(limits)
            attempts = max(1, retries) if check_if_retry_on_failure(method) else 1
            attempt = 1
            while True:
                kwargs = self.get_request_kwargs()
                kwargs["timeout"] = clock.attempt()
                try:
                    answer: bytes = self._request_session_manager.make_post_request(
                        URI(url), request_data, **kwargs
                    )
                    return answer
                except transient as error:
                    delay = 0.1 * 2 ** (attempt - 1)
                    if attempt < attempts and clock.allows_wait(delay):
                        time.sleep(delay)
                        attempt += 1
                        continue
                    if isinstance(error, requests.Timeout):
                        phase = "connect" if isinstance(error, requests.ConnectTimeout) else "idle"
                        limit, seconds = clock.which(phase)
                        raise RpcTimeLimitError(url, str(method), limit, seconds) from error
                    raise

    # web3's own retries off: this provider's loop does them, within the deadline. The chain id
    # is cached: web3's validation asks for it around every call, more than half the requests
    # a node sent (an endpoint that changes chains under a running node is caught at start).
    return LimitedProvider(
        url,
        exception_retry_configuration=None,
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
    )


@contextmanager
def rpc_errors(url: str) -> Iterator[None]:
    """Turn transport failures that outlived the retries into an `RpcUnavailableError`.

    The message says which step failed (the name lookup, the connection, the answer) and
    names the host: "connection refused" for a host that does not exist sends people looking
    for a stopped node instead of a typo in the URL.
    """
    import requests
    from web3.exceptions import BadResponseFormat

    try:
        yield
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise RpcUnavailableError(url, f"HTTP {status}") from error
    except (requests.ConnectionError, requests.Timeout) as error:
        reason, hint = _transport_failure(url, error)
        raise RpcUnavailableError(url, reason, hint=hint) from error
    except (BadResponseFormat, json.JSONDecodeError) as error:
        raise RpcUnavailableError(url, "the answer is not JSON-RPC") from error


def _transport_failure(url: str, error: BaseException) -> tuple[str, str | None]:
    """What a `requests` failure means for a user: a reason naming the host, and a hint when
    the default one (is the node running?) would point the wrong way.

    requests wraps urllib3's errors, which wrap the socket's, partly as `args` and `reason`
    rather than `__cause__`; the whole chain is searched for the root cause.
    """
    import http.client
    import socket
    import ssl

    import requests
    from urllib3.exceptions import NameResolutionError, ProtocolError

    parts = urlsplit(url)
    host = parts.hostname or parts.netloc
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    wrapped = causes(error)

    def found(*kinds: type[BaseException]) -> bool:
        return any(isinstance(cause, kinds) for cause in wrapped)

    lookup = [cause for cause in wrapped if isinstance(cause, socket.gaierror)]
    if lookup or found(NameResolutionError):
        why = f" ({lookup[0].strerror})" if lookup and lookup[0].strerror else ""
        return (
            f"the host name {host} could not be resolved{why}",
            "check the host name in the URL for a typo, and that this machine can resolve "
            "names (DNS, network)",
        )
    if isinstance(error, requests.ConnectTimeout):
        return (
            f"connecting to {where} timed out",
            "check the host and port, and that no firewall drops the connection",
        )
    if isinstance(error, requests.Timeout):
        return (
            f"{where} accepted the connection but did not answer in time",
            "the node may be overloaded, still syncing or stuck; check its logs",
        )
    if found(ConnectionRefusedError):
        return f"connection refused by {where} (nothing listens on that port)", None
    if found(ssl.SSLError):
        return (
            f"the TLS handshake with {where} failed",
            "check the URL's scheme (http or https) and the node's certificate",
        )
    if found(http.client.RemoteDisconnected):  # a ConnectionResetError, but an orderly close
        return f"{where} closed the connection without answering", None
    if found(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return f"{where} reset the connection before answering", None
    if found(ProtocolError):
        return f"{where} dropped the connection before answering", None
    innermost = wrapped[-1]
    return f"could not talk to {where}: {innermost}", None
