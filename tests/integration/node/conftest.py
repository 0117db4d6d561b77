"""One anvil for the node-process suites; a fresh deployment and node homes per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from anvil_process import ANVIL, AnvilProcess, tools_home
from node_harness import ProcessFederation


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
