"""A real IPFS daemon for the integration tests: js-ipfs from node_modules, on 127.0.0.1.

`tools/ipfs-daemon` initialises a private repository (no bootstrap peers, every listener on a
free loopback port) and runs the daemon (see `ipfs_process.IpfsDaemon`). `ipfs_api` is one
daemon for the whole session; the crash tests start their own, through `ipfs_daemons`, on a copy
of `ipfs_repo_template`, an initialised repository, so that no start pays for initialising one
again (~3 s on a 2-core CPU).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ipfs_process import IpfsDaemon, StartDaemon


@pytest.fixture(scope="session")
def ipfs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """RPC multiaddr (/ip4/127.0.0.1/tcp/N/http) of a daemon running for this session."""
    daemon = IpfsDaemon(tmp_path_factory.mktemp("ipfs-daemon"))
    try:
        yield daemon.api
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def ipfs_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A daemon directory initialised by tools/ipfs-daemon and cleanly stopped: copy it."""
    workdir = tmp_path_factory.mktemp("ipfs-template")
    IpfsDaemon(workdir).stop()
    return workdir


@pytest.fixture
def ipfs_workdir(ipfs_repo_template: Path, tmp_path: Path) -> Path:
    """This test's own daemon directory, initialised (a copy of the template)."""
    workdir = tmp_path / "ipfs"
    shutil.copytree(ipfs_repo_template, workdir)
    return workdir


@pytest.fixture
def ipfs_daemons() -> Iterator[StartDaemon]:
    """Start daemons with `ipfs_daemons(workdir, bare=False)`; those still running at the end
    of the test are stopped, whatever the test did."""
    started: list[IpfsDaemon] = []

    def start(workdir: Path, *, bare: bool = False) -> IpfsDaemon:
        started.append(IpfsDaemon(workdir, bare=bare))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()
