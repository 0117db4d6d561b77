"""The loop tests' federation: built once per session, reset to its snapshot for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loop_harness import Federation, build


@pytest.fixture(scope="session")
def _federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    federation = build(tmp_path_factory.mktemp("federation"))
    yield federation
    federation.store.close()


@pytest.fixture
def federation(_federation: Federation) -> Federation:
    _federation.reset()
    return _federation
