// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Property tests over fuzzed inputs: quorum arithmetic, seat selection, the phase clock,
/// input validation and seed derivation, each checked against an independent statement of the rule.
contract FuzzTest is FlareRoundsFixture {
    uint256 internal constant CLAIMERS = 12;

    function testFuzz_quorumIsTheCeilingOfKTimesBps(uint256 k, uint256 bps) public {
        k = bound(k, 1, 64);
        bps = bound(bps, 1, 10_000);
        // forge-lint: disable-next-line(unsafe-typecast)
        rounds = _deploy(_config(uint16(k), uint16(bps)), false);
        vm.prank(owner);
        rounds.start();

        uint256 quorum = rounds.getRound(1).quorum;
        assertGe(quorum * 10_000, k * bps, "reaches k * bps");
        assertLt((quorum - 1) * 10_000, k * bps, "smallest such count");
        assertLe(quorum, k, "never more than k");
    }

    /// @dev Twelve nodes claim in a fuzzed order of fuzzed outputs (narrow outputs force ties);
    /// each claim must be accepted exactly when a model of "keep the k lowest" accepts it, and the
    /// seats must end as the k lowest accepted outputs.
    function testFuzz_seatsAreTheKLowestClaims(
        uint256 kSeed,
        uint256[CLAIMERS] memory raw,
        bool narrow
    ) public {
        uint16 k = uint16(bound(kSeed, 1, 8));
        rounds = _deploy(_config(k, QUORUM_BPS), false);
        _startWith(CLAIMERS);

        uint256[] memory held = new uint256[](k);
        uint256 heldCount = 0;
        uint256[] memory accepted = new uint256[](CLAIMERS);
        uint256 acceptedCount = 0;
        for (uint256 i = 0; i < CLAIMERS; ++i) {
            uint256 value = narrow ? raw[i] % 8 : raw[i];
            (uint256 maxIndex, uint256 maxValue) = _max(held, heldCount);
            bool expected = heldCount < k || value < maxValue;

            vm.prank(_node(i));
            try rounds.claimSeat(1, bytes32(value), _proof(i)) {
                assertTrue(expected, "accepted a claim the rule refuses");
                accepted[acceptedCount++] = value;
                if (heldCount < k) held[heldCount++] = value;
                else held[maxIndex] = value;
            } catch (bytes memory reason) {
                assertFalse(expected, "refused a claim the rule accepts");
                assertEq(
                    reason,
                    abi.encodeWithSelector(
                        IFlareRounds.FlareRoundsOutputTooHigh.selector,
                        1,
                        bytes32(value),
                        bytes32(maxValue)
                    ),
                    "refusal names the highest seat"
                );
            }
        }

        IFlareRounds.Seat[] memory list = rounds.seats(1);
        uint256[] memory seated = new uint256[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            seated[i] = uint256(list[i].output);
            assertTrue(rounds.isSeatHolder(1, list[i].holder), "holder flagged");
        }
        uint256[] memory lowest = _sorted(accepted, acceptedCount);
        _sortInPlace(seated);
        assertEq(seated.length, acceptedCount < k ? acceptedCount : k, "seat count");
        for (uint256 i = 0; i < seated.length; ++i) {
            assertEq(seated[i], lowest[i], "seats are the k lowest accepted outputs");
        }
    }

    function testFuzz_phaseFollowsTheClock(uint256 elapsed, uint256 updates) public {
        updates = bound(updates, 0, 4);
        _startWith(4);
        for (uint256 i = 0; i < updates; ++i) {
            _submit(i, 1);
        }
        elapsed = bound(elapsed, 0, 3 * uint256(TRAIN_WINDOW + REVIEW_WINDOW));
        vm.warp(START_TIME + elapsed);

        IFlareRounds.Phase expected;
        if (elapsed < TRAIN_WINDOW) expected = IFlareRounds.Phase.Training;
        else if (updates < MIN_UPDATES) expected = IFlareRounds.Phase.Failed;
        else if (elapsed < TRAIN_WINDOW + REVIEW_WINDOW) expected = IFlareRounds.Phase.Review;
        else expected = IFlareRounds.Phase.Failed;
        assertEq(uint256(rounds.phase(1)), uint256(expected), "derived phase");
        assertEq(uint256(rounds.getRound(1).phase), uint256(expected), "getRound agrees");
    }

    function testFuzz_cidLengthIsChecked(uint256 length, uint256 samples) public {
        length = bound(length, 0, 300);
        samples = bound(samples, 1, type(uint256).max);
        _startWith(1);
        bytes memory cid = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            cid[i] = bytes1(uint8(i * 7 + 1));
        }
        bool valid = length >= 1 && length <= 128;
        if (!valid) {
            vm.expectRevert(
                abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidCid.selector, length)
            );
        }
        vm.prank(_node(0));
        rounds.submitUpdate(1, cid, samples);
        bytes32 expected = valid ? keccak256(cid) : bytes32(0);
        assertEq(rounds.updateOf(1, _node(0)), expected, "stored hash");
    }

    function testFuzz_proofLengthIsChecked(uint256 length) public {
        length = bound(length, 0, 200);
        _startWith(1);
        if (length != 80) {
            vm.expectRevert(
                abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidProof.selector, length)
            );
        }
        vm.prank(_node(0));
        rounds.claimSeat(1, _output(1), new bytes(length));
        assertEq(rounds.isSeatHolder(1, _node(0)), length == 80, "seated iff 80 bytes");
    }

    /// @dev Each field is drawn near its limits so valid and invalid configs both come up often.
    function testFuzz_configValidation(
        uint256 k,
        uint256 bps,
        uint256 trainWindow,
        uint256 reviewWindow,
        uint256 minUpdates
    ) public {
        k = bound(k, 0, 66);
        bps = bps % 2 == 0 ? bound(bps, 0, 3) : bound(bps, 9_998, 10_002);
        IFlareRounds.Config memory cfg = IFlareRounds.Config({
            committeeSize: uint16(k),
            quorumBps: uint16(bps),
            trainWindow: uint32(bound(trainWindow, 0, 4)),
            reviewWindow: uint32(bound(reviewWindow, 0, 4)),
            minUpdates: uint32(bound(minUpdates, 0, 4))
        });
        bool valid = k >= 1 && k <= 64 && bps >= 1 && bps <= 10_000 && cfg.trainWindow > 0
            && cfg.reviewWindow > 0 && cfg.minUpdates > 0;
        if (!valid) {
            vm.expectRevert(); // which reason comes first is covered by the unit tests
        }
        vm.prank(owner);
        rounds.setConfig(cfg);
        assertEq(rounds.config().committeeSize, valid ? k : K, "stored only when valid");
    }

    function testFuzz_seedChainsFromThePreviousRound(bytes32 randao1, bytes32 randao2) public {
        vm.prevrandao(randao1);
        _startWith(1);
        bytes32 seed1 = keccak256(abi.encode(bytes32(0), randao1, uint256(1), address(rounds)));
        assertEq(rounds.getRound(1).seed, seed1, "seed 1");

        _warpPastTraining(1);
        vm.prevrandao(randao2);
        rounds.closeRound(1);
        bytes32 seed2 = keccak256(abi.encode(seed1, randao2, uint256(2), address(rounds)));
        assertEq(rounds.getRound(2).seed, seed2, "seed 2 chains from seed 1");
    }

    function testFuzz_eligibilityStartsTheRoundAfterRegistration(uint256 failedRounds) public {
        failedRounds = bound(failedRounds, 0, 6);
        _startWith(0);
        for (uint256 r = 1; r <= failedRounds; ++r) {
            _warpPastTraining(r);
            rounds.closeRound(r);
        }
        uint256 current = rounds.currentRound();
        _register(0);
        assertEq(rounds.getNode(_node(0)).eligibleFrom, current + 1, "eligibleFrom");
        assertFalse(rounds.isEligible(current, _node(0)), "not in the open round");
        assertTrue(rounds.isEligible(current + 1, _node(0)), "from the next one");
    }

    // ------------------------------------------------------------------ helpers

    function _max(uint256[] memory values, uint256 count)
        internal
        pure
        returns (uint256 index, uint256 value)
    {
        for (uint256 i = 0; i < count; ++i) {
            if (i == 0 || values[i] > value) {
                value = values[i];
                index = i;
            }
        }
    }

    function _sorted(uint256[] memory values, uint256 count)
        internal
        pure
        returns (uint256[] memory out)
    {
        out = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            out[i] = values[i];
        }
        _sortInPlace(out);
    }

    function _sortInPlace(uint256[] memory values) internal pure {
        for (uint256 i = 1; i < values.length; ++i) {
            uint256 v = values[i];
            uint256 j = i;
            while (j > 0 && values[j - 1] > v) {
                values[j] = values[j - 1];
                --j;
            }
            values[j] = v;
        }
    }
}
