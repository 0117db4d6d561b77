"""Fixtures for CLI tests that run `flare-node` as a real process."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_script import FlareNode
from console_script import flare_node as start_spec


@pytest.fixture
def flare_node(tmp_path: Path) -> FlareNode:
    """`flare-node` with a node home of its own under the test's directory."""
    return start_spec(tmp_path / "home")
