"""One anvil for the node-process suites; a fresh deployment and node homes per test.

The fault suites also get one IPFS daemon for the session (content is addressed by its hash, so
tests sharing it cannot mix up each other's data) and a TCP proxy in front of anvil per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from anvil_process import ANVIL, AnvilProcess, tools_home
from ipfs_process import IpfsDaemon
from node_harness import ProcessFederation
from tcp_proxy import TcpProxy


@pytest.fixture(scope="session")
def node_anvil() -> Iterator[str]:
    if not ANVIL.exists():
        pytest.fail(f"{ANVIL} is missing: run `make setup` (npm ci) first")
    anvil = AnvilProcess(tools_home(), kept_states=64)  # the reorg tests rewind a few blocks
    try:
        yield anvil.url
    finally:
        anvil.stop()


@pytest.fixture
def federation(node_anvil: str, tmp_path: Path) -> Iterator[ProcessFederation]:
    """Two registered nodes, k = 2, round 1 open; every process killed after the test."""
    federation = ProcessFederation(tmp_path, node_anvil)
    try:
        yield federation
    finally:
        federation.stop_all()
        federation.store.close()


@pytest.fixture(scope="session")
def node_ipfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """RPC multiaddr of a tools/ipfs-daemon daemon that the nodes of the fault suites pin to."""
    daemon = IpfsDaemon(tmp_path_factory.mktemp("node-ipfs"))
    try:
        yield daemon.api
    finally:
        daemon.stop()


@pytest.fixture
def rpc_proxy(node_anvil: str) -> Iterator[TcpProxy]:
    """A TCP proxy in front of anvil: the nodes' RPC endpoint, which a test can take down
    (`close()`) and bring back (`reopen()`) while anvil and its chain carry on untouched."""
    url = urlsplit(node_anvil)
    with TcpProxy((url.hostname or "127.0.0.1", url.port or 80)) as proxy:
        yield proxy
