"""One conformance suite for `Web3Ledger`, run on eth-tester and on a real anvil process.

Whatever the backend, the same calls must give the same values, the same events and the same
`ContractError` subclasses with the same arguments.
"""

from __future__ import annotations

from typing import Any

import pytest
from chain_harness import GENESIS_CID, SPEC_HASH, Chain, Deployed, DeployFactory
from eth_utils.crypto import keccak

from flare.chain.deploy import deploy
from flare.chain.ledger import NoContractError, NotFlareRoundsError, open_ledger
from flare.chain.reverts import RevertDecoder
from flare.chain.transact import (
    TransactionRejectedError,
    TransactionRevertedError,
    Transactor,
)
from flare.protocol import events as ev
from flare.protocol import ledger as errors
from flare.protocol.ledger import ContractError, Ledger
from flare.protocol.rounds import (
    ZERO_ADDRESS,
    FailureReason,
    Phase,
    RoundConfig,
    updates_root,
)

PROOF = bytes(range(80))


def vrf_key(index: int) -> bytes:
    """A distinct non-zero stand-in VRF public key (the contract stores it, never checks it)."""
    return bytes([index + 1]) * 32


def cid_of(label: str) -> bytes:
    """A binary CIDv1 (raw leaves, sha2-256) whose digest is derived from `label`."""
    return bytes.fromhex("01551220") + keccak(text=label)


def output_of(rank: int) -> bytes:
    """A VRF output that ranks as `rank` (lower wins a seat)."""
    return rank.to_bytes(32, "big")


def expect(error: type[ContractError], args: dict[str, Any], action: Any, *params: Any) -> None:
    """`action(*params)` raises exactly `error` carrying exactly `args`."""
    with pytest.raises(ContractError) as caught:
        action(*params)
    assert type(caught.value) is error, caught.value
    assert caught.value.error_args == args
    assert caught.value.error_name == error.solidity_name


def of_type(events: list[ev.ChainEvent], kind: type[ev.ChainEvent]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def test_ledger_satisfies_the_protocol_port(deploy_rounds: DeployFactory) -> None:
    assert isinstance(deploy_rounds().owner, Ledger)


def test_views_reflect_the_constructor(deploy_rounds: DeployFactory) -> None:
    config = RoundConfig(
        committee_size=5, quorum_bps=5000, train_window=100, review_window=50, min_updates=2
    )
    deployed = deploy_rounds(config, allowlist=True)
    ledger = deployed.owner

    assert ledger.model_spec_hash() == SPEC_HASH
    assert ledger.genesis_model() == GENESIS_CID
    assert ledger.config() == config
    assert ledger.allowlist_enabled() is True
    assert ledger.owner() == deployed.record.owner == ledger.account
    assert ledger.pending_owner() == ZERO_ADDRESS
    assert ledger.paused() is False
    assert ledger.current_round() == 0
    assert ledger.phase(1) is Phase.NONE
    assert ledger.global_model() == (0, GENESIS_CID)
    assert ledger.node_count() == 0
    assert ledger.code_matches_artifact()
    log = ledger.events(deployed.record.block)
    assert [type(event) for event in log] == [
        ev.OwnershipTransferred,
        ev.ConfigSet,
        ev.AllowlistSet,
    ]
    assert of_type(log, ev.ConfigSet)[0].config == config
    assert of_type(log, ev.ConfigSet)[0].effective_from == 1


def test_a_round_finalizes_and_the_next_one_opens_on_its_model(
    deploy_rounds: DeployFactory,
) -> None:
    deployed = deploy_rounds(RoundConfig(committee_size=3, quorum_bps=6000, min_updates=1))
    owner, nodes = deployed.owner, [deployed.node(i) for i in (1, 2, 3, 4)]
    addresses = [str(node.account) for node in nodes]
    for index, node in enumerate(nodes):
        node.register(vrf_key(index))
    owner.start()
    updates = {address: cid_of(f"update-{address}") for address in addresses}

    for node, address in zip(nodes[:3], addresses, strict=False):
        node.submit_update(1, updates[address], 100)
    for node, rank in zip(nodes, (40, 10, 30), strict=False):
        node.claim_seat(1, output_of(rank), PROOF)
    last_claim = nodes[3].claim_seat(1, output_of(20), PROOF)  # evicts rank 40
    assert owner.phase(1) is Phase.TRAINING  # one eligible node has not submitted yet
    last_update = nodes[3].submit_update(1, updates[addresses[3]], 100)

    claimed = of_type(list(last_claim.events), ev.SeatClaimed)[0]
    assert claimed.evicted == addresses[0]
    assert of_type(list(last_update.events), ev.TrainingClosed)  # all submitted, k seats held
    assert owner.phase(1) is Phase.REVIEW
    assert {seat.holder for seat in owner.seats(1)} == set(addresses[1:])
    assert not owner.is_seat_holder(1, addresses[0])
    assert owner.update_of(1, addresses[0]) == keccak(updates[addresses[0]])

    root = updates_root(updates.items())
    aggregate = cid_of("aggregate-1")
    proposed = nodes[1].propose_aggregate(1, aggregate, root)
    assert proposed.proposal_id == 1
    first_vote = nodes[1].vote(1, 1, True)
    assert not of_type(list(first_vote.events), ev.RoundFinalized)  # 1 of quorum 2
    final_vote = nodes[2].vote(1, 1, True)

    finalized = of_type(list(final_vote.events), ev.RoundFinalized)[0]
    opened = of_type(list(final_vote.events), ev.RoundOpened)[0]
    assert (finalized.cid, finalized.updates_root, finalized.approvals) == (aggregate, root, 2)
    assert (opened.round, opened.base_round, opened.base_model) == (2, 1, aggregate)
    assert owner.phase(1) is Phase.FINALIZED
    assert owner.current_round() == 2
    assert owner.global_model() == (1, aggregate)
    assert owner.base_model(2) == aggregate
    proposal = owner.get_proposal(1, 1)
    assert (proposal.proposer, proposal.approvals, proposal.rejections) == (addresses[1], 2, 0)
    assert owner.has_voted(1, addresses[2])
    assert not owner.has_voted(1, addresses[3])

    # Auditors rebuild the round from the events alone.
    log = owner.events(deployed.record.block)
    submitted = [e for e in of_type(log, ev.UpdateSubmitted) if e.round == 1]
    assert updates_root((e.node, e.cid) for e in submitted) == finalized.updates_root
    assert [e.position for e in log] == sorted(e.position for e in log)


def test_training_with_too_few_updates_fails_and_closing_reopens_on_the_old_base(
    chain: Chain, deploy_rounds: DeployFactory
) -> None:
    config = RoundConfig(committee_size=2, train_window=100, review_window=50, min_updates=2)
    deployed = deploy_rounds(config)
    first, second = deployed.node(1), deployed.node(2)
    first.register(vrf_key(1))
    second.register(vrf_key(2))
    deployed.owner.start()
    first.submit_update(1, cid_of("only"), 5)

    chain.advance(config.train_window + 1)

    assert first.phase(1) is Phase.FAILED
    closed = second.close_round(1)  # anyone may close
    failed = of_type(list(closed.events), ev.RoundFailed)[0]
    opened = of_type(list(closed.events), ev.RoundOpened)[0]
    assert failed.reason is FailureReason.TOO_FEW_UPDATES
    assert (opened.round, opened.base_round, opened.base_model) == (2, 0, GENESIS_CID)
    expect(errors.NotClosableError, {"round": 1, "phase": Phase.FAILED}, second.close_round, 1)


def test_review_without_quorum_fails_with_no_quorum(
    chain: Chain, deploy_rounds: DeployFactory
) -> None:
    config = RoundConfig(committee_size=2, train_window=100, review_window=50, min_updates=1)
    deployed = deploy_rounds(config)
    first, second = deployed.node(1), deployed.node(2)
    first.register(vrf_key(1))
    second.register(vrf_key(2))
    deployed.owner.start()
    for rank, node in enumerate((first, second)):
        node.submit_update(1, cid_of(f"u{rank}"), 1)
        node.claim_seat(1, output_of(rank + 1), PROOF)
    first.propose_aggregate(1, cid_of("agg"), bytes(32))
    second.vote(1, 1, False)

    chain.advance(config.review_window + 1)

    assert first.phase(1) is Phase.FAILED
    closed = first.close_round(1)
    assert of_type(list(closed.events), ev.RoundFailed)[0].reason is FailureReason.NO_QUORUM
    expect(
        errors.WrongPhaseError,
        {"round": 1, "expected": Phase.REVIEW, "actual": Phase.FAILED},
        first.vote,
        1,
        1,
        True,
    )


def test_reverts_decode_into_the_named_error_with_its_arguments(
    deploy_rounds: DeployFactory,
) -> None:
    deployed = deploy_rounds(RoundConfig(committee_size=1, quorum_bps=10_000), allowlist=True)
    owner, first, second, outsider = (deployed.node(i) for i in (0, 1, 2, 3))
    a1, a2, a3 = str(first.account), str(second.account), str(outsider.account)

    expect(errors.NotAllowedError, {"node": a1}, first.register, vrf_key(1))
    owner.allow(a1)
    owner.allow(a2)
    expect(errors.InvalidVrfKeyError, {}, first.register, bytes(32))
    first.register(vrf_key(1))
    expect(errors.AlreadyRegisteredError, {"node": a1}, first.register, vrf_key(1))
    expect(
        errors.VrfKeyTakenError,
        {"vrfPublicKey": vrf_key(1), "owner": a1},
        second.register,
        vrf_key(1),
    )
    second.register(vrf_key(2))
    expect(errors.NotRegisteredError, {"node": a3}, outsider.deregister)
    expect(errors.NotStartedError, {}, first.submit_update, 1, cid_of("x"), 1)
    expect(errors.OwnableUnauthorizedAccountError, {"account": a1}, first.start)
    owner.start()
    expect(errors.AlreadyStartedError, {}, owner.start)
    expect(errors.WrongRoundError, {"round": 2, "currentRound": 1}, first.submit_update, 2, b"1", 1)
    expect(errors.InvalidCidError, {"length": 0}, first.submit_update, 1, b"", 1)
    expect(errors.ZeroSamplesError, {}, first.submit_update, 1, cid_of("x"), 0)
    expect(errors.InvalidProofError, {"length": 5}, first.claim_seat, 1, output_of(1), b"short")
    expect(errors.NotEligibleError, {"round": 1, "node": a3}, outsider.submit_update, 1, b"1", 1)
    expect(
        errors.WrongPhaseError,
        {"round": 1, "expected": Phase.REVIEW, "actual": Phase.TRAINING},
        first.propose_aggregate,
        1,
        cid_of("agg"),
        bytes(32),
    )
    first.submit_update(1, cid_of("u1"), 1)
    expect(errors.AlreadySubmittedError, {"round": 1, "node": a1}, first.submit_update, 1, b"1", 1)
    first.claim_seat(1, output_of(5), PROOF)
    expect(
        errors.OutputTooHighError,
        {"round": 1, "output": output_of(9), "highestSeat": output_of(5)},
        second.claim_seat,
        1,
        output_of(9),
        PROOF,
    )
    expect(
        errors.AlreadyClaimedError,
        {"round": 1, "node": a1},
        first.claim_seat,
        1,
        output_of(1),
        PROOF,
    )
    second.submit_update(1, cid_of("u2"), 1)  # every eligible node submitted, k seats: review
    expect(
        errors.NotSeatHolderError,
        {"round": 1, "node": a2},
        second.propose_aggregate,
        1,
        cid_of("agg"),
        bytes(32),
    )
    expect(errors.UnknownProposalError, {"round": 1, "proposalId": 1}, first.vote, 1, 1, True)
    first.propose_aggregate(1, cid_of("agg"), bytes(32))
    expect(
        errors.AlreadyProposedError,
        {"round": 1, "node": a1},
        first.propose_aggregate,
        1,
        cid_of("agg2"),
        bytes(32),
    )
    expect(errors.NotClosableError, {"round": 1, "phase": Phase.REVIEW}, first.close_round, 1)
    owner.pause()
    expect(errors.EnforcedPauseError, {}, first.vote, 1, 1, False)
    owner.unpause()
    expect(errors.ExpectedPauseError, {}, owner.unpause)
    first.vote(1, 1, False)
    expect(errors.AlreadyVotedError, {"round": 1, "node": a1}, first.vote, 1, 1, True)


def test_constructor_reverts_decode_too(chain: Chain) -> None:
    common: dict[str, Any] = {"config": RoundConfig(), "model_spec_hash": SPEC_HASH}
    with pytest.raises(errors.InvalidCidError) as empty_cid:
        deploy(chain.w3, chain.key(0), genesis_model=b"", **common)
    assert empty_cid.value.error_args == {"length": 0}
    with pytest.raises(errors.InvalidConfigError) as zero_spec:
        deploy(
            chain.w3,
            chain.key(0),
            genesis_model=GENESIS_CID,
            config=RoundConfig(),
            model_spec_hash=bytes(32),
        )
    assert zero_spec.value.error_args == {"reason": "modelSpecHash is zero"}
    with pytest.raises(errors.OwnableInvalidOwnerError):
        deploy(chain.w3, chain.key(0), genesis_model=GENESIS_CID, owner=ZERO_ADDRESS, **common)


def test_admin_calls_change_what_views_report(deploy_rounds: DeployFactory) -> None:
    deployed = deploy_rounds(allowlist=True)
    owner, node, heir = deployed.owner, deployed.node(1), deployed.node(2)
    address = str(node.account)
    owner.allow(address)
    node.register(vrf_key(1))
    assert owner.get_node(address).allowed
    assert owner.nodes() == [address]

    removed = owner.disallow(address)

    assert [type(e) for e in removed.events] == [ev.NodeDisallowed, ev.NodeDeregistered]
    assert not owner.get_node(address).registered
    assert owner.node_count() == 0
    owner.set_allowlist(False)
    assert owner.allowlist_enabled() is False
    new_config = RoundConfig(committee_size=4, quorum_bps=7500, train_window=60)
    changed = owner.set_config(new_config)
    assert of_type(list(changed.events), ev.ConfigSet)[0].effective_from == 1
    assert owner.config() == new_config
    owner.pause()
    assert owner.paused()
    owner.unpause()
    owner.transfer_ownership(str(heir.account))
    assert owner.pending_owner() == heir.account
    heir.accept_ownership()
    assert owner.owner() == heir.account
    expect(errors.OwnableUnauthorizedAccountError, {"account": owner.account}, owner.pause)


def test_events_are_this_contracts_within_the_range(
    chain: Chain, deploy_rounds: DeployFactory
) -> None:
    first, other = deploy_rounds(), deploy_rounds()
    started = first.owner.start()
    other.owner.start()
    last = first.owner.block_number()

    everything = first.owner.events(first.record.block, last)
    only_start = first.owner.events(started.block, started.block)

    assert [type(e) for e in only_start] == [ev.RoundOpened]
    assert only_start[0].tx_hash == started.tx_hash
    assert all(e.block <= last for e in everything)
    assert len(of_type(everything, ev.RoundOpened)) == 1  # the other contract's is not here
    assert first.owner.timestamp() < chain.advance(10) <= first.owner.timestamp()


def test_open_ledger_refuses_what_is_not_a_flare_rounds(chain: Chain) -> None:
    eoa = chain.w3.eth.account.from_key(chain.key(5)).address
    with pytest.raises(NoContractError, match=eoa):
        open_ledger(chain.w3, eoa)
    # A contract whose code returns nothing for every call.
    empty_returner = bytes.fromhex("6003600a5f3960035ff3" + "5f5ff3")
    sender = Transactor(chain.w3, RevertDecoder([]), chain.key(5))
    receipt = sender.send(chain.w3.eth.contract(abi=[], bytecode=empty_returner).constructor())
    with pytest.raises(NotFlareRoundsError):
        open_ledger(chain.w3, str(receipt["contractAddress"]))


class _Prepared:
    """A transaction built by hand, so it skips the simulation that would catch its revert."""

    def __init__(self, tx: dict[str, Any]) -> None:
        self.tx = tx

    def build_transaction(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {**overrides, **self.tx}  # its own gas limit wins


@pytest.mark.parametrize(
    ("function", "args", "gas", "expected"),
    [
        # Skips gas estimation: a node mines it with status 0 and the replay names the
        # reason; the in-process chain's one-call simulation names the same reason.
        ("submitUpdate", [1, cid_of("early"), 1], 200_000, errors.NotStartedError),
        # Would succeed with enough gas: runs out of it.
        ("start", [], 30_000, TransactionRevertedError),
    ],
)
def test_a_mined_failure_is_explained(
    chain: Chain,
    deploy_rounds: DeployFactory,
    function: str,
    args: list[Any],
    gas: int,
    expected: type[Exception],
) -> None:
    deployed: Deployed = deploy_rounds()
    data = deployed.owner._contract.encode_abi(function, args=args)
    tx = {
        "to": deployed.record.address,
        "data": data,
        "gas": gas,
        "value": 0,
        "gasPrice": chain.w3.eth.gas_price,
        "chainId": chain.w3.eth.chain_id,
    }
    sender = Transactor(chain.w3, RevertDecoder(deployed.owner.artifact.abi), chain.key(0))

    with pytest.raises(expected):
        sender.send(_Prepared(tx))

    assert deployed.owner.current_round() == 0


def test_an_unfunded_sender_is_rejected_with_a_funding_hint(
    chain: Chain, deploy_rounds: DeployFactory
) -> None:
    deployed = deploy_rounds()
    # A key no dev chain funds: anvil answers with a JSON-RPC error, eth-tester raises.
    pauper = open_ledger(chain.w3, deployed.record.address, private_key=keccak(b"unfunded"))

    with pytest.raises(TransactionRejectedError, match="refused the transaction") as caught:
        pauper.register(vrf_key(9))

    assert caught.value.hint == "fund the sending account with the chain's native token"
    assert deployed.owner.node_count() == 0
