"""Fixtures of the chain suites: one anvil per session, a chain per backend, fresh deployments.

Tests either deploy their own contract, so tests sharing a chain never see each other's state,
or start from `federation`: a deployment whose members registered once per session, restored
from a chain snapshot before each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from anvil_process import ANVIL, AnvilProcess, tools_home
from chain_harness import (
    GENESIS_CID,
    SPEC_HASH,
    Chain,
    Deployed,
    DeployFactory,
    Federation,
    Member,
    federation_config,
)
from flare_testing import register

from flare.chain.deploy import deploy
from flare.protocol.rounds import RoundConfig


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """URL of a fresh anvil for the whole session."""
    if not ANVIL.exists():
        pytest.fail(f"{ANVIL} is missing: run `make setup` (npm ci) first")
    anvil = AnvilProcess(tools_home())
    try:
        yield anvil.url
    finally:
        anvil.stop()


@pytest.fixture(
    scope="session",
    params=["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)],
)
def chain(request: pytest.FixtureRequest) -> Chain:
    """The suite runs once per backend; anvil runs are marked `anvil`."""
    if request.param == "anvil":
        return Chain("anvil", request.getfixturevalue("anvil_url"))
    return Chain("eth-tester", f"eth-tester://conformance-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def deploy_rounds(chain: Chain) -> DeployFactory:
    """Deploy FlareRounds with the given config (defaults: k=3, quorum 60%, open)."""

    def make(config: RoundConfig | None = None, *, allowlist: bool = False) -> Deployed:
        record, owner = deploy(
            chain.w3,
            chain.key(0),
            model_spec_hash=SPEC_HASH,
            genesis_model=GENESIS_CID,
            config=config or federation_config(),
            allowlist=allowlist,
        )
        return Deployed(chain, record, owner, {0: owner})

    return make


@pytest.fixture(scope="session")
def _federation_state(chain: Chain) -> tuple[Federation, list[object]]:
    record, owner = deploy(
        chain.w3,
        chain.key(0),
        model_spec_hash=SPEC_HASH,
        genesis_model=GENESIS_CID,
        config=federation_config(),
        allowlist=False,
    )
    deployed = Deployed(chain, record, owner, {0: owner})
    # Dev accounts 1..5 register; 6..9 stay free for tests that need newcomers.
    members = [Member(deployed.node(i), register(deployed.node(i))[0]) for i in range(1, 6)]
    return Federation(deployed, members), [chain.snapshot()]


@pytest.fixture
def federation(chain: Chain, _federation_state: tuple[Federation, list[object]]) -> Federation:
    """Five registered members of a deployment that has not started; fresh for every test."""
    state, handle = _federation_state
    handle[0] = chain.revert(handle[0])
    return state
