// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice The Review phase: proposeAggregate, vote, finalization, and closeRound for failures.
/// Seat holders who leave mid-round are covered in Hardening.t.sol.
contract ReviewTest is FlareRoundsFixture {
    function setUp() public override {
        super.setUp();
        _startWith(5);
    }

    // ------------------------------------------------------------------ proposeAggregate

    function test_proposeAggregate_numbersProposalsFromOne() public {
        _toReview(1, 3);
        bytes memory cid = _aggregate(1, 0);
        bytes32 root = keccak256(abi.encode(uint256(1), uint256(0)));
        _expectEmit();
        emit IFlareRounds.AggregateProposed(1, _node(0), 1, cid, root);
        assertEq(_propose(0, 1), 1, "first id");
        assertEq(_propose(2, 1), 2, "second id");

        IFlareRounds.ProposalView memory p = rounds.getProposal(1, 1);
        assertEq(p.proposer, _node(0), "proposer");
        assertEq(p.cid, cid, "cid");
        assertEq(p.updatesRoot, root, "root");
        assertEq(p.approvals, 0, "no approvals yet");
        assertEq(rounds.getRound(1).proposalCount, 2, "count");
    }

    function test_proposeAggregate_revertsDuringTraining() public {
        _claim(0, 1);
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Review, IFlareRounds.Phase.Training));
        _propose(0, 1);
    }

    function test_proposeAggregate_revertsAfterReview() public {
        _toReview(1, 3);
        _warpPastReview(1);
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Review, IFlareRounds.Phase.Failed));
        _propose(0, 1);
    }

    function test_proposeAggregate_revertsForUnopenedRound() public {
        vm.expectRevert(_wrongPhase(2, IFlareRounds.Phase.Review, IFlareRounds.Phase.None));
        _propose(0, 2);
    }

    function test_proposeAggregate_revertsBeforeStart() public {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        vm.expectRevert(IFlareRounds.FlareRoundsNotStarted.selector);
        _propose(0, 1);
    }

    /// @dev order[3] claims first and is evicted by the three lower claims; order[4] never
    /// claims.
    function test_proposeAggregate_revertsForNonSeatHolders() public {
        uint256[] memory order = _byRank(1, 5);
        _claim(order[3], 1);
        for (uint256 i = 0; i < 3; ++i) {
            _claim(order[i], 1);
        }
        assertFalse(rounds.isSeatHolder(1, _node(order[3])), "evicted");
        _submit(0, 1);
        _submit(1, 1);
        _warpPastTraining(1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsNotSeatHolder.selector, 1, _node(order[3])
            )
        );
        _propose(order[3], 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsNotSeatHolder.selector, 1, _node(order[4])
            )
        );
        _propose(order[4], 1);
        assertEq(_propose(order[0], 1), 1, "a seat holder proposes");
    }

    function test_proposeAggregate_revertsOnSecondProposal() public {
        _toReview(1, 3);
        _propose(0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadyProposed.selector, 1, _node(0))
        );
        _propose(0, 1);
    }

    function test_proposeAggregate_revertsOnInvalidCid() public {
        _toReview(1, 3);
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidCid.selector, 0));
        vm.prank(_node(0));
        rounds.proposeAggregate(1, "", bytes32(0));
    }

    function test_proposeAggregate_revertsWhenPaused() public {
        _toReview(1, 3);
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _propose(0, 1);
    }

    // ------------------------------------------------------------------ vote

    function test_vote_countsApprovalsAndRejections() public {
        _toReview(1, 3);
        _propose(0, 1);
        _expectEmit();
        emit IFlareRounds.VoteCast(1, _node(2), 1, false);
        _vote(2, 1, 1, false);
        _vote(1, 1, 1, true);

        IFlareRounds.ProposalView memory p = rounds.getProposal(1, 1);
        assertEq(p.approvals, 1, "approvals");
        assertEq(p.rejections, 1, "rejections");
        assertTrue(rounds.hasVoted(1, _node(2)), "voted");
        assertFalse(rounds.hasVoted(1, _node(0)), "not voted");
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "below quorum");
    }

    function test_vote_quorumFinalizesAndOpensTheNextRound() public {
        _toReview(1, 3);
        uint256 id = _propose(0, 1);
        _vote(0, 1, id, true);
        bytes memory cid = _aggregate(1, 0);
        bytes32 root = keccak256(abi.encode(uint256(1), uint256(0)));
        IFlareRounds.RoundView memory r1 = rounds.getRound(1);
        bytes32 seed2 = keccak256(
            abi.encode(r1.seed, block.prevrandao, uint256(2), address(rounds), r1.vrfAccumulator)
        );
        IFlareRounds.RoundParams memory params = IFlareRounds.RoundParams({
            trainEnd: uint64(block.timestamp + TRAIN_WINDOW),
            claimEnd: uint64(block.timestamp),
            reviewWindow: REVIEW_WINDOW,
            committeeSize: K,
            quorum: 2,
            minUpdates: MIN_UPDATES,
            maxSamples: MAX_SAMPLES,
            eligibleNodes: 5
        });

        _expectEmit();
        emit IFlareRounds.VoteCast(1, _node(1), id, true);
        _expectEmit();
        emit IFlareRounds.RoundFinalized(1, id, cid, root, 2);
        _expectEmit();
        emit IFlareRounds.RoundOpened(2, seed2, 1, cid, params, _policy());
        _vote(1, 1, id, true);

        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Finalized), "finalized");
        assertEq(rounds.getRound(1).finalizedProposal, id, "finalized proposal");
        assertEq(rounds.currentRound(), 2, "next round open");
        assertEq(uint256(rounds.phase(2)), uint256(IFlareRounds.Phase.Training), "training");
        assertEq(rounds.getRound(2).baseRound, 1, "base = round 1");
        assertEq(rounds.getRound(2).vrfAccumulator, seed2, "a fresh accumulator");
        assertEq(rounds.baseModel(2), cid, "base model");
        assertEq(rounds.baseModel(1), _genesis(), "round 1 trained on genesis");
        (uint256 round, bytes memory global) = rounds.globalModel();
        assertEq(round, 1, "global round");
        assertEq(global, cid, "global model");
    }

    function test_vote_oneVotePerSeatAcrossProposals() public {
        _toReview(1, 3);
        _propose(0, 1);
        _propose(1, 1);
        _vote(2, 1, 1, false);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadyVoted.selector, 1, _node(2))
        );
        _vote(2, 1, 2, true);
    }

    function test_vote_revertsForNonSeatHolders() public {
        _toReview(1, 3);
        _propose(0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotSeatHolder.selector, 1, _node(4))
        );
        _vote(4, 1, 1, true);
    }

    function test_vote_revertsOnUnknownProposal() public {
        _toReview(1, 3);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsUnknownProposal.selector, 1, 1)
        );
        _vote(0, 1, 1, true);
        _propose(0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsUnknownProposal.selector, 1, 0)
        );
        _vote(0, 1, 0, true);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsUnknownProposal.selector, 1, 2)
        );
        _vote(0, 1, 2, true);
    }

    function test_vote_revertsOutsideReview() public {
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Review, IFlareRounds.Phase.Training));
        _vote(0, 1, 1, true);

        _finalize(1, 3);
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Review, IFlareRounds.Phase.Finalized));
        _vote(2, 1, 1, true);
    }

    function test_vote_revertsBeforeStart() public {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        vm.expectRevert(IFlareRounds.FlareRoundsNotStarted.selector);
        _vote(0, 1, 1, true);
    }

    function test_vote_revertsWhenPaused() public {
        _toReview(1, 3);
        _propose(0, 1);
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _vote(0, 1, 1, true);
    }

    function test_getProposal_revertsOnUnknownId() public {
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsUnknownProposal.selector, 1, 0)
        );
        rounds.getProposal(1, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsUnknownProposal.selector, 1, 1)
        );
        rounds.getProposal(1, 1);
    }

    // ------------------------------------------------------------------ closeRound

    function test_closeRound_failsARoundWithTooFewUpdates() public {
        _submit(0, 1);
        _warpPastTraining(1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Failed), "failed at trainEnd");

        _expectEmit();
        emit IFlareRounds.RoundFailed(1, IFlareRounds.FailureReason.TooFewUpdates);
        vm.prank(stranger); // anyone may close
        rounds.closeRound(1);

        assertEq(rounds.currentRound(), 2, "next round");
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Failed), "stays failed");
        assertEq(rounds.getRound(2).baseRound, 0, "base unchanged");
        assertEq(rounds.baseModel(2), _genesis(), "still genesis");
    }

    function test_closeRound_failsARoundWithoutQuorum() public {
        _toReview(1, 3);
        _propose(0, 1);
        _vote(0, 1, 1, true);
        _warpPastReview(1);

        _expectEmit();
        emit IFlareRounds.RoundFailed(1, IFlareRounds.FailureReason.NoQuorum);
        rounds.closeRound(1);
        assertEq(rounds.getRound(1).finalizedProposal, 0, "not finalized");
    }

    function test_closeRound_keepsTheLastFinalizedBase() public {
        uint256 id = _finalize(1, 3);
        _warpPastTraining(2);
        rounds.closeRound(2);
        assertEq(rounds.getRound(3).baseRound, 1, "base = last finalized");
        assertEq(rounds.baseModel(3), rounds.getProposal(1, id).cid, "base model");
    }

    function test_closeRound_revertsUnlessCurrentAndFailed() public {
        vm.expectRevert(_notClosable(1, IFlareRounds.Phase.Training));
        rounds.closeRound(1);
        vm.expectRevert(_notClosable(0, IFlareRounds.Phase.None));
        rounds.closeRound(0);
        vm.expectRevert(_notClosable(2, IFlareRounds.Phase.None));
        rounds.closeRound(2);

        _toReview(1, 3);
        vm.expectRevert(_notClosable(1, IFlareRounds.Phase.Review));
        rounds.closeRound(1);

        _warpPastReview(1);
        rounds.closeRound(1);
        vm.expectRevert(_notClosable(1, IFlareRounds.Phase.Failed));
        rounds.closeRound(1);
    }

    function test_closeRound_revertsForAFinalizedRound() public {
        _finalize(1, 3);
        vm.expectRevert(_notClosable(1, IFlareRounds.Phase.Finalized));
        rounds.closeRound(1);
    }

    function test_closeRound_revertsWhenPaused() public {
        _warpPastTraining(1);
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        rounds.closeRound(1);
    }

    // ------------------------------------------------------------------ phases over time

    function test_phase_followsTheClock() public {
        _submit(0, 1);
        _submit(1, 1);
        IFlareRounds.RoundView memory r = rounds.getRound(1);
        vm.warp(r.trainEnd - 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "before trainEnd");
        vm.warp(r.trainEnd);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "at trainEnd");
        vm.warp(r.reviewEnd - 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "before reviewEnd");
        vm.warp(r.reviewEnd);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Failed), "at reviewEnd");
    }

    function test_roundsChainThroughFinalizationsAndFailures() public {
        _finalize(1, 3);
        _warpPastTraining(2);
        rounds.closeRound(2);
        _finalize(3, 4);

        assertEq(rounds.currentRound(), 4, "round 4 open");
        assertEq(rounds.getRound(4).baseRound, 3, "base = round 3");
        (uint256 round, bytes memory cid) = rounds.globalModel();
        assertEq(round, 3, "latest finalized");
        assertEq(cid, _aggregate(3, 0), "its cid");
        assertTrue(rounds.getRound(2).seed != rounds.getRound(3).seed, "fresh seeds");
    }

    function _notClosable(uint256 round, IFlareRounds.Phase phase)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(IFlareRounds.FlareRoundsNotClosable.selector, round, phase);
    }
}
