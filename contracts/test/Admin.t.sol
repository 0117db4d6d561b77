// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice setConfig (future rounds only, the review policy included) and pause.
contract AdminTest is FlareRoundsFixture {
    // ------------------------------------------------------------------ setConfig

    function test_setConfig_appliesFromTheNextOpenedRound() public {
        _startWith(5);
        IFlareRounds.Config memory next = _config(5, 10_000);
        next.trainWindow = 2 hours;
        next.minClaimWindow = 10 minutes;
        next.minUpdates = 1;
        next.maxSamples = 500;
        next.reviewPolicy = _cid(77);

        _expectEmit();
        emit IFlareRounds.ConfigSet(next, 2);
        vm.prank(owner);
        rounds.setConfig(next);

        IFlareRounds.RoundView memory open = rounds.getRound(1);
        assertEq(open.committeeSize, K, "open round keeps its k");
        assertEq(open.quorum, 2, "and its quorum");
        assertEq(open.trainEnd, START_TIME + TRAIN_WINDOW, "and its windows");
        assertEq(open.claimEnd, START_TIME, "and its claim window");
        assertEq(open.maxSamples, MAX_SAMPLES, "and its maxSamples");
        assertEq(open.reviewPolicy, _policy(), "and its review policy");

        _warpPastTraining(1);
        rounds.closeRound(1); // no updates: round 1 fails, round 2 opens on the new config
        IFlareRounds.RoundView memory r2 = rounds.getRound(2);
        assertEq(r2.committeeSize, 5, "new k");
        assertEq(r2.quorum, 5, "ceil(5 * 100%)");
        assertEq(r2.minUpdates, 1, "new minUpdates");
        assertEq(r2.trainEnd, block.timestamp + 2 hours, "new trainWindow");
        assertEq(r2.claimEnd, block.timestamp + 10 minutes, "new minClaimWindow");
        assertEq(r2.maxSamples, 500, "new maxSamples");
        assertEq(r2.reviewPolicy, _cid(77), "new review policy");
        assertEq(rounds.config().committeeSize, 5, "stored");
        assertEq(rounds.config().reviewPolicy, _cid(77), "stored policy");
    }

    function test_setConfig_beforeStartAppliesToRoundOne() public {
        _expectEmit();
        emit IFlareRounds.ConfigSet(_config(7, 5000), 1);
        vm.prank(owner);
        rounds.setConfig(_config(7, 5000));
        _startWith(0);
        assertEq(rounds.getRound(1).committeeSize, 7, "round 1 uses it");
        assertEq(rounds.getRound(1).quorum, 4, "ceil(7 * 0.5)");
    }

    function test_setConfig_revertsOnInvalidConfig() public {
        IFlareRounds.Config memory bad = _config(K, QUORUM_BPS);
        bad.minUpdates = 0;
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsInvalidConfig.selector, "minUpdates must be >= 1"
            )
        );
        vm.prank(owner);
        rounds.setConfig(bad);
        assertEq(rounds.config().minUpdates, MIN_UPDATES, "unchanged");
    }

    function test_setConfig_revertsForNonOwner() public {
        vm.expectRevert(
            abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger)
        );
        vm.prank(stranger);
        rounds.setConfig(_config(K, QUORUM_BPS));
    }

    // ------------------------------------------------------------------ pause

    function test_pause_blocksNodeActionsAndUnpauseRestoresThem() public {
        _startWith(3);
        _expectEmit();
        emit Pausable.Paused(owner);
        vm.prank(owner);
        rounds.pause();
        assertTrue(rounds.paused(), "paused");

        vm.expectRevert(Pausable.EnforcedPause.selector);
        _submit(0, 1);
        bytes memory proof = _proofOf(0, 1);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _claimWith(0, 1, proof);

        _expectEmit();
        emit Pausable.Unpaused(owner);
        vm.prank(owner);
        rounds.unpause();
        _submit(0, 1);
        _claim(0, 1);
        assertEq(rounds.getRound(1).updateCount, 1, "works again");
        assertEq(rounds.getRound(1).seatCount, 1, "claims too");
    }

    function test_pause_leavesAdminAndViewsWorking() public {
        _registerNodes(2);
        vm.startPrank(owner);
        rounds.pause();
        rounds.start();
        rounds.allow(_node(5));
        rounds.setAllowlist(true);
        rounds.setConfig(_config(5, 6000));
        vm.stopPrank();
        assertEq(rounds.currentRound(), 1, "started while paused");
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "phase view");
    }

    function test_pause_revertsWhenAlreadyPausedAndUnpauseWhenNot() public {
        vm.expectRevert(Pausable.ExpectedPause.selector);
        vm.prank(owner);
        rounds.unpause();
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(owner);
        rounds.pause();
    }

    function test_pause_revertsForNonOwner() public {
        bytes memory unauthorized =
            abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.expectRevert(unauthorized);
        vm.prank(stranger);
        rounds.pause();
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(unauthorized);
        vm.prank(stranger);
        rounds.unpause();
    }
}
