// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../../src/FlareRounds.sol";
import {IFlareRounds} from "../../src/IFlareRounds.sol";
import {TestBase} from "../base/TestBase.sol";
import {RoundsHandler} from "./RoundsHandler.sol";

/// @notice Invariants of the round protocol under random sequences of node, owner and clock
/// actions (see RoundsHandler), with seats claimed by real BLS VRF proofs. Each invariant reads
/// the contract's views and compares them with what the handler saw succeed.
contract RoundsInvariantsTest is TestBase {
    FlareRounds internal rounds;
    RoundsHandler internal handler;
    address internal owner = address(0xA11CE);

    function setUp() public {
        vm.warp(1_700_000_000);
        IFlareRounds.Config memory cfg = IFlareRounds.Config({
            committeeSize: 3,
            quorumBps: 6000,
            trainWindow: 1 hours,
            reviewWindow: 2 hours, // several clock steps: Review sees proposals and votes
            minClaimWindow: 10 minutes,
            minUpdates: 2,
            maxSamples: 48, // the handler's samples go up to 63: some are refused
            reviewPolicy: abi.encodePacked(hex"01551220", keccak256("policy"))
        });
        rounds = new FlareRounds(owner, keccak256("spec"), hex"0155122000", cfg, false);
        handler = new RoundsHandler(rounds, owner);
        for (uint256 i = 0; i < handler.STARTING_NODES(); ++i) {
            address node = handler.actor(i);
            (bytes memory key, bytes memory possession) = handler.credentialsOf(i);
            vm.prank(node);
            rounds.register(key, possession, keccak256(abi.encode("peer", node)));
        }
        vm.prank(owner);
        rounds.start();
        targetContract(address(handler));
    }

    /// @notice A node's update is stored at most once per round, and the count says so.
    function invariant_oneUpdatePerNodePerRound() public view {
        uint256 current = rounds.currentRound();
        for (uint256 round = 1; round <= current; ++round) {
            uint256 submitted = 0;
            for (uint256 i = 0; i < handler.ACTORS(); ++i) {
                address node = handler.actor(i);
                uint256 count = handler.submitCount(round, node);
                assertLe(count, 1, "two updates from one node in one round");
                assertEq(
                    rounds.updateOf(round, node) != bytes32(0), count == 1, "stored iff submitted"
                );
                submitted += count;
            }
            IFlareRounds.RoundView memory r = rounds.getRound(round);
            assertEq(r.updateCount, submitted, "updateCount");
            assertLe(r.updateCount, r.eligibleNodes, "more updates than eligible nodes");
        }
    }

    /// @notice Only seat holders vote, each at most once per round, and every vote is counted. A
    /// voter may leave afterwards (its vote stays counted), but it was never evicted: votes come
    /// after Training, so it is still in the seat heap.
    function invariant_onlySeatHoldersVoteOnce() public view {
        uint256 current = rounds.currentRound();
        for (uint256 round = 1; round <= current; ++round) {
            IFlareRounds.Seat[] memory list = rounds.seats(round);
            uint256 voters = 0;
            for (uint256 i = 0; i < handler.ACTORS(); ++i) {
                address node = handler.actor(i);
                uint256 count = handler.voteCount(round, node);
                assertLe(count, 1, "two votes from one seat");
                assertEq(rounds.hasVoted(round, node), count == 1, "hasVoted iff voted");
                if (count == 1) assertTrue(_inHeap(list, node), "voter without a seat");
                voters += count;
            }
            IFlareRounds.RoundView memory r = rounds.getRound(round);
            uint256 ballots = 0;
            for (uint256 id = 1; id <= r.proposalCount; ++id) {
                IFlareRounds.ProposalView memory p = rounds.getProposal(round, id);
                ballots += uint256(p.approvals) + p.rejections;
            }
            assertEq(ballots, voters, "ballots counted = votes cast");
            assertLe(voters, r.seatCount, "more votes than seats");
        }
    }

    /// @notice Once finalized, a round's model and proposal never change, and the global model is
    /// the latest finalized one.
    function invariant_finalizedModelNeverChanges() public view {
        uint256[] memory finalized = handler.finalizedRounds();
        for (uint256 i = 0; i < finalized.length; ++i) {
            uint256 round = finalized[i];
            uint256 id = handler.finalizedProposalOf(round);
            IFlareRounds.RoundView memory r = rounds.getRound(round);
            assertEq(uint256(r.phase), uint256(IFlareRounds.Phase.Finalized), "stays finalized");
            assertEq(r.finalizedProposal, id, "finalized proposal changed");
            assertEq(
                keccak256(rounds.getProposal(round, id).cid),
                handler.finalizedCidHash(round),
                "cid changed"
            );
            assertEq(
                keccak256(rounds.baseModel(round + 1)),
                handler.finalizedCidHash(round),
                "next round's base"
            );
        }
        (uint256 globalRound, bytes memory cid) = rounds.globalModel();
        if (finalized.length == 0) {
            assertEq(globalRound, 0, "genesis until a round finalizes");
            assertEq(cid, rounds.genesisModel(), "genesis cid");
        } else {
            uint256 last = finalized[finalized.length - 1];
            assertEq(globalRound, last, "global round = latest finalized");
            assertEq(keccak256(cid), handler.finalizedCidHash(last), "global cid");
        }
    }

    /// @notice Every round's base is the last round finalized before it opened (0 = genesis).
    function invariant_baseIsTheLastFinalizedRound() public view {
        uint256 current = rounds.currentRound();
        uint256 lastFinalized = 0;
        for (uint256 round = 1; round <= current; ++round) {
            assertEq(rounds.getRound(round).baseRound, lastFinalized, "base round");
            if (handler.finalizedProposalOf(round) != 0) lastFinalized = round;
        }
    }

    /// @notice At most k seats, always the k lowest words among the accepted claims, one per
    /// node; a holder counts as seated exactly while it is still eligible, and nobody else does.
    function invariant_seatsAreTheKLowestClaims() public view {
        uint256 current = rounds.currentRound();
        for (uint256 round = 1; round <= current; ++round) {
            IFlareRounds.RoundView memory r = rounds.getRound(round);
            IFlareRounds.Seat[] memory list = rounds.seats(round);
            assertLe(list.length, r.committeeSize, "more seats than k");
            assertEq(list.length, r.seatCount, "seatCount");

            uint256[] memory claims = _sorted(handler.acceptedClaims(round));
            uint256 expectedSeats =
                claims.length < r.committeeSize ? claims.length : r.committeeSize;
            assertEq(list.length, expectedSeats, "seats = min(k, accepted claims)");
            uint256[] memory words = new uint256[](list.length);
            for (uint256 i = 0; i < list.length; ++i) {
                words[i] = _word(list[i]);
                for (uint256 j = 0; j < i; ++j) {
                    assertTrue(list[j].holder != list[i].holder, "one node, two seats");
                }
            }
            words = _sorted(words);
            for (uint256 i = 0; i < words.length; ++i) {
                assertEq(words[i], claims[i], "seats are not the lowest claims");
            }
            for (uint256 i = 0; i < handler.ACTORS(); ++i) {
                address node = handler.actor(i);
                bool seated = _inHeap(list, node) && rounds.isEligible(round, node);
                assertEq(rounds.isSeatHolder(round, node), seated, "seat flag");
            }
        }
    }

    /// @notice The seats form a max-heap of words: the root is the highest seat.
    function invariant_seatsFormAMaxHeap() public view {
        uint256 current = rounds.currentRound();
        for (uint256 round = 1; round <= current; ++round) {
            IFlareRounds.Seat[] memory list = rounds.seats(round);
            for (uint256 i = 1; i < list.length; ++i) {
                assertGe(_word(list[(i - 1) / 2]), _word(list[i]), "a parent below its child");
            }
        }
    }

    /// @notice Each round's VRF accumulator is the keccak chain of its seed and its accepted
    /// outputs, and each seed chains from the previous round's seed and accumulator.
    function invariant_seedsAndAccumulatorsChain() public view {
        uint256 current = rounds.currentRound();
        for (uint256 round = 1; round <= current; ++round) {
            IFlareRounds.RoundView memory r = rounds.getRound(round);
            bytes32 expected =
                handler.accumulatorKnown(round) ? handler.accumulatorOf(round) : r.seed;
            assertEq(r.vrfAccumulator, expected, "accumulator");
            if (round == 1) continue;
            IFlareRounds.RoundView memory previous = rounds.getRound(round - 1);
            bytes32 seed = keccak256(
                abi.encode(
                    previous.seed,
                    handler.randaoAtOpening(round),
                    round,
                    address(rounds),
                    previous.vrfAccumulator
                )
            );
            assertEq(r.seed, seed, "seed chain");
        }
    }

    /// @notice Phases only move forward (the handler also checks this before every action).
    function invariant_phasesOnlyMoveForward() public view {
        uint256 current = rounds.currentRound();
        assertGe(current, handler.lastSeenRound(), "currentRound went back");
        for (uint256 round = 1; round <= current + 1; ++round) {
            assertTrue(
                handler.phaseMayFollow(handler.lastSeenPhase(round), rounds.phase(round)),
                "a phase moved backwards"
            );
        }
        for (uint256 round = 1; round < current; ++round) {
            IFlareRounds.Phase p = rounds.phase(round);
            assertTrue(
                p == IFlareRounds.Phase.Finalized || p == IFlareRounds.Phase.Failed,
                "past round not settled"
            );
        }
    }

    // ------------------------------------------------------------------ the handler's reach

    /// @notice The handler's picks and predictions carry a round through every phase: a scripted
    /// walk must finalize, so the campaign's random walks can too.
    function test_handlerCanFinalizeARound() public {
        // Actor seed 1 picks the first actor for whom the action is still open; variant 2 is a
        // genuine claim.
        for (uint256 i = 0; i < handler.STARTING_NODES(); ++i) {
            handler.submitUpdate(1, 5, i);
            handler.claimSeat(1, 2);
        }
        assertEq(rounds.getRound(1).seatCount, 3, "seats full");
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Training), "until claimEnd");
        handler.warp(10 minutes);
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed early");
        handler.proposeAggregate(1, 1);
        handler.vote(1, 1, 1);
        handler.vote(1, 1, 1);
        assertEq(handler.finalizations(), 1, "finalized");
        assertEq(rounds.currentRound(), 2, "next round open");
        invariant_finalizedModelNeverChanges();
        invariant_onlySeatHoldersVoteOnce();
        invariant_seatsAreTheKLowestClaims();
        invariant_seedsAndAccumulatorsChain();
    }

    /// @notice ...and a round without updates fails and is closed through the handler's clock.
    function test_handlerCanFailARound() public {
        handler.warp(40 minutes);
        handler.warp(40 minutes);
        handler.closeRound();
        assertEq(handler.failures(), 1, "failed");
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Failed), "round 1 failed");
        invariant_phasesOnlyMoveForward();
        invariant_seedsAndAccumulatorsChain();
    }

    /// @notice ...and its forged claims and replayed registrations are refused.
    function test_handlerForgeriesAreRefused() public {
        handler.claimSeat(1, 0); // another actor's proof
        handler.claimSeat(1, 1); // another actor's key
        assertEq(handler.forgeriesRefused(), 2, "both refused");
        assertEq(rounds.getRound(1).seatCount, 0, "no seat");
        handler.register(7, 0); // actor 7 replays actor 0's registration
        assertFalse(rounds.getNode(handler.actor(7)).registered, "not registered");
        handler.register(7, 1);
        assertTrue(rounds.getNode(handler.actor(7)).registered, "its own registration works");
    }

    function _inHeap(IFlareRounds.Seat[] memory list, address node) internal pure returns (bool) {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i].holder == node) return true;
        }
        return false;
    }

    function _word(IFlareRounds.Seat memory seat) internal pure returns (uint256) {
        return (uint256(seat.rank) << 160) | uint160(seat.holder);
    }

    function _sorted(uint256[] memory values) internal pure returns (uint256[] memory) {
        for (uint256 i = 1; i < values.length; ++i) {
            uint256 v = values[i];
            uint256 j = i;
            while (j > 0 && values[j - 1] > v) {
                values[j] = values[j - 1];
                --j;
            }
            values[j] = v;
        }
        return values;
    }
}
