// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../src/FlareRounds.sol";
import {IFlareRounds} from "../src/IFlareRounds.sol";
import {Vm} from "./base/Vm.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Seat holders who leave mid-round lose their seat and vote: deregistered, disallowed
/// by the owner, or re-registered, they can neither propose nor vote in that round.
contract HardeningSeatLossTest is FlareRoundsFixture {
    function setUp() public override {
        super.setUp();
        _startWith(5);
    }

    function test_deregisteredSeatHolder_cannotProposeOrVote() public {
        _toReview(1, 3); // seats: nodes 0, 1, 2
        uint256 id = _propose(0, 1);
        assertTrue(rounds.isSeatHolder(1, _node(2)), "seated before leaving");

        vm.prank(_node(2));
        rounds.deregister();
        _assertLostSeat(2, id);
    }

    function test_disallowedSeatHolder_cannotProposeOrVote() public {
        _toReview(1, 3);
        uint256 id = _propose(0, 1);
        _expectEmit();
        emit IFlareRounds.NodeDeregistered(_node(2), owner);
        vm.prank(owner);
        rounds.disallow(_node(2));
        _assertLostSeat(2, id);
    }

    function test_seatHolderLeavingDuringTraining_hasNoSeatInReview() public {
        _submit(0, 1);
        _submit(1, 1);
        _claim(0, 1);
        _claim(1, 1);
        _claim(2, 1);
        vm.prank(_node(1));
        rounds.deregister();
        assertFalse(rounds.isSeatHolder(1, _node(1)), "seat lost in Training");
        _warpPastTraining(1);
        uint256 id = _propose(0, 1);
        _assertLostSeat(1, id);
    }

    function test_reRegistering_doesNotGiveTheSeatBack() public {
        _toReview(1, 3);
        uint256 id = _propose(0, 1);
        vm.prank(_node(2));
        rounds.deregister();
        _register(2);
        assertTrue(rounds.getNode(_node(2)).registered, "registered again");
        assertEq(rounds.getNode(_node(2)).eligibleFrom, 2, "from the next round");
        _assertLostSeat(2, id);

        _vote(0, 1, id, true);
        _vote(1, 1, id, true); // finalizes; round 2 opens
        _claim(2, 2);
        assertTrue(rounds.isSeatHolder(2, _node(2)), "takes part again from round 2");
    }

    /// @dev k = 1 and a quorum of 100%: the one seat holder proposes, then leaves; it cannot
    /// approve its own proposal, and the round fails for want of a quorum.
    function test_soleSeatHolderThatLeft_cannotFinalizeItsOwnProposal() public {
        _soleSeatHolderLeaves(false);
    }

    function test_soleSeatHolderDisallowed_cannotFinalizeItsOwnProposal() public {
        _soleSeatHolderLeaves(true);
    }

    /// @dev Leaving takes the seat away from then on; it does not retract a vote already cast.
    /// The vote stays in the proposal's count (and in the VoteCast event nodes and auditors
    /// replay), so one more approval reaches the quorum of 2.
    function test_voteCastBeforeLeaving_stillCountsTowardsTheQuorum() public {
        _toReview(1, 3);
        uint256 id = _propose(0, 1);
        _vote(1, 1, id, true);
        vm.prank(_node(1));
        rounds.deregister();
        assertFalse(rounds.isSeatHolder(1, _node(1)), "no seat any more");
        assertTrue(rounds.hasVoted(1, _node(1)), "its vote is on record");
        assertEq(rounds.getProposal(1, id).approvals, 1, "and counted");

        _expectEmit();
        emit IFlareRounds.RoundFinalized(
            1, id, _aggregate(1, 0), keccak256(abi.encode(uint256(1), uint256(0))), 2
        );
        _vote(2, 1, id, true);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Finalized), "finalized");
    }

    function _soleSeatHolderLeaves(bool byOwner) internal {
        rounds = _deploy(_config(1, 10_000), false);
        _startWith(3);
        _submit(0, 1);
        _submit(1, 1);
        _claim(0, 1);
        _warpPastTraining(1);
        assertEq(rounds.getRound(1).quorum, 1, "one approval needed");
        uint256 id = _propose(0, 1);

        vm.prank(byOwner ? owner : _node(0));
        if (byOwner) rounds.disallow(_node(0));
        else rounds.deregister();

        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotSeatHolder.selector, 1, _node(0))
        );
        _vote(0, 1, id, true);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "not finalized");
        _warpPastReview(1);
        _expectEmit();
        emit IFlareRounds.RoundFailed(1, IFlareRounds.FailureReason.NoQuorum);
        rounds.closeRound(1);
        (uint256 round,) = rounds.globalModel();
        assertEq(round, 0, "the global model is still genesis");
    }

    function _assertLostSeat(uint256 i, uint256 proposalId) internal {
        assertFalse(rounds.isSeatHolder(1, _node(i)), "isSeatHolder turns false");
        bytes memory notSeated =
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotSeatHolder.selector, 1, _node(i));
        vm.expectRevert(notSeated);
        _propose(i, 1);
        vm.expectRevert(notSeated);
        _vote(i, 1, proposalId, true);
        assertFalse(rounds.hasVoted(1, _node(i)), "no vote recorded");
    }
}

/// @notice minClaimWindow: training never closes early before claimEnd, so a lower claim that
/// arrives before it still evicts the highest seat; after claimEnd the close is immediate.
contract HardeningClaimWindowTest is FlareRoundsFixture {
    uint32 internal constant CLAIM_WINDOW = 20 minutes;
    uint256 internal constant NODES = 5;
    uint256 internal claimEnd;

    function setUp() public override {
        super.setUp();
        IFlareRounds.Config memory cfg = _config(K, QUORUM_BPS);
        cfg.minClaimWindow = CLAIM_WINDOW;
        rounds = _deploy(cfg, false);
        _startWith(NODES);
        claimEnd = START_TIME + CLAIM_WINDOW;
        assertEq(rounds.getRound(1).claimEnd, claimEnd, "claimEnd = openedAt + minClaimWindow");
    }

    function test_claimWindow_keepsTrainingOpenUntilClaimEnd() public {
        uint256[] memory order = _byRank(1, NODES);
        for (uint256 i = 0; i < NODES; ++i) {
            _submit(i, 1);
        }
        vm.warp(START_TIME + 5 minutes);
        _claim(order[1], 1);
        _claim(order[2], 1);
        bytes memory proof3 = _proofOf(order[3], 1);
        _expectEmit();
        emit IFlareRounds.TrainingClosed(1, uint64(claimEnd), uint64(claimEnd + REVIEW_WINDOW));
        _claimWith(order[3], 1, proof3); // everything is in, but claimEnd lies ahead

        IFlareRounds.RoundView memory r = rounds.getRound(1);
        assertEq(uint256(r.phase), uint256(IFlareRounds.Phase.Training), "still training");
        assertEq(r.reviewStart, claimEnd, "reviewStart = claimEnd");
        assertEq(r.reviewEnd, claimEnd + REVIEW_WINDOW, "reviewEnd");
        assertEq(r.trainEnd, START_TIME + TRAIN_WINDOW, "trainEnd kept");

        vm.warp(claimEnd - 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "until claimEnd");
        bytes memory proof0 = _proofOf(order[0], 1);
        vm.recordLogs();
        _expectEmit();
        emit IFlareRounds.SeatClaimed(
            1, _node(order[0]), keccak256(proof0), proof0, _node(order[3])
        );
        _claimWith(order[0], 1, proof0);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            assertTrue(
                logs[i].topics[0] != IFlareRounds.TrainingClosed.selector, "closed only once"
            );
        }
        assertFalse(rounds.isSeatHolder(1, _node(order[3])), "the highest was evicted");
        for (uint256 i = 0; i < K; ++i) {
            assertTrue(rounds.isSeatHolder(1, _node(order[i])), "the k lowest hold the seats");
        }
        assertEq(rounds.getRound(1).reviewStart, claimEnd, "the close time stands");

        vm.warp(claimEnd);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "review at claimEnd");
        bytes memory proof4 = _proofOf(order[4], 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsWrongPhase.selector,
                1,
                IFlareRounds.Phase.Training,
                IFlareRounds.Phase.Review
            )
        );
        _claimWith(order[4], 1, proof4);
    }

    function test_claimWindow_lastUpdateBeforeClaimEndClosesAtClaimEnd() public {
        for (uint256 i = 0; i < K; ++i) {
            _claim(i, 1);
        }
        for (uint256 i = 0; i < NODES - 1; ++i) {
            _submit(i, 1);
        }
        _expectEmit();
        emit IFlareRounds.TrainingClosed(1, uint64(claimEnd), uint64(claimEnd + REVIEW_WINDOW));
        _submit(NODES - 1, 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "until claimEnd");
        vm.warp(claimEnd);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "then review");
    }

    function test_claimWindow_closeAfterClaimEndIsImmediate() public {
        vm.warp(claimEnd + 100);
        for (uint256 i = 0; i < NODES; ++i) {
            _submit(i, 1);
        }
        _claim(0, 1);
        _claim(1, 1);
        bytes memory proof = _proofOf(2, 1);
        _expectEmit();
        emit IFlareRounds.TrainingClosed(
            1, uint64(block.timestamp), uint64(block.timestamp + REVIEW_WINDOW)
        );
        _claimWith(2, 1, proof);
        IFlareRounds.RoundView memory r = rounds.getRound(1);
        assertEq(uint256(r.phase), uint256(IFlareRounds.Phase.Review), "review at once");
        assertEq(r.reviewStart, block.timestamp, "reviewStart = now");
    }

    function test_claimWindow_doesNotCloseAnIncompleteRound() public {
        for (uint256 i = 0; i < NODES - 1; ++i) {
            _submit(i, 1);
        }
        for (uint256 i = 0; i < K; ++i) {
            _claim(i, 1);
        }
        vm.warp(claimEnd + 1);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "one missing");
        assertEq(rounds.getRound(1).reviewStart, START_TIME + TRAIN_WINDOW, "no early close");
    }
}

/// @notice maxSamples bounds an update's FedAvg weight; a change applies from the next round.
contract HardeningMaxSamplesTest is FlareRoundsFixture {
    function setUp() public override {
        super.setUp();
        _startWith(3);
    }

    function test_maxSamples_isInclusive() public {
        vm.prank(_node(0));
        rounds.submitUpdate(1, _cid(1), MAX_SAMPLES);
        assertEq(rounds.getRound(1).updateCount, 1, "maxSamples accepted");

        uint256[2] memory tooMany = [uint256(MAX_SAMPLES) + 1, type(uint256).max];
        for (uint256 i = 0; i < tooMany.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IFlareRounds.FlareRoundsTooManySamples.selector, tooMany[i], MAX_SAMPLES
                )
            );
            vm.prank(_node(1));
            rounds.submitUpdate(1, _cid(2), tooMany[i]);
        }
        assertEq(rounds.getRound(1).updateCount, 1, "refused updates not counted");
    }

    function test_maxSamples_changeAppliesFromTheNextRound() public {
        IFlareRounds.Config memory cfg = _config(K, QUORUM_BPS);
        cfg.maxSamples = 100;
        vm.prank(owner);
        rounds.setConfig(cfg);

        assertEq(rounds.getRound(1).maxSamples, MAX_SAMPLES, "round 1 keeps its bound");
        vm.prank(_node(0));
        rounds.submitUpdate(1, _cid(1), 1000);
        _warpPastTraining(1);
        rounds.closeRound(1);

        assertEq(rounds.getRound(2).maxSamples, 100, "round 2 has the new one");
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsTooManySamples.selector, 101, 100)
        );
        vm.prank(_node(0));
        rounds.submitUpdate(2, _cid(2), 101);
        vm.prank(_node(0));
        rounds.submitUpdate(2, _cid(2), 100);
        assertEq(rounds.getRound(2).updateCount, 1, "100 accepted");
    }
}

/// @notice Config rules with their exact reasons: a quorum of more than half of k, k of 1..64,
/// minClaimWindow <= trainWindow, maxSamples >= 1 and a review policy CID of 1..128 bytes.
/// Fuzz.t.sol checks the whole rule against an independent statement of it.
contract HardeningConfigRulesTest is FlareRoundsFixture {
    function test_quorum_mustBeMoreThanHalfOfK() public {
        // k = 4 at 50%: 2 approvals of 4, a tie, refused; k = 3 at 50%: 2 of 3, accepted.
        _refuse(_config(4, 5000), "quorum must be more than half of committeeSize");
        _refuse(_config(2, 5000), "quorum must be more than half of committeeSize");
        _refuse(_config(3, 3333), "quorum must be more than half of committeeSize");
        _refuse(_config(64, 5000), "quorum must be more than half of committeeSize");
        _accept(_config(3, 5000), 2);
        _accept(_config(3, 3334), 2);
        _accept(_config(2, 5001), 2);
        _accept(_config(64, 5001), 33);
        uint16[3] memory anyBps = [uint16(1), 5000, 10_000];
        for (uint256 i = 0; i < anyBps.length; ++i) {
            _accept(_config(1, anyBps[i]), 1); // k = 1: any positive bps means 1 of 1
        }
    }

    function test_committeeSize_mustBe1To64() public {
        _refuse(_config(0, 6000), "committeeSize must be 1..64");
        _refuse(_config(65, 6000), "committeeSize must be 1..64");
        _accept(_config(64, 6000), 39);
    }

    function test_minClaimWindow_mustNotExceedTrainWindow() public {
        IFlareRounds.Config memory cfg = _config(K, QUORUM_BPS);
        cfg.minClaimWindow = TRAIN_WINDOW + 1;
        _refuse(cfg, "minClaimWindow must be <= trainWindow");
        cfg.minClaimWindow = TRAIN_WINDOW;
        _accept(cfg, 2);
    }

    function test_maxSamples_mustBePositive() public {
        IFlareRounds.Config memory cfg = _config(K, QUORUM_BPS);
        cfg.maxSamples = 0;
        _refuse(cfg, "maxSamples must be >= 1");
        cfg.maxSamples = 1;
        _accept(cfg, 2);
    }

    function test_reviewPolicy_mustBeACidOf1To128Bytes() public {
        IFlareRounds.Config memory cfg = _config(K, QUORUM_BPS);
        cfg.reviewPolicy = "";
        _refuse(cfg, "reviewPolicy must be a CID of 1..128 bytes");
        cfg.reviewPolicy = new bytes(129);
        _refuse(cfg, "reviewPolicy must be a CID of 1..128 bytes");
        cfg.reviewPolicy = new bytes(1);
        _accept(cfg, 2);
        cfg.reviewPolicy = new bytes(128);
        _accept(cfg, 2);
    }

    function _refuse(IFlareRounds.Config memory cfg, string memory reason) internal {
        bytes memory expected =
            abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidConfig.selector, reason);
        vm.expectRevert(expected);
        vm.prank(owner);
        rounds.setConfig(cfg);
        vm.expectRevert(expected);
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);
    }

    /// @dev Accepted by setConfig and by the constructor, and a round opened on it needs
    /// `quorum` approvals.
    function _accept(IFlareRounds.Config memory cfg, uint256 quorum) internal {
        vm.prank(owner);
        rounds.setConfig(cfg);
        FlareRounds deployed = _deploy(cfg, false);
        vm.prank(owner);
        deployed.start();
        assertEq(deployed.getRound(1).quorum, quorum, "quorum");
        assertLt(cfg.committeeSize, 2 * quorum, "more than half");
    }
}

/// @notice The seed of the next round mixes the previous seed, prevrandao, the round, the
/// contract and the previous round's VRF accumulator, which chains the seed and every accepted
/// output: with a constant prevrandao, different claims still give different seeds.
contract HardeningSeedTest is FlareRoundsFixture {
    function test_seed_mixesPreviousSeedPrevrandaoRoundContractAndAccumulator() public {
        vm.prevrandao(bytes32(uint256(0x1111)));
        _startWith(5);
        uint256 id = _toOneApprovalShort();
        IFlareRounds.RoundView memory r1 = rounds.getRound(1);
        assertTrue(r1.vrfAccumulator != r1.seed, "claims moved the accumulator");

        vm.prevrandao(bytes32(uint256(0x2222)));
        _vote(1, 1, id, true); // finalizes and opens round 2
        bytes32 expected = keccak256(
            abi.encode(r1.seed, uint256(0x2222), uint256(2), address(rounds), r1.vrfAccumulator)
        );
        assertEq(rounds.getRound(2).seed, expected, "seed 2");
        bytes32 withoutAccumulator =
            keccak256(abi.encode(r1.seed, uint256(0x2222), uint256(2), address(rounds)));
        assertTrue(expected != withoutAccumulator, "not the v1 seed");
        assertEq(rounds.getRound(2).vrfAccumulator, expected, "round 2's chain starts at it");
    }

    /// @dev Two deployments at the same address (the state is reverted in between), the same
    /// constant prevrandao, the same round-1 seed: only who claimed in round 1 differs, and
    /// round 2's seed differs with it.
    function test_seed_withAConstantPrevrandaoDependsOnTheClaims() public {
        vm.prevrandao(bytes32(uint256(7)));
        uint256 snapshot = vm.snapshotState();
        (address deployedA, bytes32 seed1A, bytes32 seed2A) = _roundTwoSeedAfterClaimBy(0);
        vm.revertToState(snapshot);
        (address deployedB, bytes32 seed1B, bytes32 seed2B) = _roundTwoSeedAfterClaimBy(1);
        vm.revertToState(snapshot);
        (, bytes32 seed1C, bytes32 seed2C) = _roundTwoSeedAfterClaimBy(type(uint256).max);

        assertEq(deployedA, deployedB, "the same address");
        assertEq(seed1A, seed1B, "the same round-1 seed");
        assertEq(seed1A, seed1C, "the same round-1 seed without claims");
        assertTrue(seed2A != seed2B, "different claims, different round-2 seeds");
        assertTrue(seed2A != seed2C && seed2B != seed2C, "and different from no claim at all");
    }

    /// @dev Outputs read back from the SeatClaimed events: each is keccak256 of its proof, and
    /// the accumulator is keccak256(abi.encode(acc, output)) over them from the seed. Claims
    /// refused as too high leave it as it was.
    function test_accumulator_chainsTheSeedAndEveryAcceptedOutput() public {
        _startWith(6);
        uint256[] memory order = _byRank(1, 6);
        bytes32 seed = rounds.getRound(1).seed;
        assertEq(rounds.getRound(1).vrfAccumulator, seed, "starts at the seed");

        vm.recordLogs();
        _claim(order[3], 1);
        _claim(order[1], 1);
        _claim(order[2], 1); // full; order[3] is the highest
        _refusedTooHigh(order[5]);
        _claim(order[0], 1); // evicts order[3]
        _refusedTooHigh(order[4]);

        bytes32 accumulator = seed;
        uint256 claims = 0;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].topics[0] != IFlareRounds.SeatClaimed.selector) continue;
            (bytes32 output, bytes memory proof,) =
                abi.decode(logs[i].data, (bytes32, bytes, address));
            assertEq(output, keccak256(proof), "output = keccak256(proof)");
            accumulator = keccak256(abi.encode(accumulator, output));
            ++claims;
        }
        assertEq(claims, 4, "four accepted claims");
        assertEq(rounds.getRound(1).vrfAccumulator, accumulator, "the keccak chain");
    }

    function _refusedTooHigh(uint256 i) internal {
        bytes memory proof = _proofOf(i, 1);
        bytes32 before = rounds.getRound(1).vrfAccumulator;
        uint96 highest = rounds.seats(1)[0].rank;
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsOutputTooHigh.selector,
                1,
                _rankOfWord(_wordOf(proof, _node(i))),
                highest
            )
        );
        _claimWith(i, 1, proof);
        assertEq(rounds.getRound(1).vrfAccumulator, before, "a refused claim changes nothing");
    }

    /// @dev Deploys, registers three nodes, opens round 1; node `claimer` claims (none if out
    /// of range); round 1 fails and round 2 opens.
    function _roundTwoSeedAfterClaimBy(uint256 claimer)
        internal
        returns (address deployed, bytes32 seed1, bytes32 seed2)
    {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        _startWith(3);
        if (claimer < 3) _claim(claimer, 1);
        _warpPastTraining(1);
        rounds.closeRound(1);
        return (address(rounds), rounds.getRound(1).seed, rounds.getRound(2).seed);
    }

    /// @dev Round 1 in Review with node 0's proposal and one of the two approvals.
    function _toOneApprovalShort() internal returns (uint256 id) {
        _toReview(1, 3);
        id = _propose(0, 1);
        _vote(0, 1, id, true);
    }
}

/// @notice version 2, the domain separation tags, and the review policy: stored by the
/// constructor, returned by config(), carried by ConfigSet and RoundOpened, and snapshotted by
/// each round when it opens.
contract HardeningVersionAndPolicyTest is FlareRoundsFixture {
    function test_version_is2() public view {
        assertEq(rounds.version(), 2, "interface version");
    }

    function test_domainSeparationTags() public view {
        assertEq(
            rounds.VRF_DST(),
            bytes("FLARE-ROUNDS-V02-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"),
            "VRF tag"
        );
        assertEq(
            rounds.POP_DST(),
            bytes("FLARE-ROUNDS-V02-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"),
            "possession tag"
        );
    }

    function test_constructor_storesThePolicyAndRefusesAnInvalidOne() public {
        IFlareRounds.Config memory cfg = _config(K, QUORUM_BPS);
        cfg.reviewPolicy = _cid(9);
        FlareRounds deployed = _deploy(cfg, false);
        assertEq(deployed.config().reviewPolicy, _cid(9), "stored");

        cfg.reviewPolicy = new bytes(129);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsInvalidConfig.selector,
                "reviewPolicy must be a CID of 1..128 bytes"
            )
        );
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);
    }

    function test_reviewPolicy_eachRoundKeepsThePolicyItOpenedWith() public {
        _startWith(3);
        IFlareRounds.Config memory next = _config(K, QUORUM_BPS);
        next.reviewPolicy = _cid(2);
        _expectEmit();
        emit IFlareRounds.ConfigSet(next, 2);
        vm.prank(owner);
        rounds.setConfig(next);

        assertEq(rounds.config().reviewPolicy, _cid(2), "config() has the new policy");
        assertEq(rounds.getRound(1).reviewPolicy, _policy(), "round 1 keeps the old one");

        _warpPastTraining(1);
        vm.recordLogs();
        rounds.closeRound(1);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool opened = false;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].topics[0] != IFlareRounds.RoundOpened.selector) continue;
            (,,,, bytes memory policy) =
                abi.decode(logs[i].data, (bytes32, uint256, bytes, IFlareRounds.RoundParams, bytes));
            assertEq(policy, _cid(2), "RoundOpened carries round 2's policy");
            opened = true;
        }
        assertTrue(opened, "RoundOpened emitted");
        assertEq(rounds.getRound(2).reviewPolicy, _cid(2), "round 2 has the new policy");
        assertEq(rounds.getRound(1).reviewPolicy, _policy(), "round 1 still the old one");

        next.reviewPolicy = _cid(3);
        vm.prank(owner);
        rounds.setConfig(next);
        assertEq(rounds.getRound(2).reviewPolicy, _cid(2), "the open round is not changed");
    }
}

/// @notice The seats form a max-heap of words (rank above holder): after any sequence of claims
/// the highest word is seats()[0] and every parent is above its children; a refused claim
/// names its rank and the root's.
contract HardeningSeatHeapTest is FlareRoundsFixture {
    uint256 internal constant NODES = 10;

    function testFuzz_seatsFormAMaxHeapAfterEveryClaim(
        uint256 kSeed,
        bytes32 randao,
        uint256 orderSeed
    ) public {
        uint16 k = uint16(bound(kSeed, 1, 8));
        rounds = _deploy(_config(k, QUORUM_BPS), false);
        vm.prevrandao(randao);
        _startWith(NODES);
        uint256[] memory order = _permutation(NODES, orderSeed);
        for (uint256 n = 0; n < NODES; ++n) {
            uint256 i = order[n];
            bytes memory proof = _proofOf(i, 1);
            bytes memory key = _blsKey(i);
            uint256 word = _wordOf(proof, _node(i));
            uint256[] memory before = _seatWords(1);
            vm.prank(_node(i));
            try rounds.claimSeat(1, proof, key) {
                assertTrue(before.length < k || word < before[0], "accepted: free or below root");
            } catch (bytes memory reason) {
                assertEq(before.length, k, "refused only when full");
                assertEq(
                    reason,
                    abi.encodeWithSelector(
                        IFlareRounds.FlareRoundsOutputTooHigh.selector,
                        1,
                        _rankOfWord(word),
                        _rankOfWord(before[0])
                    ),
                    "OutputTooHigh(round, rank, highestRank)"
                );
            }
            _assertMaxHeap(1);
        }
        assertEq(rounds.seats(1).length, k, "k seats");
    }

    function test_outputTooHigh_carriesTheRankAndTheHighestRank() public {
        _startWith(5);
        uint256[] memory order = _byRank(1, 5);
        _claim(order[2], 1);
        _claim(order[0], 1);
        _claim(order[1], 1);
        assertEq(rounds.seats(1)[0].holder, _node(order[2]), "root = highest");
        _assertMaxHeap(1);

        bytes memory proof = _proofOf(order[4], 1);
        bytes memory key = _blsKey(order[4]);
        vm.prank(_node(order[4]));
        try rounds.claimSeat(1, proof, key) {
            fail("a claim above every seat was accepted");
        } catch (bytes memory reason) {
            assertEq(
                reason,
                abi.encodeWithSelector(
                    IFlareRounds.FlareRoundsOutputTooHigh.selector,
                    uint256(1),
                    _rank(order[4], 1),
                    _rank(order[2], 1)
                ),
                "exact revert data"
            );
        }
    }
}

/// @notice claimSeat costs O(log k): its worst case (the last free seat filled with the highest
/// word, which sifts from a leaf to the root, or the lowest claim evicting the root, which
/// sifts down to a leaf) grows by a bounded amount each time k doubles. v1's eviction rescanned
/// every seat, about 2,100 gas per seat.
/// @dev `tools/forge-test --match-contract HardeningClaimGasTest -vv` prints the figures:
/// execution gas of the call on cold storage (vm.cool), without the transaction's base and
/// calldata costs, which do not depend on k.
contract HardeningClaimGasTest is FlareRoundsFixture {
    uint256 internal constant MAX_GROWTH_PER_DOUBLING = 10_000;

    function test_claimGas_growsLogarithmicallyWithK() public {
        uint16[6] memory ks = [uint16(2), 4, 8, 16, 32, 64];
        uint256 previous = 0;
        for (uint256 j = 0; j < ks.length; ++j) {
            uint16 k = ks[j];
            rounds = _deploy(_config(k, QUORUM_BPS), false);
            _startWith(uint256(k) + 1);
            uint256[] memory order = _byRank(1, uint256(k) + 1);
            for (uint256 i = 1; i < k; ++i) {
                _claim(order[i], 1);
            }
            uint256 fill = _claimGas(order[k]);
            assertEq(rounds.seats(1)[0].holder, _node(order[k]), "sifted up to the root");
            uint256 evict = _claimGas(order[0]);
            assertFalse(rounds.isSeatHolder(1, _node(order[k])), "the root was evicted");
            _assertMaxHeap(1);

            uint256 worst = fill > evict ? fill : evict;
            string memory label = string.concat("k=", vm.toString(uint256(k)));
            log(string.concat(label, " claimSeat fill (leaf to root) gas"), fill);
            log(string.concat(label, " claimSeat evict (root to leaf) gas"), evict);
            log(string.concat(label, " claimSeat worst case gas"), worst);
            if (previous != 0) {
                uint256 growth = worst > previous ? worst - previous : 0;
                log(string.concat(label, " growth over k/2"), growth);
                assertLe(growth, MAX_GROWTH_PER_DOUBLING, "claim gas grows faster than log k");
            }
            previous = worst;
        }
    }

    /// @dev Node i's claim in round 1 on cold storage; returns the call's execution gas.
    function _claimGas(uint256 i) internal returns (uint256) {
        bytes memory data = abi.encodeCall(rounds.claimSeat, (1, _proofOf(i, 1), _blsKey(i)));
        vm.cool(address(rounds));
        vm.prank(_node(i));
        (bool ok, bytes memory ret) = address(rounds).call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return vm.lastCallGas().gasTotalUsed;
    }
}
