// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Property tests over fuzzed inputs: quorum arithmetic, seat selection with real VRF
/// proofs, the phase clock, input validation and seed derivation, each checked against an
/// independent statement of the rule.
contract FuzzTest is FlareRoundsFixture {
    uint256 internal constant CLAIMERS = 12;

    function testFuzz_quorumIsTheCeilingOfKTimesBps(uint256 k, uint256 bps) public {
        k = bound(k, 1, 64);
        bps = bound(bps, 5001, 10_000); // above half: valid for every k
        // forge-lint: disable-next-line(unsafe-typecast)
        rounds = _deploy(_config(uint16(k), uint16(bps)), false);
        vm.prank(owner);
        rounds.start();

        uint256 quorum = rounds.getRound(1).quorum;
        assertGe(quorum * 10_000, k * bps, "reaches k * bps");
        assertLt((quorum - 1) * 10_000, k * bps, "smallest such count");
        assertLe(quorum, k, "never more than k");
        _assertMajority(quorum, k);
    }

    /// @dev Twelve nodes claim with their real proofs in a fuzzed order, under a seed fuzzed
    /// through prevrandao; each claim must be accepted exactly when a model of "keep the k
    /// lowest seat words" accepts it, a refusal must name the claim's rank and the highest
    /// seat's, and the seats must end as the k lowest words of all twelve (everyone claimed, so
    /// the order cannot matter).
    function testFuzz_seatsAreTheKLowestClaims(uint256 kSeed, bytes32 randao, uint256 orderSeed)
        public
    {
        uint16 k = uint16(bound(kSeed, 1, 8));
        rounds = _deploy(_config(k, QUORUM_BPS), false);
        vm.prevrandao(randao);
        _startWith(CLAIMERS);

        uint256[] memory order = _permutation(CLAIMERS, orderSeed);
        uint256[] memory words = new uint256[](CLAIMERS);
        uint256[] memory held = new uint256[](k);
        uint256 heldCount = 0;
        uint256[] memory accepted = new uint256[](CLAIMERS);
        uint256 acceptedCount = 0;
        for (uint256 n = 0; n < CLAIMERS; ++n) {
            uint256 i = order[n];
            bytes memory proof = _proofOf(i, 1);
            bytes memory key = _blsKey(i);
            uint256 word = _wordOf(proof, _node(i));
            words[n] = word;
            (uint256 maxIndex, uint256 maxValue) = _max(held, heldCount);
            bool expected = heldCount < k || word < maxValue;

            vm.prank(_node(i));
            try rounds.claimSeat(1, proof, key) {
                assertTrue(expected, "accepted a claim the rule refuses");
                accepted[acceptedCount++] = word;
                if (heldCount < k) held[heldCount++] = word;
                else held[maxIndex] = word;
            } catch (bytes memory reason) {
                assertFalse(expected, "refused a claim the rule accepts");
                assertEq(
                    reason,
                    abi.encodeWithSelector(
                        IFlareRounds.FlareRoundsOutputTooHigh.selector,
                        1,
                        _rankOfWord(word),
                        _rankOfWord(maxValue)
                    ),
                    "refusal names the claim's rank and the highest seat's"
                );
            }
            (, uint256 modelMax) = _max(held, heldCount);
            assertEq(_seatWords(1)[0], modelMax, "the root is the model's highest seat");
        }

        uint256[] memory seated = _seatWords(1);
        for (uint256 n = 0; n < seated.length; ++n) {
            assertTrue(rounds.isSeatHolder(1, address(uint160(seated[n]))), "holder flagged");
        }
        _sortInPlace(seated);
        uint256[] memory lowestAccepted = _sorted(accepted, acceptedCount);
        uint256[] memory lowestOfAll = _sorted(words, CLAIMERS);
        assertEq(seated.length, k, "k seats");
        for (uint256 n = 0; n < seated.length; ++n) {
            assertEq(seated[n], lowestAccepted[n], "seats are the k lowest accepted words");
            assertEq(seated[n], lowestOfAll[n], "seats are the k lowest words of all claimers");
        }
        uint256 flagged = 0;
        for (uint256 i = 0; i < CLAIMERS; ++i) {
            if (rounds.isSeatHolder(1, _node(i))) ++flagged;
        }
        assertEq(flagged, k, "exactly the holders are flagged");
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
        samples = bound(samples, 1, MAX_SAMPLES);
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

    function testFuzz_samplesAreChecked(uint256 samples) public {
        samples = samples % 2 == 0 ? bound(samples, 0, 3) : bound(samples, MAX_SAMPLES - 2, 2e6);
        _startWith(1);
        if (samples == 0) {
            vm.expectRevert(IFlareRounds.FlareRoundsZeroSamples.selector);
        } else if (samples > MAX_SAMPLES) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IFlareRounds.FlareRoundsTooManySamples.selector, samples, MAX_SAMPLES
                )
            );
        }
        vm.prank(_node(0));
        rounds.submitUpdate(1, _cid(1), samples);
        bool valid = samples >= 1 && samples <= MAX_SAMPLES;
        assertEq(rounds.getRound(1).updateCount, valid ? 1 : 0, "counted iff 1..maxSamples");
    }

    /// @dev The node's real proof cut or extended to `length` bytes: only the 128-byte proof
    /// itself is accepted.
    function testFuzz_proofLengthIsChecked(uint256 length) public {
        length = bound(length, 0, 300);
        _startWith(1);
        bytes memory proof = _proofOf(0, 1);
        bytes memory key = _blsKey(0);
        bytes memory sent = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            sent[i] = i < proof.length ? proof[i] : bytes1(uint8(i));
        }
        if (length != 128) {
            vm.expectRevert(
                abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidProof.selector, 1, _node(0))
            );
        }
        vm.prank(_node(0));
        rounds.claimSeat(1, sent, key);
        assertEq(rounds.isSeatHolder(1, _node(0)), length == 128, "seated iff 128 bytes");
    }

    /// @dev Each field is drawn near its limits so valid and invalid configs both come up often.
    /// The statement of validity is written independently of the contract's arithmetic: more
    /// than half of k approvals means k * bps / 10000 > floor(k / 2). A refusal must give the
    /// reason of the first broken rule, in the order the interface documents them.
    function testFuzz_configValidation(
        uint256 k,
        uint256 bps,
        uint256 windows,
        uint256 counts,
        uint256 policyLength
    ) public {
        k = bound(k, 0, 66);
        uint256 zone = bps % 4;
        bps = bps >> 2;
        if (zone == 0) bps = bound(bps, 0, 3);
        else if (zone == 1) bps = bound(bps, 4990, 5010);
        else if (zone == 2) bps = bound(bps, 0, 10_002);
        else bps = bound(bps, 9998, 10_002);
        policyLength = policyLength % 2 == 0
            ? bound(policyLength >> 1, 0, 3)
            : bound(policyLength >> 1, 126, 129);
        // forge-lint: disable-start(unsafe-typecast) each value is bounded to fit
        IFlareRounds.Config memory cfg = IFlareRounds.Config({
            committeeSize: uint16(k),
            quorumBps: uint16(bps),
            trainWindow: uint32(windows % 8),
            reviewWindow: uint32((windows >> 8) % 6),
            minClaimWindow: uint32((windows >> 16) % 9),
            minUpdates: uint32(counts % 6),
            maxSamples: uint64((counts >> 8) % 6),
            reviewPolicy: new bytes(policyLength)
        });
        // forge-lint: disable-end(unsafe-typecast)

        string memory reason = "";
        if (k < 1 || k > 64) {
            reason = "committeeSize must be 1..64";
        } else if (bps < 1 || bps > 10_000) {
            reason = "quorumBps must be 1..10000";
        } else if (k * bps <= (k / 2) * 10_000) {
            reason = "quorum must be more than half of committeeSize";
        } else if (cfg.trainWindow == 0) {
            reason = "trainWindow must be > 0";
        } else if (cfg.reviewWindow == 0) {
            reason = "reviewWindow must be > 0";
        } else if (cfg.minClaimWindow > cfg.trainWindow) {
            reason = "minClaimWindow must be <= trainWindow";
        } else if (cfg.minUpdates == 0) {
            reason = "minUpdates must be >= 1";
        } else if (cfg.maxSamples == 0) {
            reason = "maxSamples must be >= 1";
        } else if (policyLength < 1 || policyLength > 128) {
            reason = "reviewPolicy must be a CID of 1..128 bytes";
        }
        bool valid = bytes(reason).length == 0;
        if (!valid) {
            vm.expectRevert(
                abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidConfig.selector, reason)
            );
        }
        vm.prank(owner);
        rounds.setConfig(cfg);

        IFlareRounds.Config memory stored = rounds.config();
        assertEq(stored.committeeSize, valid ? k : K, "stored only when valid");
        assertEq(stored.quorumBps, valid ? bps : QUORUM_BPS, "quorumBps");
        assertEq(stored.minClaimWindow, valid ? cfg.minClaimWindow : 0, "minClaimWindow");
        assertEq(stored.maxSamples, valid ? cfg.maxSamples : MAX_SAMPLES, "maxSamples");
        assertEq(stored.reviewPolicy, valid ? cfg.reviewPolicy : _policy(), "reviewPolicy");
    }

    /// @dev seed_r = keccak256(seed_{r-1}, prevrandao, r, contract, accumulator_{r-1}), where
    /// the accumulator starts at the round's seed and absorbs each accepted output.
    function testFuzz_seedChainsFromThePreviousRound(bytes32 randao1, bytes32 randao2, bool claim)
        public
    {
        vm.prevrandao(randao1);
        _startWith(1);
        bytes32 seed1 =
            keccak256(abi.encode(bytes32(0), randao1, uint256(1), address(rounds), bytes32(0)));
        assertEq(rounds.getRound(1).seed, seed1, "seed 1");

        bytes32 accumulator = seed1;
        if (claim) {
            bytes memory proof = _proofOf(0, 1);
            _claimWith(0, 1, proof);
            accumulator = keccak256(abi.encode(seed1, keccak256(proof)));
        }
        assertEq(rounds.getRound(1).vrfAccumulator, accumulator, "accumulator 1");

        _warpPastTraining(1);
        vm.prevrandao(randao2);
        rounds.closeRound(1);
        bytes32 seed2 =
            keccak256(abi.encode(seed1, randao2, uint256(2), address(rounds), accumulator));
        assertEq(rounds.getRound(2).seed, seed2, "seed 2 chains from seed 1 and its claims");
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

    /// @dev More than half of k: 2 * quorum > k.
    function _assertMajority(uint256 quorum, uint256 k) internal pure {
        assertLt(k, 2 * quorum, "quorum more than half of k");
    }

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
