// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice The Training phase: submitUpdate, claimSeat and the early close.
contract TrainingTest is FlareRoundsFixture {
    function setUp() public override {
        super.setUp();
        _startWith(5);
    }

    // ------------------------------------------------------------------ submitUpdate

    function test_submitUpdate_storesCidHashAndEmitsFullCid() public {
        bytes memory cid = _cid(42);
        _expectEmit();
        emit IFlareRounds.UpdateSubmitted(1, _node(0), cid, 128);
        vm.prank(_node(0));
        rounds.submitUpdate(1, cid, 128);

        assertEq(rounds.updateOf(1, _node(0)), keccak256(cid), "stored hash");
        assertEq(rounds.updateOf(1, _node(1)), bytes32(0), "others untouched");
        assertEq(rounds.getRound(1).updateCount, 1, "counted");
    }

    function test_submitUpdate_acceptsCidLengthBounds() public {
        vm.prank(_node(0));
        rounds.submitUpdate(1, new bytes(1), 1);
        vm.prank(_node(1));
        rounds.submitUpdate(1, new bytes(128), 1);
        assertEq(rounds.getRound(1).updateCount, 2, "both accepted");
    }

    function test_submitUpdate_revertsOnInvalidCid() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidCid.selector, 0));
        vm.prank(_node(0));
        rounds.submitUpdate(1, "", 1);
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidCid.selector, 129));
        vm.prank(_node(0));
        rounds.submitUpdate(1, new bytes(129), 1);
    }

    function test_submitUpdate_revertsOnZeroSamples() public {
        vm.expectRevert(IFlareRounds.FlareRoundsZeroSamples.selector);
        vm.prank(_node(0));
        rounds.submitUpdate(1, _cid(1), 0);
    }

    function test_submitUpdate_revertsOnceSubmitted() public {
        _submit(0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadySubmitted.selector, 1, _node(0))
        );
        vm.prank(_node(0));
        rounds.submitUpdate(1, _cid(99), 5);
    }

    function test_submitUpdate_revertsForOtherRounds() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 2, 1));
        _submit(0, 2);
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 0, 1));
        _submit(0, 0);
    }

    function test_submitUpdate_revertsForAPastRound() public {
        _finalize(1, 3);
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 1, 2));
        _submit(4, 1);
    }

    function test_submitUpdate_revertsBeforeStart() public {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        _register(0);
        vm.expectRevert(IFlareRounds.FlareRoundsNotStarted.selector);
        _submit(0, 1);
    }

    function test_submitUpdate_revertsAfterTraining() public {
        _submit(0, 1);
        _submit(1, 1);
        _warpPastTraining(1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsWrongPhase.selector,
                1,
                IFlareRounds.Phase.Training,
                IFlareRounds.Phase.Review
            )
        );
        _submit(2, 1);
    }

    function test_submitUpdate_revertsWhenTrainingEndedWithTooFewUpdates() public {
        _warpPastTraining(1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsWrongPhase.selector,
                1,
                IFlareRounds.Phase.Training,
                IFlareRounds.Phase.Failed
            )
        );
        _submit(0, 1);
    }

    function test_submitUpdate_revertsForIneligibleNodes() public {
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, stranger)
        );
        vm.prank(stranger);
        rounds.submitUpdate(1, _cid(1), 1);

        _register(7); // registered while round 1 is open: eligible from round 2
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, _node(7))
        );
        _submit(7, 1);
    }

    function test_submitUpdate_revertsWhenPaused() public {
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _submit(0, 1);
    }

    // ------------------------------------------------------------------ claimSeat

    function test_claimSeat_fillsSeatsInArrivalOrder() public {
        bytes memory proof = _proof(0);
        _expectEmit();
        emit IFlareRounds.SeatClaimed(1, _node(0), _output(5), proof, address(0));
        vm.prank(_node(0));
        rounds.claimSeat(1, _output(5), proof);
        _claim(1, 1, 9);
        _claim(2, 1, 2);

        IFlareRounds.Seat[] memory list = rounds.seats(1);
        assertEq(list.length, 3, "three seats");
        assertEq(list[0].holder, _node(0), "holder 0");
        assertEq(list[0].output, _output(5), "output 0");
        assertEq(list[1].holder, _node(1), "holder 1");
        assertEq(list[2].output, _output(2), "output 2");
        assertTrue(rounds.isSeatHolder(1, _node(2)), "seat flag");
        assertEq(rounds.getRound(1).seatCount, 3, "seat count");
    }

    function test_claimSeat_lowerOutputEvictsTheHighest() public {
        _claim(0, 1, 5);
        _claim(1, 1, 9);
        _claim(2, 1, 2);

        _expectEmit();
        emit IFlareRounds.SeatClaimed(1, _node(3), _output(7), _proof(3), _node(1));
        _claim(3, 1, 7);
        assertFalse(rounds.isSeatHolder(1, _node(1)), "evicted loses the seat");
        assertTrue(rounds.isSeatHolder(1, _node(3)), "claimer seated");
        assertEq(rounds.seats(1)[1].holder, _node(3), "takes the evicted slot");

        // The highest is now node 3's 7, not node 0's 5.
        _expectEmit();
        emit IFlareRounds.SeatClaimed(1, _node(4), _output(6), _proof(4), _node(3));
        _claim(4, 1, 6);
        assertEq(rounds.getRound(1).seatCount, 3, "still k seats");
    }

    function test_claimSeat_revertsWhenFullAndNotLower() public {
        _claim(0, 1, 5);
        _claim(1, 1, 9);
        _claim(2, 1, 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsOutputTooHigh.selector, 1, _output(9), _output(9)
            )
        );
        _claim(3, 1, 9);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsOutputTooHigh.selector, 1, _output(10), _output(9)
            )
        );
        _claim(3, 1, 10);
    }

    function test_claimSeat_revertsOnceClaimedEvenAfterEviction() public {
        _claim(0, 1, 5);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadyClaimed.selector, 1, _node(0))
        );
        _claim(0, 1, 1);

        _claim(1, 1, 6);
        _claim(2, 1, 7);
        _claim(3, 1, 1); // evicts node 2
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadyClaimed.selector, 1, _node(2))
        );
        _claim(2, 1, 0);
    }

    function test_claimSeat_revertsOnProofLength() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidProof.selector, 79));
        vm.prank(_node(0));
        rounds.claimSeat(1, _output(1), new bytes(79));
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidProof.selector, 81));
        vm.prank(_node(0));
        rounds.claimSeat(1, _output(1), new bytes(81));
    }

    function test_claimSeat_revertsForOtherRounds() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 2, 1));
        _claim(0, 2, 1);
    }

    function test_claimSeat_revertsBeforeStart() public {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        _register(0);
        vm.expectRevert(IFlareRounds.FlareRoundsNotStarted.selector);
        _claim(0, 1, 1);
    }

    function test_claimSeat_revertsAfterTraining() public {
        _submit(0, 1);
        _submit(1, 1);
        _warpPastTraining(1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsWrongPhase.selector,
                1,
                IFlareRounds.Phase.Training,
                IFlareRounds.Phase.Review
            )
        );
        _claim(0, 1, 1);
    }

    function test_claimSeat_revertsForIneligibleNodes() public {
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, stranger)
        );
        vm.prank(stranger);
        rounds.claimSeat(1, _output(1), _proof(1));
    }

    function test_claimSeat_revertsWhenPaused() public {
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _claim(0, 1, 1);
    }

    // ------------------------------------------------------------------ early close

    function test_earlyClose_whenAllEligibleSubmittedAndSeatsFull() public {
        for (uint256 i = 0; i < 5; ++i) {
            _submit(i, 1);
        }
        _claim(0, 1, 1);
        _claim(1, 1, 2);
        vm.warp(START_TIME + 600);

        _expectEmit();
        emit IFlareRounds.TrainingClosed(1, uint64(START_TIME + 600 + REVIEW_WINDOW));
        _claim(2, 1, 3);

        IFlareRounds.RoundView memory r = rounds.getRound(1);
        assertEq(uint256(r.phase), uint256(IFlareRounds.Phase.Review), "review at once");
        assertEq(r.reviewStart, START_TIME + 600, "reviewStart = close time");
        assertEq(r.reviewEnd, START_TIME + 600 + REVIEW_WINDOW, "reviewEnd");
        assertEq(r.trainEnd, START_TIME + TRAIN_WINDOW, "trainEnd kept");
    }

    function test_earlyClose_triggeredByTheLastUpdate() public {
        _claim(0, 1, 1);
        _claim(1, 1, 2);
        _claim(2, 1, 3);
        for (uint256 i = 0; i < 4; ++i) {
            _submit(i, 1);
        }
        assertEq(
            uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "one update missing"
        );

        _expectEmit();
        emit IFlareRounds.TrainingClosed(1, uint64(START_TIME + REVIEW_WINDOW));
        _submit(4, 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed");
    }

    function test_earlyClose_neverWithEmptySeats() public {
        for (uint256 i = 0; i < 5; ++i) {
            _submit(i, 1);
        }
        _claim(0, 1, 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "seats not full");
        assertEq(rounds.getRound(1).reviewStart, START_TIME + TRAIN_WINDOW, "no early close");
    }
}
