// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../../src/FlareRounds.sol";
import {IFlareRounds} from "../../src/IFlareRounds.sol";
import {TestBase} from "../base/TestBase.sol";

/// @title RoundsHandler
/// @notice What the invariant fuzzer calls: node, owner and clock actions on one FlareRounds, with
/// fuzzed actors and arguments that are mostly valid and sometimes not. Each action predicts
/// from the state before it whether the contract must accept it, checks that it did exactly
/// then, and records what happened in ghost variables the invariants compare against.
/// @dev The handler never reverts by itself (fail_on_revert is on): a revert from here is a
/// broken rule, with its reason in the message.
contract RoundsHandler is TestBase {
    uint256 public constant ACTORS = 8;
    uint256 public constant STARTING_NODES = 6;

    FlareRounds public immutable rounds;
    address public immutable owner;

    // ---------------------------------------------------------------- ghosts

    mapping(uint256 round => mapping(address node => uint256)) public submitCount;
    mapping(uint256 round => mapping(address node => uint256)) public voteCount;
    mapping(uint256 round => uint256[]) internal _acceptedClaims;
    mapping(uint256 round => uint256) public finalizedProposalOf;
    mapping(uint256 round => bytes32) public finalizedCidHash;
    uint256[] internal _finalizedRounds;
    mapping(uint256 round => IFlareRounds.Phase) public lastSeenPhase;
    uint256 public lastSeenRound;
    /// @dev forge does not carry vm.warp from one fuzzed call to the next: every action starts
    /// by setting the clock to this.
    uint256 public clock;

    // How far the campaign got, for judging its reach.
    uint256 public finalizations;
    uint256 public failures;
    uint256 public evictions;

    constructor(FlareRounds rounds_, address owner_) {
        rounds = rounds_;
        owner = owner_;
        clock = block.timestamp;
    }

    // ---------------------------------------------------------------- node actions

    function submitUpdate(uint256 actorSeed, uint256 samples, uint256 cidSeed) external {
        _observePhases();
        uint256 round = rounds.currentRound();
        address node = _pick(actorSeed, round, Want.Submit);
        samples = samples % 64; // 0 now and then: must be refused
        bytes memory cid = abi.encodePacked(hex"01551220", keccak256(abi.encode(cidSeed)));
        bool expected = samples != 0 && _phase(round) == IFlareRounds.Phase.Training
            && rounds.isEligible(round, node) && submitCount[round][node] == 0;

        vm.prank(node);
        try rounds.submitUpdate(round, cid, samples) {
            _require(expected, "submitUpdate accepted against the rules");
            submitCount[round][node] += 1;
            _require(rounds.updateOf(round, node) == keccak256(cid), "stored hash is the cid's");
        } catch {
            _require(!expected, "submitUpdate refused a valid update");
        }
    }

    function claimSeat(uint256 actorSeed, uint256 outputSeed) external {
        _observePhases();
        uint256 round = rounds.currentRound();
        address node = _pick(actorSeed, round, Want.Claim);
        // Narrow outputs now and then, so equal outputs compete for the last seat.
        bytes32 output = bytes32(outputSeed % 3 == 0 ? outputSeed % 16 : outputSeed);
        IFlareRounds.RoundView memory r = rounds.getRound(round);
        bool expected = r.phase == IFlareRounds.Phase.Training && rounds.isEligible(round, node)
            && !_claimedBefore(round, node)
            && (r.seatCount < r.committeeSize || output < _highest(round));
        bool full = r.seatCount == r.committeeSize;
        bytes memory proof =
            abi.encodePacked(keccak256(abi.encode(outputSeed)), bytes32(0), bytes16(0));

        vm.prank(node);
        try rounds.claimSeat(round, output, proof) {
            _require(expected, "claimSeat accepted against the rules");
            _acceptedClaims[round].push(uint256(output));
            _claimed[round][node] = true;
            if (full) evictions += 1;
        } catch {
            _require(!expected, "claimSeat refused a valid claim");
        }
    }

    function proposeAggregate(uint256 actorSeed, uint256 cidSeed) external {
        _observePhases();
        uint256 round = rounds.currentRound();
        address node = _pick(actorSeed, round, Want.Propose);
        bytes memory cid = abi.encodePacked(hex"01551220", keccak256(abi.encode("agg", cidSeed)));
        bool expected = _phase(round) == IFlareRounds.Phase.Review
            && rounds.isSeatHolder(round, node) && !_proposedBefore[round][node];

        vm.prank(node);
        try rounds.proposeAggregate(round, cid, keccak256(cid)) returns (uint256 id) {
            _require(expected, "proposeAggregate accepted against the rules");
            _require(id == rounds.getRound(round).proposalCount, "ids count up from 1");
            _proposedBefore[round][node] = true;
        } catch {
            _require(!expected, "proposeAggregate refused a valid proposal");
        }
    }

    function vote(uint256 actorSeed, uint256 proposalSeed, uint256 approveSeed) external {
        _observePhases();
        uint256 round = rounds.currentRound();
        address node = _pick(actorSeed, round, Want.Vote);
        IFlareRounds.RoundView memory r = rounds.getRound(round);
        // Mostly a known proposal; id 0 or one past the end now and then.
        uint256 proposalId = proposalSeed % 8 == 0 || r.proposalCount == 0
            ? (proposalSeed % 16 == 0 ? 0 : uint256(r.proposalCount) + 1)
            : 1 + (proposalSeed >> 3) % r.proposalCount;
        bool approve = approveSeed % 4 != 0;
        bool seated = rounds.isSeatHolder(round, node);
        bool expected = r.phase == IFlareRounds.Phase.Review && seated
            && voteCount[round][node] == 0 && proposalId >= 1 && proposalId <= r.proposalCount;

        vm.prank(node);
        try rounds.vote(round, proposalId, approve) {
            _require(expected, "vote accepted against the rules");
            _require(seated, "a vote from a node without a seat");
            voteCount[round][node] += 1;
            if (rounds.phase(round) == IFlareRounds.Phase.Finalized) {
                _recordFinalized(round, proposalId);
            }
        } catch {
            _require(!expected, "vote refused a valid vote");
        }
    }

    function closeRound() external {
        _observePhases();
        uint256 round = rounds.currentRound();
        bool expected = _phase(round) == IFlareRounds.Phase.Failed;
        try rounds.closeRound(round) {
            _require(expected, "closeRound closed a round that had not failed");
            _require(rounds.currentRound() == round + 1, "closing opens the next round");
            failures += 1;
        } catch {
            _require(!expected, "closeRound refused a failed round");
        }
    }

    function register(uint256 actorSeed) external {
        _observePhases();
        address node = actor(actorSeed);
        bool expected = !rounds.getNode(node).registered;
        vm.prank(node);
        try rounds.register(keyOf(node)) {
            _require(expected, "register accepted a registered node");
        } catch {
            _require(!expected, "register refused a new node");
        }
    }

    function deregister(uint256 actorSeed) external {
        _observePhases();
        address node = actor(actorSeed);
        bool expected = rounds.getNode(node).registered;
        vm.prank(node);
        try rounds.deregister() {
            _require(expected, "deregister accepted an unregistered node");
        } catch {
            _require(!expected, "deregister refused a registered node");
        }
    }

    // ---------------------------------------------------------------- owner and clock

    function setConfig(uint256 kSeed, uint256 bpsSeed, uint256 minUpdatesSeed) external {
        _observePhases();
        uint16[3] memory bps = [uint16(5000), 6000, 10_000];
        IFlareRounds.Config memory cfg = IFlareRounds.Config({
            committeeSize: uint16(bound(kSeed, 1, 4)),
            quorumBps: bps[bpsSeed % 3],
            trainWindow: 1 hours,
            reviewWindow: 2 hours,
            minUpdates: uint32(bound(minUpdatesSeed, 1, 3))
        });
        vm.prank(owner);
        rounds.setConfig(cfg);
    }

    function warp(uint256 seconds_) external {
        _observePhases();
        clock += bound(seconds_, 1, 40 minutes);
        vm.warp(clock);
    }

    // ---------------------------------------------------------------- reading the ghosts

    function actor(uint256 seed) public pure returns (address) {
        return address(uint160(0x1000 + seed % ACTORS));
    }

    function keyOf(address node) public pure returns (bytes32) {
        return keccak256(abi.encode("vrf key", node));
    }

    function acceptedClaims(uint256 round) external view returns (uint256[] memory) {
        return _acceptedClaims[round];
    }

    function finalizedRounds() external view returns (uint256[] memory) {
        return _finalizedRounds;
    }

    // ---------------------------------------------------------------- internals

    mapping(uint256 round => mapping(address node => bool)) internal _claimed;
    mapping(uint256 round => mapping(address node => bool)) internal _proposedBefore;

    /// @dev Phases may only move forward: None -> Training -> Review -> Finalized | Failed, and the
    /// last two never change. Checked before every action against the previous observation, so
    /// both the actions and the clock are covered. Rounds before the last seen current round were
    /// settled when last observed; the invariant re-checks those.
    function _observePhases() internal {
        vm.warp(clock);
        uint256 current = rounds.currentRound();
        _require(current >= lastSeenRound, "currentRound went back");
        uint256 first = lastSeenRound == 0 ? 1 : lastSeenRound;
        for (uint256 round = first; round <= current + 1; ++round) {
            IFlareRounds.Phase now_ = rounds.phase(round);
            _require(phaseMayFollow(lastSeenPhase[round], now_), "a phase moved backwards");
            lastSeenPhase[round] = now_;
        }
        lastSeenRound = current;
    }

    function phaseMayFollow(IFlareRounds.Phase before, IFlareRounds.Phase next)
        public
        pure
        returns (bool)
    {
        if (before == IFlareRounds.Phase.Finalized || before == IFlareRounds.Phase.Failed) {
            return next == before;
        }
        return _rank(next) >= _rank(before);
    }

    function _rank(IFlareRounds.Phase p) internal pure returns (uint256) {
        if (p == IFlareRounds.Phase.None) return 0;
        if (p == IFlareRounds.Phase.Training) return 1;
        if (p == IFlareRounds.Phase.Review) return 2;
        return 3;
    }

    function _recordFinalized(uint256 round, uint256 proposalId) internal {
        _require(finalizedProposalOf[round] == 0, "a round finalized twice");
        finalizedProposalOf[round] = proposalId;
        finalizedCidHash[round] = keccak256(rounds.getProposal(round, proposalId).cid);
        _finalizedRounds.push(round);
        finalizations += 1;
    }

    function _phase(uint256 round) internal view returns (IFlareRounds.Phase) {
        return rounds.phase(round);
    }

    function _claimedBefore(uint256 round, address node) internal view returns (bool) {
        return _claimed[round][node];
    }

    function _highest(uint256 round) internal view returns (bytes32 highest) {
        IFlareRounds.Seat[] memory list = rounds.seats(round);
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i].output > highest) highest = list[i].output;
        }
    }

    enum Want {
        Submit,
        Claim,
        Propose,
        Vote
    }

    /// @dev Three times in four an actor for whom the action is still open (eligible and not yet
    /// done, or seated and not yet done), else anyone: valid actions dominate, so rounds get
    /// through Review, while invalid ones keep testing the refusals.
    function _pick(uint256 seed, uint256 round, Want want) internal view returns (address) {
        address any = actor(seed >> 2);
        if (seed % 4 == 0) return any;
        for (uint256 i = 0; i < ACTORS; ++i) {
            address node = actor((seed >> 2) + i);
            if (_open(node, round, want)) return node;
        }
        return any;
    }

    function _open(address node, uint256 round, Want want) internal view returns (bool) {
        if (want == Want.Submit) {
            return rounds.isEligible(round, node) && submitCount[round][node] == 0;
        }
        if (want == Want.Claim) return rounds.isEligible(round, node) && !_claimed[round][node];
        if (!rounds.isSeatHolder(round, node)) return false;
        if (want == Want.Propose) return !_proposedBefore[round][node];
        return voteCount[round][node] == 0;
    }

    function _require(bool condition, string memory message) internal pure {
        if (!condition) fail(message);
    }
}
