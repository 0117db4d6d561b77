"""No unbounded waits on an IPFS daemon: every call ends within its limits, naming the limit.

The daemons here are stand-ins that hang the way real ones do: a listener whose connections the
kernel accepts and nobody answers (a SIGSTOPped or deadlocked daemon), and a listener whose
accept queue is full (a vanished host: the handshake never completes). Limits are fractions of
a second so the tests are quick; what is asserted is which limit the error names.
"""

from __future__ import annotations

import io
import socket

import pytest
from local_http import full_listener, silent_listener

from flare.node.store.ipfs import IpfsStore, api_multiaddr
from flare.protocol.limits import Deadline, NetworkLimits, TimeLimitError
from flare.protocol.store import StoreUnavailableError
from flare.protocol.unixfs import CHUNK_SIZE

pytestmark = pytest.mark.filterwarnings(
    "ignore:The 'strict' parameter is no longer needed:FutureWarning"
)

QUICK = NetworkLimits(connect=0.5, idle=0.3, deadline=10.0)


def store_at(port: int, limits: NetworkLimits, **options: object) -> IpfsStore:
    return IpfsStore(api_multiaddr("127.0.0.1", port), limits=limits, backoff=0.01, **options)  # type: ignore[arg-type]


def test_a_daemon_that_never_answers_hits_the_idle_limit_and_is_named() -> None:
    with (
        silent_listener() as port,
        store_at(port, QUICK) as store,
        pytest.raises(TimeLimitError) as caught,
    ):
        store.pins()
    error = caught.value
    assert error.limit == "idle"
    assert error.seconds == 0.3
    assert f"/tcp/{port}/" in error.message
    assert "pin/ls" in error.message
    assert "idle_timeout" in (error.hint or "")
    assert isinstance(error, ConnectionError)  # an unavailable service: exit code 3


def test_an_add_to_a_daemon_that_never_reads_is_bounded_too() -> None:
    # Larger than the socket buffers: the upload itself stalls, not only the wait for the answer.
    data = io.BytesIO(bytes(64 * CHUNK_SIZE))
    with (
        silent_listener() as port,
        store_at(port, QUICK) as store,
        pytest.raises(TimeLimitError) as caught,
    ):
        store.put_stream(data)
    assert caught.value.limit in ("idle", "connect")
    assert "add" in caught.value.message


def test_retries_stop_at_the_deadline_and_the_error_says_deadline() -> None:
    # Each attempt may stay silent 0.3 s; the deadline leaves room for two, and cuts the second.
    limits = NetworkLimits(connect=0.5, idle=0.3, deadline=0.45)
    with (
        silent_listener() as port,
        store_at(port, limits, retries=10) as store,
        pytest.raises(TimeLimitError) as caught,
    ):
        store.pins()
    assert caught.value.limit == "deadline"
    assert caught.value.seconds == 0.45
    assert "--timeout" in (caught.value.hint or "")


def test_a_handshake_that_never_completes_hits_the_connect_limit() -> None:
    with (
        full_listener() as port,
        store_at(port, QUICK, retries=1) as store,
        pytest.raises(TimeLimitError) as caught,
    ):
        store.pins()
    assert caught.value.limit == "connect"
    assert "could not connect" in caught.value.message


def test_a_host_that_does_not_resolve_is_said_to_not_resolve() -> None:
    # .invalid never resolves (RFC 2606): no network needed.
    store = IpfsStore(api_multiaddr("ipfs.flare.invalid", 5001), retries=1)
    with pytest.raises(StoreUnavailableError) as caught:
        store.pins()
    assert "could not be resolved" in caught.value.message
    assert "refused" not in caught.value.message


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_cuts_each_attempt_to_the_time_left() -> None:
    clock = FakeClock()
    deadline = Deadline(NetworkLimits(connect=5, idle=20, deadline=30), clock)
    assert deadline.attempt() == (5, 20)
    assert deadline.which("idle") == ("idle", 20)
    clock.now += 22
    assert deadline.attempt() == (5, 8)  # idle cut to the 8 s left
    assert deadline.which("idle") == ("deadline", 30)
    assert deadline.which("connect") == ("connect", 5)
    assert not deadline.allows_wait(8)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_limits_must_be_positive_finite_seconds(bad: float) -> None:
    from flare.protocol.errors import ConfigError

    with pytest.raises(ConfigError, match="idle"):
        NetworkLimits(idle=bad)


def test_a_shorter_deadline_caps_the_other_limits() -> None:
    assert NetworkLimits().with_deadline(2) == NetworkLimits(connect=2, idle=2, deadline=2)


def test_closed_port_is_still_refused_not_timed_out() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with pytest.raises(StoreUnavailableError) as caught, store_at(port, QUICK) as store:
        store.pins()
    assert not isinstance(caught.value, TimeLimitError)
    assert "refused" in caught.value.message.lower()
