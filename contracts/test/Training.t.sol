// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice The Training phase: submitUpdate, claimSeat with real VRF proofs, the seat heap and
/// the early close. Outputs come from the proofs, so `_byRank` picks who claims in which order
/// to make each situation (eviction of the highest, refusal when not lower) arise.
contract TrainingTest is FlareRoundsFixture {
    uint256 internal constant NODES = 5;

    function setUp() public override {
        super.setUp();
        _startWith(NODES);
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
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Training, IFlareRounds.Phase.Review));
        _submit(2, 1);
    }

    function test_submitUpdate_revertsWhenTrainingEndedWithTooFewUpdates() public {
        _warpPastTraining(1);
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Training, IFlareRounds.Phase.Failed));
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

    function test_claimSeat_fillsFreeSeatsAndReportsTheVerifiedOutput() public {
        bytes memory proof = _proofOf(0, 1);
        bytes memory key = _blsKey(0);
        _expectEmit();
        emit IFlareRounds.SeatClaimed(1, _node(0), keccak256(proof), proof, address(0));
        vm.prank(_node(0));
        rounds.claimSeat(1, proof, key);
        _claim(1, 1);
        _claim(2, 1);

        IFlareRounds.Seat[] memory list = rounds.seats(1);
        assertEq(list.length, 3, "three seats");
        uint256 highest = 0;
        bool[3] memory seen;
        for (uint256 i = 0; i < list.length; ++i) {
            uint256 index = uint160(list[i].holder) - 0x1000;
            assertLt(index, 3, "a claimer holds it");
            assertFalse(seen[index], "one seat each");
            seen[index] = true;
            assertEq(list[i].rank, _rank(index, 1), "rank = first 96 bits of keccak256(proof)");
            if (_seatWord(index, 1) > highest) highest = _seatWord(index, 1);
            assertTrue(rounds.isSeatHolder(1, list[i].holder), "seat flag");
        }
        assertEq(_seatWords(1)[0], highest, "the highest seat is the root");
        assertEq(rounds.getRound(1).seatCount, 3, "seat count");
    }

    /// @dev order[0] ranks lowest. Fill with order[1], order[4], order[2]: order[4] is the
    /// highest; order[3] evicts it, and then order[0] evicts order[3], the new highest.
    function test_claimSeat_lowerOutputEvictsTheHighest() public {
        uint256[] memory order = _byRank(1, NODES);
        _claim(order[1], 1);
        _claim(order[4], 1);
        _claim(order[2], 1);
        assertEq(rounds.seats(1)[0].holder, _node(order[4]), "the highest is the root");

        bytes memory proof3 = _proofOf(order[3], 1);
        _expectEmit();
        emit IFlareRounds.SeatClaimed(
            1, _node(order[3]), keccak256(proof3), proof3, _node(order[4])
        );
        _claimWith(order[3], 1, proof3);
        assertFalse(rounds.isSeatHolder(1, _node(order[4])), "evicted loses the seat");
        assertTrue(rounds.isSeatHolder(1, _node(order[3])), "claimer seated");
        assertEq(rounds.seats(1)[0].holder, _node(order[3]), "the new highest is the root");

        bytes memory proof0 = _proofOf(order[0], 1);
        _expectEmit();
        emit IFlareRounds.SeatClaimed(
            1, _node(order[0]), keccak256(proof0), proof0, _node(order[3])
        );
        _claimWith(order[0], 1, proof0);
        assertEq(rounds.getRound(1).seatCount, 3, "still k seats");
        assertEq(rounds.seats(1)[0].holder, _node(order[2]), "order[2] is now the highest");
        for (uint256 i = 0; i < 3; ++i) {
            assertTrue(rounds.isSeatHolder(1, _node(order[i])), "the three lowest hold seats");
        }
    }

    function test_claimSeat_revertsWhenFullAndNotLower() public {
        uint256[] memory order = _byRank(1, NODES);
        _claim(order[0], 1);
        _claim(order[1], 1);
        _claim(order[2], 1);
        uint96 highest = _rank(order[2], 1);
        for (uint256 i = 3; i < NODES; ++i) {
            bytes memory proof = _proofOf(order[i], 1);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IFlareRounds.FlareRoundsOutputTooHigh.selector, 1, _rank(order[i], 1), highest
                )
            );
            _claimWith(order[i], 1, proof);
        }
        assertEq(rounds.seats(1)[0].holder, _node(order[2]), "seats unchanged");
    }

    function test_claimSeat_revertsOnceClaimedEvenAfterEviction() public {
        uint256[] memory order = _byRank(1, NODES);
        _claim(order[4], 1);
        bytes memory proof4 = _proofOf(order[4], 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsAlreadyClaimed.selector, 1, _node(order[4])
            )
        );
        _claimWith(order[4], 1, proof4);

        _claim(order[2], 1);
        _claim(order[3], 1);
        _claim(order[0], 1); // evicts order[4]
        assertFalse(rounds.isSeatHolder(1, _node(order[4])), "evicted");
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsAlreadyClaimed.selector, 1, _node(order[4])
            )
        );
        _claimWith(order[4], 1, proof4);
    }

    function test_claimSeat_revertsOnProofLength() public {
        bytes memory proof = _proofOf(0, 1);
        bytes memory key = _blsKey(0);
        bytes memory invalid =
            abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidProof.selector, 1, _node(0));
        vm.expectRevert(invalid);
        vm.prank(_node(0));
        rounds.claimSeat(1, _cut(proof, 127), key);
        vm.expectRevert(invalid);
        vm.prank(_node(0));
        rounds.claimSeat(1, bytes.concat(proof, hex"00"), key);
    }

    function test_claimSeat_revertsOnAnotherKey() public {
        bytes memory proof = _proofOf(0, 1);
        bytes memory key = _blsKey(1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsWrongBlsKey.selector, _node(0), keccak256(key)
            )
        );
        vm.prank(_node(0));
        rounds.claimSeat(1, proof, key);
    }

    function test_claimSeat_revertsForOtherRounds() public {
        bytes memory proof = _proofOf(0, 1);
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 2, 1));
        _claimWith(0, 2, proof);
    }

    function test_claimSeat_revertsBeforeStart() public {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        _register(0);
        bytes memory proof = _proofOf(0, 1);
        vm.expectRevert(IFlareRounds.FlareRoundsNotStarted.selector);
        _claimWith(0, 1, proof);
    }

    function test_claimSeat_revertsAfterTraining() public {
        _submit(0, 1);
        _submit(1, 1);
        _warpPastTraining(1);
        bytes memory proof = _proofOf(0, 1);
        vm.expectRevert(_wrongPhase(1, IFlareRounds.Phase.Training, IFlareRounds.Phase.Review));
        _claimWith(0, 1, proof);
    }

    function test_claimSeat_revertsForIneligibleNodes() public {
        bytes memory proof = _proofOf(0, 1);
        bytes memory key = _blsKey(0);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, stranger)
        );
        vm.prank(stranger);
        rounds.claimSeat(1, proof, key);

        _register(7); // registered while round 1 is open: eligible from round 2
        bytes memory proof7 = _proofOf(7, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, _node(7))
        );
        _claimWith(7, 1, proof7);
    }

    function test_claimSeat_revertsWhenPaused() public {
        bytes memory proof = _proofOf(0, 1);
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _claimWith(0, 1, proof);
    }

    // ------------------------------------------------------------------ early close

    function test_earlyClose_whenAllEligibleSubmittedAndSeatsFull() public {
        for (uint256 i = 0; i < NODES; ++i) {
            _submit(i, 1);
        }
        _claim(0, 1);
        _claim(1, 1);
        vm.warp(START_TIME + 600);
        bytes memory proof = _proofOf(2, 1);

        _expectEmit();
        emit IFlareRounds.TrainingClosed(
            1, uint64(START_TIME + 600), uint64(START_TIME + 600 + REVIEW_WINDOW)
        );
        _claimWith(2, 1, proof);

        IFlareRounds.RoundView memory r = rounds.getRound(1);
        assertEq(uint256(r.phase), uint256(IFlareRounds.Phase.Review), "review at once");
        assertEq(r.reviewStart, START_TIME + 600, "reviewStart = close time");
        assertEq(r.reviewEnd, START_TIME + 600 + REVIEW_WINDOW, "reviewEnd");
        assertEq(r.trainEnd, START_TIME + TRAIN_WINDOW, "trainEnd kept");
    }

    function test_earlyClose_triggeredByTheLastUpdate() public {
        _claim(0, 1);
        _claim(1, 1);
        _claim(2, 1);
        for (uint256 i = 0; i < NODES - 1; ++i) {
            _submit(i, 1);
        }
        assertEq(
            uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "one update missing"
        );

        _expectEmit();
        emit IFlareRounds.TrainingClosed(1, uint64(START_TIME), uint64(START_TIME + REVIEW_WINDOW));
        _submit(NODES - 1, 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed");
    }

    function test_earlyClose_neverWithEmptySeats() public {
        for (uint256 i = 0; i < NODES; ++i) {
            _submit(i, 1);
        }
        _claim(0, 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "seats not full");
        assertEq(rounds.getRound(1).reviewStart, START_TIME + TRAIN_WINDOW, "no early close");
    }

    function _cut(bytes memory data, uint256 length) internal pure returns (bytes memory out) {
        out = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            out[i] = data[i];
        }
    }
}
