// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../../src/FlareRounds.sol";
import {IFlareRounds} from "../../src/IFlareRounds.sol";
import {BlsSigner} from "../base/BlsSigner.sol";
import {TestBase} from "../base/TestBase.sol";

/// @title RoundsHandler
/// @notice What the invariant fuzzer calls: node, owner and clock actions on one FlareRounds, with
/// fuzzed actors and arguments that are mostly valid and sometimes not. Each action predicts
/// from the state before it whether the contract must accept it, checks that it did exactly
/// then, and records what happened in ghost variables the invariants compare against.
/// @dev The handler never reverts by itself (fail_on_revert is on): a revert from here is a
/// broken rule, with its reason in the message. It holds its actors' BLS secret keys and claims
/// with real VRF proofs (now and then another actor's proof or key, which must be refused); a
/// claim's acceptance is predicted from the seat heap's root word. Public keys and proofs of
/// possession are computed once, each actor's proof once per round.
contract RoundsHandler is TestBase {
    uint256 public constant ACTORS = 8;
    uint256 public constant STARTING_NODES = 6;

    FlareRounds public immutable rounds;
    address public immutable owner;

    // ---------------------------------------------------------------- keys

    mapping(uint256 index => bytes) internal _publicKeys;
    mapping(uint256 index => bytes) internal _possessions;
    mapping(uint256 round => mapping(uint256 index => bytes)) internal _proofs;

    // ---------------------------------------------------------------- ghosts

    mapping(uint256 round => mapping(address node => uint256)) public submitCount;
    mapping(uint256 round => mapping(address node => uint256)) public voteCount;
    mapping(uint256 round => uint256[]) internal _acceptedClaims; // heap words
    mapping(uint256 round => bytes32) public accumulatorOf;
    mapping(uint256 round => bool) public accumulatorKnown;
    mapping(uint256 round => bytes32) public randaoAtOpening; // rounds >= 2
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
    uint256 public forgeriesRefused;

    constructor(FlareRounds rounds_, address owner_) {
        rounds = rounds_;
        owner = owner_;
        clock = block.timestamp;
        bytes memory popDst = rounds_.POP_DST();
        for (uint256 i = 0; i < ACTORS; ++i) {
            uint256 sk = _secretKey(i);
            _publicKeys[i] = BlsSigner.publicKey(sk);
            _possessions[i] = BlsSigner.sign(sk, _possessionMessage(actor(i)), popDst);
        }
    }

    // ---------------------------------------------------------------- node actions

    function submitUpdate(uint256 actorSeed, uint256 samples, uint256 cidSeed) external {
        _observePhases();
        uint256 round = rounds.currentRound();
        address node = _pick(actorSeed, round, Want.Submit);
        samples = samples % 64; // 0 now and then, above maxSamples now and then: refused
        bytes memory cid = abi.encodePacked(hex"01551220", keccak256(abi.encode(cidSeed)));
        IFlareRounds.RoundView memory r = rounds.getRound(round);
        bool expected = samples != 0 && samples <= r.maxSamples
            && r.phase == IFlareRounds.Phase.Training && rounds.isEligible(round, node)
            && submitCount[round][node] == 0;

        vm.prank(node);
        try rounds.submitUpdate(round, cid, samples) {
            _require(expected, "submitUpdate accepted against the rules");
            submitCount[round][node] += 1;
            _require(rounds.updateOf(round, node) == keccak256(cid), "stored hash is the cid's");
        } catch {
            _require(!expected, "submitUpdate refused a valid update");
        }
    }

    /// @param variant 0: another actor's proof with the claimer's key; 1: the claimer's proof
    /// with another actor's key (both must be refused); else the claimer's own proof and key.
    function claimSeat(uint256 actorSeed, uint256 variant) external {
        _observePhases();
        uint256 round = rounds.currentRound();
        address node = _pick(actorSeed, round, Want.Claim);
        uint256 index = _index(node);
        bytes memory proof = _proof(round, index);
        bytes memory key = _publicKeys[index];
        bool forged = variant % 8 < 2;
        if (variant % 8 == 0) proof = _proof(round, (index + 1) % ACTORS);
        if (variant % 8 == 1) key = _publicKeys[(index + 1) % ACTORS];

        IFlareRounds.RoundView memory r = rounds.getRound(round);
        if (!accumulatorKnown[round]) {
            accumulatorOf[round] = r.seed; // no claim has reached this round yet
            accumulatorKnown[round] = true;
        }
        _require(r.vrfAccumulator == accumulatorOf[round], "accumulator before the claim");
        uint256 word = (uint256(keccak256(proof)) >> 160 << 160) | uint160(node);
        bool full = r.seatCount == r.committeeSize;
        bool expected = !forged && r.phase == IFlareRounds.Phase.Training
            && rounds.isEligible(round, node) && !_claimed[round][node]
            && (!full || word < _rootWord(round));

        vm.prank(node);
        try rounds.claimSeat(round, proof, key) {
            _require(expected, "claimSeat accepted against the rules");
            _acceptedClaims[round].push(word);
            _claimed[round][node] = true;
            accumulatorOf[round] = keccak256(abi.encode(accumulatorOf[round], keccak256(proof)));
            if (full) evictions += 1;
        } catch {
            _require(!expected, "claimSeat refused a valid claim");
            if (forged) forgeriesRefused += 1;
        }
        _require(
            rounds.getRound(round).vrfAccumulator == accumulatorOf[round],
            "accumulator = seed and accepted outputs"
        );
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
                _recordOpened(round + 1);
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
            _recordOpened(round + 1);
        } catch {
            _require(!expected, "closeRound refused a failed round");
        }
    }

    /// @param variant 0 (one time in four): another actor's registration replayed (its key and
    /// its proof of possession, made for its own address), which must be refused.
    function register(uint256 actorSeed, uint256 variant) external {
        _observePhases();
        address node = actor(actorSeed);
        bool replayed = variant % 4 == 0;
        uint256 index = replayed ? (_index(node) + 1) % ACTORS : _index(node);
        bytes memory key = _publicKeys[index];
        bytes memory possession = _possessions[index];
        bool expected = !replayed && !rounds.getNode(node).registered;
        vm.prank(node);
        try rounds.register(key, possession, keccak256(abi.encode("peer", node))) {
            _require(expected, "register accepted against the rules");
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

    /// @dev The owner removes a node (the allowlist stays off, so it may register again).
    function disallow(uint256 actorSeed) external {
        _observePhases();
        address node = actor(actorSeed);
        vm.prank(owner);
        try rounds.disallow(node) {
            _require(!rounds.getNode(node).registered, "a disallowed node stays registered");
        } catch {
            _require(false, "disallow refused the owner");
        }
    }

    function setConfig(uint256 kSeed, uint256 bpsSeed, uint256 minUpdatesSeed, uint256 extra)
        external
    {
        _observePhases();
        uint16[3] memory bps = [uint16(5000), 6000, 10_000];
        uint256 k = bound(kSeed, 1, 4);
        IFlareRounds.Config memory cfg = IFlareRounds.Config({
            // forge-lint: disable-next-line(unsafe-typecast) bounded to 1..4
            committeeSize: uint16(k),
            quorumBps: bps[bpsSeed % 3],
            trainWindow: 1 hours,
            reviewWindow: 2 hours,
            minClaimWindow: extra % 2 == 0 ? 0 : 10 minutes,
            // forge-lint: disable-next-line(unsafe-typecast) bounded to 1..3
            minUpdates: uint32(bound(minUpdatesSeed, 1, 3)),
            // forge-lint: disable-next-line(unsafe-typecast) bounded to 16..100
            maxSamples: uint64(bound(extra >> 1, 16, 100)),
            reviewPolicy: abi.encodePacked(hex"01551220", keccak256(abi.encode("policy", extra)))
        });
        // More than half of k approvals: k * bps / 10000 > floor(k / 2).
        bool expected = k * cfg.quorumBps > (k / 2) * 10_000;
        vm.prank(owner);
        try rounds.setConfig(cfg) {
            _require(expected, "setConfig accepted a quorum of half of k or less");
        } catch {
            _require(!expected, "setConfig refused a valid config");
        }
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

    /// @notice Actor `seed`'s BLS public key and proof of possession, for the test's setUp.
    function credentialsOf(uint256 seed)
        external
        view
        returns (bytes memory key, bytes memory possession)
    {
        return (_publicKeys[seed % ACTORS], _possessions[seed % ACTORS]);
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
        return _phaseRank(next) >= _phaseRank(before);
    }

    function _phaseRank(IFlareRounds.Phase p) internal pure returns (uint256) {
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

    /// @dev Round `round` just opened in this call: its seed must chain from the previous one.
    function _recordOpened(uint256 round) internal {
        randaoAtOpening[round] = bytes32(block.prevrandao);
        IFlareRounds.RoundView memory previous = rounds.getRound(round - 1);
        bytes32 expected = keccak256(
            abi.encode(
                previous.seed, block.prevrandao, round, address(rounds), previous.vrfAccumulator
            )
        );
        _require(rounds.getRound(round).seed == expected, "seed does not chain");
    }

    function _phase(uint256 round) internal view returns (IFlareRounds.Phase) {
        return rounds.phase(round);
    }

    /// @dev The highest seat word: the heap's root.
    function _rootWord(uint256 round) internal view returns (uint256) {
        IFlareRounds.Seat memory root = rounds.seats(round)[0];
        return (uint256(root.rank) << 160) | uint160(root.holder);
    }

    /// @dev Actor `index`'s VRF proof for `round`, computed once per round.
    function _proof(uint256 round, uint256 index) internal returns (bytes memory proof) {
        proof = _proofs[round][index];
        if (proof.length == 0) {
            bytes memory alpha = abi.encodePacked(rounds.getRound(round).seed, round);
            proof = BlsSigner.sign(_secretKey(index), alpha, rounds.VRF_DST());
            _proofs[round][index] = proof;
        }
    }

    function _secretKey(uint256 index) internal pure returns (uint256) {
        return BlsSigner.secretKey(1000 + index);
    }

    function _possessionMessage(address registrant) internal view returns (bytes memory) {
        return abi.encodePacked(block.chainid, address(rounds), registrant);
    }

    function _index(address node) internal pure returns (uint256) {
        return uint160(node) - 0x1000;
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
