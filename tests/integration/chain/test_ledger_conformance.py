"""One conformance suite for `Web3Ledger`, run on eth-tester and on a real anvil process.

Whatever the backend, the same calls must give the same values, the same events and the same
`ContractError` subclasses with the same arguments. Seat proofs and proofs of possession are
real BLS signatures made in Python; the contract verifies them with the EIP-2537 precompiles,
so every passing claim here is also a check that Python and Solidity agree bit for bit.
"""

from __future__ import annotations

from typing import Any

import pytest
from chain_harness import (
    GENESIS_CID,
    SPEC_HASH,
    Chain,
    Deployed,
    DeployFactory,
    Federation,
    federation_config,
)
from eth_utils.crypto import keccak
from flare_testing import POLICY_CID, register

from flare.chain.deploy import deploy
from flare.chain.ledger import (
    NoContractError,
    NotFlareRoundsError,
    UnsupportedVersionError,
    open_ledger,
)
from flare.chain.reverts import RevertDecoder
from flare.chain.transact import (
    TransactionRejectedError,
    TransactionRevertedError,
    Transactor,
)
from flare.protocol import events as ev
from flare.protocol import ledger as errors
from flare.protocol import sortition, vrf
from flare.protocol.ledger import ContractError, Ledger
from flare.protocol.rounds import (
    INTERFACE_VERSION,
    ZERO_ADDRESS,
    FailureReason,
    Phase,
    RoundConfig,
    accumulate,
    address_bytes,
    next_seed,
    updates_root,
)


def cid_of(label: str) -> bytes:
    """A binary CIDv1 (raw leaves, sha2-256) whose digest is derived from `label`."""
    return bytes.fromhex("01551220") + keccak(text=label)


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
    config = federation_config(committee_size=5, quorum_bps=6000, min_updates=2)
    deployed = deploy_rounds(config, allowlist=True)
    ledger = deployed.owner

    assert ledger.version() == INTERFACE_VERSION
    assert ledger.model_spec_hash() == SPEC_HASH
    assert ledger.genesis_model() == GENESIS_CID
    assert ledger.config() == config
    assert ledger.config().review_policy == POLICY_CID
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


def test_the_contract_uses_the_tags_and_messages_python_signs(federation: Federation) -> None:
    contract = federation.owner._contract.functions
    assert bytes(contract.VRF_DST().call()) == vrf.VRF_DST
    assert bytes(contract.POP_DST().call()) == vrf.POP_DST
    # Registration in the federation fixture already checked five Python proofs of
    # possession on-chain; the node list is rebuilt from their events.
    log = federation.owner.events(federation.deployed.record.block)
    members = ev.registered_nodes(log)
    assert sorted(members) == sorted(m.address for m in federation.members)
    for member in federation.members:
        assert members[member.address].bls_key == member.bls_key
        assert federation.owner.get_node(member.address).bls_key_hash == keccak(member.bls_key)
        assert federation.owner.bls_key_owner(keccak(member.bls_key)) == member.address


def test_a_round_finalizes_and_the_next_one_opens_on_its_model(federation: Federation) -> None:
    owner = federation.owner
    owner.start()
    # The four best-ranked members take part; the worst of them claims first and is evicted.
    first, second, third, fourth = federation.by_rank(1)[:4]
    nodes = [fourth, second, third, first]  # claim order
    updates = {m.address: cid_of(f"update-{m.address}") for m in federation.members}

    for member in federation.members[:4]:
        member.ledger.submit_update(1, updates[member.address], 100)
    for member in nodes[:3]:
        member.claim(1)
    last_claim = first.claim(1)  # evicts the highest seat: fourth's
    assert owner.phase(1) is Phase.TRAINING  # one eligible member has not submitted yet
    last = federation.members[4]
    last_update = last.ledger.submit_update(1, updates[last.address], 100)

    claimed = of_type(list(last_claim.events), ev.SeatClaimed)[0]
    assert claimed.evicted == fourth.address
    assert of_type(list(last_update.events), ev.TrainingClosed)  # all submitted, k seats held
    assert owner.phase(1) is Phase.REVIEW
    assert {seat.holder for seat in owner.seats(1)} == {
        first.address,
        second.address,
        third.address,
    }
    assert not owner.is_seat_holder(1, fourth.address)
    assert owner.update_of(1, last.address) == keccak(updates[last.address])

    root = updates_root(updates.items())
    aggregate = cid_of("aggregate-1")
    proposed = second.ledger.propose_aggregate(1, aggregate, root)
    assert proposed.proposal_id == 1
    first_vote = second.ledger.vote(1, 1, True)
    assert not of_type(list(first_vote.events), ev.RoundFinalized)  # 1 of quorum 2
    final_vote = third.ledger.vote(1, 1, True)

    finalized = of_type(list(final_vote.events), ev.RoundFinalized)[0]
    opened = of_type(list(final_vote.events), ev.RoundOpened)[0]
    assert (finalized.cid, finalized.updates_root, finalized.approvals) == (aggregate, root, 2)
    assert (opened.round, opened.base_round, opened.base_model) == (2, 1, aggregate)
    assert opened.review_policy == POLICY_CID
    assert opened.params.eligible_nodes == 5
    assert owner.phase(1) is Phase.FINALIZED
    assert owner.current_round() == 2
    assert owner.global_model() == (1, aggregate)
    assert owner.base_model(2) == aggregate
    proposal = owner.get_proposal(1, 1)
    assert (proposal.proposer, proposal.approvals, proposal.rejections) == (second.address, 2, 0)
    assert owner.has_voted(1, third.address)
    assert not owner.has_voted(1, first.address)

    # Auditors rebuild the round from the events alone.
    log = owner.events(federation.deployed.record.block)
    submitted = [e for e in of_type(log, ev.UpdateSubmitted) if e.round == 1]
    assert updates_root((e.node, e.cid) for e in submitted) == finalized.updates_root
    assert [e.position for e in log] == sorted(e.position for e in log)


def test_an_auditor_reverifies_every_seat_and_the_seed_chain_from_the_events(
    chain: Chain, federation: Federation
) -> None:
    owner = federation.owner
    owner.start()
    for member in reversed(federation.by_rank(1)):  # worst first: every claim is accepted
        member.claim(1)
    for member in federation.members:
        member.ledger.submit_update(1, cid_of(member.address), 1)
    assert owner.phase(1) is Phase.REVIEW  # everyone submitted, every seat held
    member = next(m for m in federation.members if owner.is_seat_holder(1, m.address))
    member.ledger.propose_aggregate(1, cid_of("agg"), bytes(32))
    votes = [m for m in federation.members if owner.is_seat_holder(1, m.address)][:2]
    for voter in votes:
        voter.ledger.vote(1, 1, True)

    log = owner.events(federation.deployed.record.block)
    keys = {e.node: e.bls_key for e in of_type(log, ev.NodeRegistered)}
    opened = {e.round: e for e in of_type(log, ev.RoundOpened)}
    accumulator = opened[1].seed
    claims = [e for e in of_type(log, ev.SeatClaimed) if e.round == 1]
    for claim in claims:
        checked = sortition.verify_claim(keys[claim.node], opened[1].seed, 1, claim.proof,
                                         claim.output)  # fmt: skip
        assert checked == claim.output == keccak(claim.proof)
        accumulator = accumulate(accumulator, claim.output)
    assert len(claims) == 5
    assert owner.get_round(1).vrf_accumulator == accumulator
    # A node's block header carries the prevrandao its transactions saw. eth-tester executes
    # with prevrandao 0 and fills mixHash in afterwards: a constant prevrandao, the very case
    # the accumulator is there for.
    opening = chain.w3.eth.get_block(opened[2].block)
    prevrandao = 0 if chain.kind == "eth-tester" else int.from_bytes(opening["mixHash"], "big")
    assert opened[2].seed == next_seed(opened[1].seed, prevrandao, 2, owner.address, accumulator)
    assert owner.get_round(2).seed == opened[2].seed


def test_training_with_too_few_updates_fails_and_closing_reopens_on_the_old_base(
    chain: Chain, federation: Federation
) -> None:
    owner, first, second = federation.owner, *(m.ledger for m in federation.members[:2])
    owner.set_config(federation_config(min_updates=2))
    owner.start()
    first.submit_update(1, cid_of("only"), 5)

    chain.advance(101)

    assert first.phase(1) is Phase.FAILED
    closed = second.close_round(1)  # anyone may close
    failed = of_type(list(closed.events), ev.RoundFailed)[0]
    opened = of_type(list(closed.events), ev.RoundOpened)[0]
    assert failed.reason is FailureReason.TOO_FEW_UPDATES
    assert (opened.round, opened.base_round, opened.base_model) == (2, 0, GENESIS_CID)
    expect(errors.NotClosableError, {"round": 1, "phase": Phase.FAILED}, second.close_round, 1)


def test_review_without_quorum_fails_with_no_quorum(chain: Chain, federation: Federation) -> None:
    owner = federation.owner
    owner.set_config(federation_config(committee_size=2))
    owner.start()
    first, second = federation.members[:2]
    for member in (first, second):
        member.ledger.submit_update(1, cid_of(member.address), 1)
        member.claim(1)
    chain.advance(101)
    first.ledger.propose_aggregate(1, cid_of("agg"), bytes(32))
    second.ledger.vote(1, 1, False)

    chain.advance(51)

    assert owner.phase(1) is Phase.FAILED
    closed = first.ledger.close_round(1)
    assert of_type(list(closed.events), ev.RoundFailed)[0].reason is FailureReason.NO_QUORUM
    expect(
        errors.WrongPhaseError,
        {"round": 1, "expected": Phase.REVIEW, "actual": Phase.FAILED},
        first.ledger.vote,
        1,
        1,
        True,
    )


# ---------------------------------------------------------------- attacks that must fail


def test_a_garbage_proof_with_a_low_output_takes_no_seat(federation: Federation) -> None:
    owner, attacker = federation.owner, federation.members[0]
    owner.start()
    w3 = federation.deployed.chain.w3
    sent = w3.eth.get_transaction_count(attacker.address)
    # The lowest keccak among a few garbage proofs: its output would rank near the top.
    garbage = min((keccak(text=f"garbage {i}") * 4 for i in range(64)), key=keccak)

    expect(
        errors.InvalidProofError,
        {"round": 1, "node": attacker.address},
        attacker.ledger.claim_seat,
        1,
        garbage,
        attacker.bls_key,
    )
    expect(
        errors.InvalidProofError,
        {"round": 1, "node": attacker.address},
        attacker.ledger.claim_seat,
        1,
        bytes(128),  # the point at infinity
        attacker.bls_key,
    )
    assert owner.seats(1) == []
    if federation.deployed.chain.kind == "anvil":
        # Claims go out at a fixed gas limit, unestimated: the simulation still refuses them
        # before anything is signed (the in-process chain mines and replays a refusal).
        assert w3.eth.get_transaction_count(attacker.address) == sent


def test_another_nodes_proof_replayed_is_refused(federation: Federation) -> None:
    owner, honest, thief = federation.owner, *federation.members[:2]
    owner.start()
    stolen = honest.proof(owner.get_round(1).seed, 1)
    honest.claim(1)

    expect(
        errors.InvalidProofError,
        {"round": 1, "node": thief.address},
        thief.ledger.claim_seat,
        1,
        stolen,
        thief.bls_key,
    )
    expect(
        errors.WrongBlsKeyError,
        {"node": thief.address, "blsKeyHash": keccak(honest.bls_key)},
        thief.ledger.claim_seat,
        1,
        stolen,
        honest.bls_key,
    )
    assert [seat.holder for seat in owner.seats(1)] == [honest.address]


def test_a_proof_for_another_round_or_seed_is_refused(chain: Chain, federation: Federation) -> None:
    owner, member = federation.owner, federation.members[0]
    owner.start()
    seed1 = owner.get_round(1).seed
    chain.advance(101)
    owner.close_round(1)  # no updates: round 1 fails, round 2 opens
    seed2 = owner.get_round(2).seed
    refused = {"round": 2, "node": member.address}

    for proof in (
        member.proof(seed1, 1),  # last round's proof
        member.proof(seed1, 2),  # the old seed under the new round number
        member.proof(seed2, 1),  # the new seed under the old round number
        member.proof(b"\x42" * 32, 2),  # a seed of its choosing
    ):
        expect(
            errors.InvalidProofError, refused, member.ledger.claim_seat, 2, proof, member.bls_key
        )
    member.claim(2)  # the right proof still works
    assert owner.is_seat_holder(2, member.address)


def test_a_proof_under_a_key_that_is_not_registered_is_refused(
    chain: Chain, federation: Federation
) -> None:
    owner, member = federation.owner, federation.members[0]
    owner.start()
    stranger_key = vrf.new_secret_key()
    proof = vrf.prove(stranger_key, sortition.alpha_for(owner.get_round(1).seed, 1))
    outsider = federation.deployed.node(7)

    expect(
        errors.WrongBlsKeyError,
        {"node": member.address, "blsKeyHash": keccak(vrf.public_key(stranger_key))},
        member.ledger.claim_seat,
        1,
        proof,
        vrf.public_key(stranger_key),
    )
    expect(
        errors.NotEligibleError,
        {"round": 1, "node": outsider.account},
        outsider.claim_seat,
        1,
        proof,
        vrf.public_key(stranger_key),
    )


def test_nobody_registers_someone_elses_bls_key(federation: Federation) -> None:
    owner = federation.owner
    victim, attacker = federation.deployed.node(6), federation.deployed.node(7)
    victim_secret = vrf.new_secret_key()
    key = vrf.public_key(victim_secret)
    contract = address_bytes(owner.address)
    victims_proof = vrf.prove_possession(
        victim_secret, owner.chain_id, contract, address_bytes(str(victim.account))
    )

    # The victim's own registration, replayed from another address.
    expect(
        errors.InvalidPossessionProofError,
        {"node": attacker.account},
        attacker.register,
        key,
        victims_proof,
        b"\x01" * 32,
    )
    # A proof of possession for another chain, or another contract, does not carry over.
    for chain_id, target in ((owner.chain_id + 1, contract), (owner.chain_id, bytes(20))):
        elsewhere = vrf.prove_possession(
            victim_secret, chain_id, target, address_bytes(str(attacker.account))
        )
        expect(
            errors.InvalidPossessionProofError,
            {"node": attacker.account},
            attacker.register,
            key,
            elsewhere,
            b"\x01" * 32,
        )
    victim.register(key, victims_proof, b"\x02" * 32)
    expect(
        errors.BlsKeyTakenError,
        {"blsKeyHash": keccak(key), "owner": victim.account},
        attacker.register,
        key,
        victims_proof,
        b"\x01" * 32,
    )
    assert owner.bls_key_owner(keccak(key)) == victim.account


def test_bad_keys_are_refused_at_registration(federation: Federation) -> None:
    newcomer = federation.deployed.node(6)
    secret = vrf.new_secret_key()
    possession = vrf.prove_possession(
        secret,
        newcomer.chain_id,
        address_bytes(newcomer.address),
        address_bytes(str(newcomer.account)),
    )
    corrupted = bytearray(vrf.public_key(secret))
    corrupted[-1] ^= 1

    expect(errors.InvalidBlsKeyError, {}, newcomer.register, bytes(256), possession, b"\x01" * 32)
    expect(errors.InvalidBlsKeyError, {}, newcomer.register, bytes(255), possession, b"\x01" * 32)
    expect(
        errors.InvalidPossessionProofError,
        {"node": newcomer.account},
        newcomer.register,
        bytes(corrupted),
        possession,
        b"\x01" * 32,
    )
    expect(
        errors.InvalidPeerKeyError,
        {},
        newcomer.register,
        vrf.public_key(secret),
        possession,
        bytes(32),
    )
    newcomer.register(vrf.public_key(secret), possession, b"\x01" * 32)


# ---------------------------------------------------------------- hardening


def test_a_seat_holder_that_leaves_mid_round_can_no_longer_propose_or_vote(
    chain: Chain, federation: Federation
) -> None:
    owner = federation.owner
    owner.start()
    seated = federation.members[:3]
    for member in seated:
        member.ledger.submit_update(1, cid_of(member.address), 1)
        member.claim(1)
    chain.advance(101)
    seated[0].ledger.propose_aggregate(1, cid_of("agg"), bytes(32))
    leaver, removed = seated[1], seated[2]
    leaver.ledger.deregister()
    owner.disallow(removed.address)

    for member in (leaver, removed):
        assert not owner.is_seat_holder(1, member.address)
        refused = {"round": 1, "node": member.address}
        expect(errors.NotSeatHolderError, refused, member.ledger.vote, 1, 1, True)
        expect(
            errors.NotSeatHolderError,
            refused,
            member.ledger.propose_aggregate,
            1,
            cid_of("mine"),
            bytes(32),
        )


def test_sample_counts_over_the_cap_are_refused(federation: Federation) -> None:
    owner, member = federation.owner, federation.members[0]
    owner.start()
    cap = owner.get_round(1).max_samples

    expect(
        errors.TooManySamplesError,
        {"numSamples": cap + 1, "maxSamples": cap},
        member.ledger.submit_update,
        1,
        cid_of("greedy"),
        cap + 1,
    )
    member.ledger.submit_update(1, cid_of("fair"), cap)


def test_reverts_decode_into_the_named_error_with_its_arguments(federation: Federation) -> None:
    owner = federation.owner
    owner.set_config(federation_config(committee_size=1, quorum_bps=10_000))
    first, second = federation.members[:2]
    outsider = federation.deployed.node(8)
    a1, a3 = first.address, str(outsider.account)

    expect(errors.AlreadyRegisteredError, {"node": a1}, register, first.ledger)
    owner.set_allowlist(True)
    expect(errors.NotAllowedError, {"node": a3}, register, outsider)
    expect(errors.NotRegisteredError, {"node": a3}, outsider.deregister)
    expect(errors.NotStartedError, {}, first.ledger.submit_update, 1, cid_of("x"), 1)
    expect(errors.OwnableUnauthorizedAccountError, {"account": a1}, first.ledger.start)
    owner.start()
    expect(errors.AlreadyStartedError, {}, owner.start)
    expect(
        errors.WrongRoundError,
        {"round": 2, "currentRound": 1},
        first.ledger.submit_update,
        2,
        b"1",
        1,
    )
    expect(errors.InvalidCidError, {"length": 0}, first.ledger.submit_update, 1, b"", 1)
    expect(errors.ZeroSamplesError, {}, first.ledger.submit_update, 1, cid_of("x"), 0)
    expect(
        errors.InvalidProofError,
        {"round": 1, "node": a1},
        first.ledger.claim_seat,
        1,
        b"short",
        first.bls_key,
    )
    expect(
        errors.NotEligibleError,
        {"round": 1, "node": a3},
        outsider.submit_update,
        1,
        b"1",
        1,
    )
    expect(
        errors.WrongPhaseError,
        {"round": 1, "expected": Phase.REVIEW, "actual": Phase.TRAINING},
        first.ledger.propose_aggregate,
        1,
        cid_of("agg"),
        bytes(32),
    )
    first.ledger.submit_update(1, cid_of("u1"), 1)
    expect(
        errors.AlreadySubmittedError,
        {"round": 1, "node": a1},
        first.ledger.submit_update,
        1,
        b"1",
        1,
    )
    better, worse = sorted((first, second), key=lambda m: federation.by_rank(1).index(m))
    better.claim(1)
    seed = owner.get_round(1).seed
    worse_rank = sortition.rank_of(vrf.proof_to_output(worse.proof(seed, 1)))
    better_rank = sortition.rank_of(vrf.proof_to_output(better.proof(seed, 1)))
    expect(
        errors.OutputTooHighError,
        {"round": 1, "rank": worse_rank, "highestRank": better_rank},
        worse.claim,
        1,
    )
    expect(errors.AlreadyClaimedError, {"round": 1, "node": better.address}, better.claim, 1)
    for member in federation.members:
        if member not in (first,):
            member.ledger.submit_update(1, cid_of(member.address), 1)
    assert owner.phase(1) is Phase.REVIEW  # every eligible member submitted, the seat is held
    expect(
        errors.NotSeatHolderError,
        {"round": 1, "node": worse.address},
        worse.ledger.propose_aggregate,
        1,
        cid_of("agg"),
        bytes(32),
    )
    expect(
        errors.UnknownProposalError,
        {"round": 1, "proposalId": 1},
        better.ledger.vote,
        1,
        1,
        True,
    )
    better.ledger.propose_aggregate(1, cid_of("agg"), bytes(32))
    expect(
        errors.AlreadyProposedError,
        {"round": 1, "node": better.address},
        better.ledger.propose_aggregate,
        1,
        cid_of("agg2"),
        bytes(32),
    )
    expect(errors.NotClosableError, {"round": 1, "phase": Phase.REVIEW}, owner.close_round, 1)
    owner.pause()
    expect(errors.EnforcedPauseError, {}, better.ledger.vote, 1, 1, False)
    owner.unpause()
    expect(errors.ExpectedPauseError, {}, owner.unpause)
    better.ledger.vote(1, 1, False)
    expect(
        errors.AlreadyVotedError,
        {"round": 1, "node": better.address},
        better.ledger.vote,
        1,
        1,
        True,
    )


def test_constructor_reverts_decode_too(chain: Chain) -> None:
    common: dict[str, Any] = {"config": federation_config(), "model_spec_hash": SPEC_HASH}
    with pytest.raises(errors.InvalidCidError) as empty_cid:
        deploy(chain.w3, chain.key(0), genesis_model=b"", **common)
    assert empty_cid.value.error_args == {"length": 0}
    with pytest.raises(errors.InvalidConfigError) as zero_spec:
        deploy(
            chain.w3,
            chain.key(0),
            genesis_model=GENESIS_CID,
            config=federation_config(),
            model_spec_hash=bytes(32),
        )
    assert zero_spec.value.error_args == {"reason": "modelSpecHash is zero"}
    with pytest.raises(errors.OwnableInvalidOwnerError):
        deploy(chain.w3, chain.key(0), genesis_model=GENESIS_CID, owner=ZERO_ADDRESS, **common)


def test_admin_calls_change_what_views_report(federation: Federation) -> None:
    owner, heir = federation.owner, federation.deployed.node(9)
    member = federation.members[0]
    owner.allow(member.address)
    assert owner.get_node(member.address).allowed

    removed = owner.disallow(member.address)

    assert [type(e) for e in removed.events] == [ev.NodeDisallowed, ev.NodeDeregistered]
    assert not owner.get_node(member.address).registered
    assert owner.node_count() == 4
    owner.set_allowlist(True)
    assert owner.allowlist_enabled() is True
    new_config = federation_config(committee_size=4, quorum_bps=7500, train_window=60)
    changed = owner.set_config(new_config)
    assert of_type(list(changed.events), ev.ConfigSet)[0].effective_from == 1
    assert of_type(list(changed.events), ev.ConfigSet)[0].config == new_config
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


def test_open_ledger_refuses_what_is_not_a_flare_rounds_it_speaks(chain: Chain) -> None:
    eoa = chain.w3.eth.account.from_key(chain.key(5)).address
    with pytest.raises(NoContractError, match=eoa):
        open_ledger(chain.w3, eoa)
    sender = Transactor(chain.w3, RevertDecoder([]), chain.key(5))

    def deployed(runtime: str) -> str:
        """A contract whose runtime code is `runtime` (hex), behind a 10-byte initcode."""
        size = len(runtime) // 2
        initcode = f"60{size:02x}600a5f3960{size:02x}5ff3" + runtime
        contract = chain.w3.eth.contract(abi=[], bytecode=bytes.fromhex(initcode))
        return str(sender.send(contract.constructor())["contractAddress"])

    # Returns nothing for every call: no FlareRounds at all.
    with pytest.raises(NotFlareRoundsError):
        open_ledger(chain.w3, deployed("5f5ff3"))
    # Returns the word 1 for every call, version() included: an interface this node does not
    # speak. The message names both versions and how to move on.
    with pytest.raises(UnsupportedVersionError, match="version 1; this flare-node speaks") as old:
        open_ledger(chain.w3, deployed("600160005260205ff3"))
    assert old.value.hint is not None
    assert "redeploys" in old.value.hint


class _Prepared:
    """A transaction built by hand, so it skips the simulation that would catch its revert."""

    def __init__(self, tx: dict[str, Any]) -> None:
        self.tx = tx

    def build_transaction(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {**overrides, **self.tx}  # its own gas limit wins


@pytest.mark.parametrize(
    ("function", "args", "gas", "expected"),
    [
        # Skips gas estimation: a node mines it with status 0 and the replay names the reason
        # (the in-process chain always works that way).
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
        register(pauper)  # would succeed: only the funds are missing

    assert caught.value.hint == "fund the sending account with the chain's native token"
    assert deployed.owner.node_count() == 0


def test_round_config_round_trips_through_the_contract(deploy_rounds: DeployFactory) -> None:
    config = RoundConfig(
        committee_size=64,
        quorum_bps=5100,
        train_window=2**32 - 1,
        review_window=1,
        min_claim_window=2**32 - 1,
        min_updates=2**32 - 1,
        max_samples=2**64 - 1,
        review_policy=b"\x01" * 128,
    )

    assert deploy_rounds(config).owner.config() == config
