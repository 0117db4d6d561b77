// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {BLS12381} from "./BLS12381.sol";
import {IFlareRounds} from "./IFlareRounds.sol";

/// @title FlareRounds
/// @notice The single source of truth of a flare-node federation: who takes part, which update
/// each node submitted in each round, who sits on each round's committee, and which aggregate
/// became the global model. Nodes and auditors rebuild everything from the events.
/// @dev Phases are derived from stored timestamps and counters by `_phase` (as OpenZeppelin's
/// `Governor.state()` does); no status is ever stored. Seats are won with BLS VRF proofs that
/// `claimSeat` verifies with the EIP-2537 precompiles, so nobody holds a seat they did not win.
/// Storage is laid out for the hot paths: every check and counter of `submitUpdate`,
/// `claimSeat` and `vote` lives in the first slot of `Round`, a node's per-round flags share one
/// word, and a seat is one word (rank and holder) in a max-heap, so a claim costs O(log k).
/// The only external calls go to precompiles (view), so every function is
/// checks -> effects -> events.
contract FlareRounds is IFlareRounds, Ownable2Step, Pausable {
    // ------------------------------------------------------------------ constants

    /// @notice The interface version: 2 is BLS VRF seats verified on-chain and a review policy.
    uint256 private constant INTERFACE_VERSION = 2;
    /// @notice Domain separation tag of VRF seat proofs (RFC 9380 hash_to_curve on G1).
    bytes public constant VRF_DST = "FLARE-ROUNDS-V02-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
    /// @notice Domain separation tag of registration proofs of possession.
    bytes public constant POP_DST = "FLARE-ROUNDS-V02-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

    uint256 private constant MAX_COMMITTEE_SIZE = 64;
    uint256 private constant MAX_QUORUM_BPS = 10_000;
    uint256 private constant MAX_CID_LENGTH = 128;

    // Bits of a node's flags word for one round.
    uint256 private constant CLAIMED = 1;
    uint256 private constant SEATED = 2;
    uint256 private constant PROPOSED = 4;
    uint256 private constant VOTED = 8;

    // A seat is one word: the rank (first 96 bits of the output) above the holder's address.
    uint256 private constant HOLDER_BITS = 160;

    // ------------------------------------------------------------------ storage types

    /// @dev Slot 0 holds everything the round transactions read or count (all 256 bits), so each
    /// of them touches one round slot; k <= 64 bounds seats and proposals, hence the uint8
    /// fields. Slot 1 is the seed, slot 2 the VRF accumulator, slot 3 what the others need less
    /// often.
    struct Round {
        uint40 trainEnd;
        uint40 closedAt; // when Training ends early (may lie ahead, at claimEnd); 0 if it does not
        uint40 claimEnd;
        uint32 eligibleNodes;
        uint32 updateCount;
        uint32 minUpdates;
        uint8 committeeSize;
        uint8 quorum;
        uint8 seatCount;
        uint8 proposalCount;
        uint8 finalizedProposal; // 0 until finalized
        bytes32 seed;
        bytes32 vrfAccumulator;
        uint40 openedAt;
        uint64 baseRound;
        uint32 reviewWindow;
        uint64 maxSamples;
        uint32 configId;
    }

    /// @dev The numeric part of `Config` (one slot); the policy CID lives in `_policies`.
    struct Params {
        uint16 committeeSize;
        uint16 quorumBps;
        uint32 trainWindow;
        uint32 reviewWindow;
        uint32 minClaimWindow;
        uint32 minUpdates;
        uint64 maxSamples;
    }

    struct Node {
        bool registered;
        bool allowed;
        uint64 eligibleFrom;
        bytes32 blsKeyHash; // kept after deregistration: the key stays bound to this address
        bytes32 peerKey;
    }

    struct Proposal {
        address proposer;
        uint32 approvals;
        uint32 rejections;
        bytes32 updatesRoot;
        bytes cid;
    }

    // ------------------------------------------------------------------ state

    bytes32 private immutable _modelSpecHash;
    bytes private _genesisModel;

    /// @custom:security write-protection="onlyOwner()"
    Params private _params;

    uint64 private _currentRound;
    uint64 private _lastFinalizedRound;
    /// @custom:security write-protection="onlyOwner()"
    bool private _allowlistEnabled;
    /// @custom:security write-protection="onlyOwner()"
    uint32 private _configId;
    uint32 private _nodeCount; // registered now; shares the slot register and _openRound read

    mapping(address node => Node) private _nodes;
    mapping(bytes32 blsKeyHash => address node) private _blsKeyOwner;
    mapping(uint256 configId => bytes cid) private _policies;

    mapping(uint256 round => Round) private _rounds;
    mapping(uint256 round => mapping(address node => bytes32 cidHash)) private _updates;
    mapping(uint256 round => mapping(address node => uint256 bits)) private _flags;
    // Written through storage pointers in _siftUp and _siftDown, which slither does not follow.
    // slither-disable-next-line uninitialized-state
    mapping(uint256 round => uint256[MAX_COMMITTEE_SIZE]) private _seatHeap;
    mapping(uint256 round => mapping(uint256 proposalId => Proposal)) private _proposals;

    // ------------------------------------------------------------------ construction

    /// @param initialOwner the admin (two-step transferable)
    /// @param modelSpecHash_ hash of the frozen backbone and trainable layout all nodes share
    /// @param genesisModel_ binary CIDv1 of the initial trainable weights
    /// @param config_ the parameters and review policy round 1 opens with
    /// @param allowlistEnabled_ true for a consortium: only allowed addresses may register
    /// @dev Refuses a chain without the EIP-2537 precompiles: no seat could ever be verified.
    constructor(
        address initialOwner,
        bytes32 modelSpecHash_,
        bytes memory genesisModel_,
        Config memory config_,
        bool allowlistEnabled_
    ) Ownable(initialOwner) {
        if (modelSpecHash_ == bytes32(0)) {
            revert FlareRoundsInvalidConfig("modelSpecHash is zero");
        }
        _checkCid(genesisModel_.length);
        if (!BLS12381.precompilesAvailable()) revert FlareRoundsNoBlsPrecompiles();
        _modelSpecHash = modelSpecHash_;
        _genesisModel = genesisModel_;
        _allowlistEnabled = allowlistEnabled_;
        _storeConfig(config_, 1);
        emit AllowlistSet(allowlistEnabled_);
    }

    // ------------------------------------------------------------------ nodes

    /// @inheritdoc IFlareRounds
    function register(bytes calldata blsKey, bytes calldata proofOfPossession, bytes32 peerKey)
        external
        whenNotPaused
    {
        Node storage node = _nodes[msg.sender];
        if (node.registered) revert FlareRoundsAlreadyRegistered(msg.sender);
        if (_allowlistEnabled && !node.allowed) revert FlareRoundsNotAllowed(msg.sender);
        if (blsKey.length != BLS12381.G2_POINT_BYTES || BLS12381.isInfinity(blsKey)) {
            revert FlareRoundsInvalidBlsKey();
        }
        if (peerKey == bytes32(0)) revert FlareRoundsInvalidPeerKey();
        bytes32 keyHash = keccak256(blsKey);
        address keyOwner = _blsKeyOwner[keyHash];
        if (keyOwner != address(0) && keyOwner != msg.sender) {
            revert FlareRoundsBlsKeyTaken(keyHash, keyOwner);
        }
        bytes memory message = abi.encodePacked(block.chainid, address(this), msg.sender);
        if (!BLS12381.verify(blsKey, message, POP_DST, proofOfPossession)) {
            revert FlareRoundsInvalidPossessionProof(msg.sender);
        }

        // Keys registered once a round's seed is known only count from the next round.
        uint64 eligibleFrom = _currentRound + 1;
        _nodeCount += 1;
        node.registered = true;
        node.eligibleFrom = eligibleFrom;
        node.blsKeyHash = keyHash;
        node.peerKey = peerKey;
        if (keyOwner == address(0)) _blsKeyOwner[keyHash] = msg.sender;

        emit NodeRegistered(msg.sender, blsKey, peerKey, eligibleFrom);
    }

    /// @inheritdoc IFlareRounds
    function deregister() external whenNotPaused {
        if (!_nodes[msg.sender].registered) revert FlareRoundsNotRegistered(msg.sender);
        _removeNode(msg.sender, msg.sender);
    }

    // ------------------------------------------------------------------ rounds

    /// @inheritdoc IFlareRounds
    function submitUpdate(uint256 round, bytes calldata cid, uint256 numSamples)
        external
        whenNotPaused
    {
        _checkCid(cid.length);
        if (numSamples == 0) revert FlareRoundsZeroSamples();
        Round storage rd = _trainingRound(round);
        uint256 maxSamples = rd.maxSamples;
        if (numSamples > maxSamples) revert FlareRoundsTooManySamples(numSamples, maxSamples);
        _checkEligible(round, msg.sender);
        mapping(address => bytes32) storage updates = _updates[round];
        if (updates[msg.sender] != bytes32(0)) {
            revert FlareRoundsAlreadySubmitted(round, msg.sender);
        }

        updates[msg.sender] = keccak256(cid);
        rd.updateCount += 1;
        bool closes = _closesTraining(rd);

        emit UpdateSubmitted(round, msg.sender, cid, numSamples);
        if (closes) emit TrainingClosed(round, rd.closedAt, _reviewEnd(rd));
    }

    /// @inheritdoc IFlareRounds
    /// @dev The rank is checked before the proof, so a claim that could not win a seat costs no
    /// pairing. Seats form a max-heap of (rank, holder) words: filling a seat sifts up, evicting
    /// the root sifts down, each at most log2(k) levels.
    function claimSeat(uint256 round, bytes calldata proof, bytes calldata blsKey)
        external
        whenNotPaused
    {
        Round storage rd = _trainingRound(round);
        uint256 bits = _unclaimedFlags(round, blsKey);
        if (proof.length != BLS12381.G1_POINT_BYTES) {
            revert FlareRoundsInvalidProof(round, msg.sender);
        }
        bytes32 output = keccak256(proof);
        (uint256 seat, uint256 highest) = _rankedSeat(rd, round, output);
        if (!BLS12381.verify(blsKey, abi.encodePacked(rd.seed, round), VRF_DST, proof)) {
            revert FlareRoundsInvalidProof(round, msg.sender);
        }

        address evicted = _placeSeat(rd, round, seat, highest);
        _flags[round][msg.sender] = bits | CLAIMED | SEATED;
        rd.vrfAccumulator = keccak256(abi.encode(rd.vrfAccumulator, output));
        bool closes = _closesTraining(rd);

        emit SeatClaimed(round, msg.sender, output, proof, evicted);
        if (closes) emit TrainingClosed(round, rd.closedAt, _reviewEnd(rd));
    }

    /// @inheritdoc IFlareRounds
    function proposeAggregate(uint256 round, bytes calldata cid, bytes32 updatesRoot)
        external
        whenNotPaused
        returns (uint256 proposalId)
    {
        _checkCid(cid.length);
        Round storage rd = _reviewRound(round);
        uint256 bits = _seatHolderFlags(round, msg.sender);
        if (bits & PROPOSED != 0) revert FlareRoundsAlreadyProposed(round, msg.sender);

        // At most one proposal per seat, so ids stay <= k <= 64.
        uint8 id = rd.proposalCount + 1;
        rd.proposalCount = id;
        proposalId = id;
        _flags[round][msg.sender] = bits | PROPOSED;
        Proposal storage proposal = _proposals[round][proposalId];
        proposal.proposer = msg.sender;
        proposal.updatesRoot = updatesRoot;
        proposal.cid = cid;

        emit AggregateProposed(round, msg.sender, proposalId, cid, updatesRoot);
    }

    /// @inheritdoc IFlareRounds
    function vote(uint256 round, uint256 proposalId, bool approve) external whenNotPaused {
        Round storage rd = _reviewRound(round);
        uint256 bits = _seatHolderFlags(round, msg.sender);
        if (bits & VOTED != 0) revert FlareRoundsAlreadyVoted(round, msg.sender);
        if (proposalId == 0 || proposalId > rd.proposalCount) {
            revert FlareRoundsUnknownProposal(round, proposalId);
        }

        _flags[round][msg.sender] = bits | VOTED;
        Proposal storage proposal = _proposals[round][proposalId];
        uint32 approvals = proposal.approvals;
        bool finalizes = false;
        if (approve) {
            approvals += 1;
            proposal.approvals = approvals;
            finalizes = approvals >= rd.quorum;
        } else {
            proposal.rejections += 1;
        }
        // Only the current round can be in Review, so `round` fits the uint64 round counter.
        uint64 finalized = finalizes ? _currentRound : 0;
        if (finalizes) {
            // forge-lint: disable-next-line(unsafe-typecast) checked above: <= proposalCount
            rd.finalizedProposal = uint8(proposalId);
            _lastFinalizedRound = finalized;
        }

        emit VoteCast(round, msg.sender, proposalId, approve);
        if (finalizes) {
            bytes memory cid = proposal.cid;
            emit RoundFinalized(round, proposalId, cid, proposal.updatesRoot, approvals);
            _openRound(finalized + 1, finalized, cid);
        }
    }

    /// @inheritdoc IFlareRounds
    function closeRound(uint256 round) external whenNotPaused {
        Round storage rd = _rounds[round];
        Phase actual = _phase(round, rd);
        uint64 currentRound_ = _currentRound;
        if (round != currentRound_ || actual != Phase.Failed) {
            revert FlareRoundsNotClosable(round, actual);
        }
        FailureReason reason =
            rd.updateCount < rd.minUpdates ? FailureReason.TooFewUpdates : FailureReason.NoQuorum;
        uint64 baseRound = rd.baseRound;

        emit RoundFailed(round, reason);
        _openRound(currentRound_ + 1, baseRound, _modelOf(baseRound));
    }

    // ------------------------------------------------------------------ admin

    /// @inheritdoc IFlareRounds
    function start() external onlyOwner {
        if (_currentRound != 0) revert FlareRoundsAlreadyStarted();
        _openRound(1, 0, _genesisModel);
    }

    /// @inheritdoc IFlareRounds
    function allow(address node) external onlyOwner {
        _nodes[node].allowed = true;
        emit NodeAllowed(node);
    }

    /// @inheritdoc IFlareRounds
    function disallow(address node) external onlyOwner {
        Node storage entry = _nodes[node];
        entry.allowed = false;
        emit NodeDisallowed(node);
        if (entry.registered) _removeNode(node, msg.sender);
    }

    /// @inheritdoc IFlareRounds
    function setAllowlist(bool enabled) external onlyOwner {
        _allowlistEnabled = enabled;
        emit AllowlistSet(enabled);
    }

    /// @inheritdoc IFlareRounds
    function setConfig(Config calldata newConfig) external onlyOwner {
        _storeConfig(newConfig, uint256(_currentRound) + 1);
    }

    /// @inheritdoc IFlareRounds
    function pause() external onlyOwner {
        _pause();
    }

    /// @inheritdoc IFlareRounds
    function unpause() external onlyOwner {
        _unpause();
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IFlareRounds
    function version() external pure returns (uint256) {
        return INTERFACE_VERSION;
    }

    /// @inheritdoc IFlareRounds
    function modelSpecHash() external view returns (bytes32) {
        return _modelSpecHash;
    }

    /// @inheritdoc IFlareRounds
    function genesisModel() external view returns (bytes memory) {
        return _genesisModel;
    }

    /// @inheritdoc IFlareRounds
    function allowlistEnabled() external view returns (bool) {
        return _allowlistEnabled;
    }

    /// @inheritdoc IFlareRounds
    function config() external view returns (Config memory) {
        Params memory params = _params;
        return Config({
            committeeSize: params.committeeSize,
            quorumBps: params.quorumBps,
            trainWindow: params.trainWindow,
            reviewWindow: params.reviewWindow,
            minClaimWindow: params.minClaimWindow,
            minUpdates: params.minUpdates,
            maxSamples: params.maxSamples,
            reviewPolicy: _policies[_configId]
        });
    }

    /// @inheritdoc IFlareRounds
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @inheritdoc IFlareRounds
    function phase(uint256 round) external view returns (Phase) {
        return _phase(round, _rounds[round]);
    }

    /// @inheritdoc IFlareRounds
    function getRound(uint256 round) external view returns (RoundView memory view_) {
        Round storage rd = _rounds[round];
        view_.round = round;
        view_.phase = _phase(round, rd);
        if (view_.phase == Phase.None) return view_;
        view_.seed = rd.seed;
        view_.baseRound = rd.baseRound;
        view_.openedAt = rd.openedAt;
        view_.claimEnd = rd.claimEnd;
        view_.trainEnd = rd.trainEnd;
        view_.reviewStart = _reviewStart(rd);
        view_.reviewEnd = _reviewEnd(rd);
        view_.committeeSize = rd.committeeSize;
        view_.quorum = rd.quorum;
        view_.minUpdates = rd.minUpdates;
        view_.maxSamples = rd.maxSamples;
        view_.eligibleNodes = rd.eligibleNodes;
        view_.updateCount = rd.updateCount;
        view_.seatCount = rd.seatCount;
        view_.proposalCount = rd.proposalCount;
        view_.finalizedProposal = rd.finalizedProposal;
        view_.vrfAccumulator = rd.vrfAccumulator;
        view_.reviewPolicy = _policies[rd.configId];
    }

    /// @inheritdoc IFlareRounds
    function getNode(address node) external view returns (NodeView memory) {
        Node storage entry = _nodes[node];
        return NodeView({
            registered: entry.registered,
            allowed: entry.allowed,
            blsKeyHash: entry.blsKeyHash,
            peerKey: entry.peerKey,
            eligibleFrom: entry.eligibleFrom
        });
    }

    /// @inheritdoc IFlareRounds
    function blsKeyOwner(bytes32 blsKeyHash) external view returns (address) {
        return _blsKeyOwner[blsKeyHash];
    }

    /// @inheritdoc IFlareRounds
    function nodeCount() external view returns (uint256) {
        return _nodeCount;
    }

    /// @inheritdoc IFlareRounds
    function isEligible(uint256 round, address node) external view returns (bool) {
        return _eligible(round, _nodes[node]);
    }

    /// @inheritdoc IFlareRounds
    function updateOf(uint256 round, address node) external view returns (bytes32 cidHash) {
        return _updates[round][node];
    }

    /// @inheritdoc IFlareRounds
    function seats(uint256 round) external view returns (Seat[] memory list) {
        uint256 count = _rounds[round].seatCount;
        uint256[MAX_COMMITTEE_SIZE] storage heap = _seatHeap[round];
        list = new Seat[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint256 seat = heap[i];
            list[i] = Seat({holder: _holderOf(seat), rank: _rankOf(seat)});
        }
    }

    /// @inheritdoc IFlareRounds
    function isSeatHolder(uint256 round, address node) external view returns (bool) {
        return _flags[round][node] & SEATED != 0 && _eligible(round, _nodes[node]);
    }

    /// @inheritdoc IFlareRounds
    function hasVoted(uint256 round, address node) external view returns (bool) {
        return _flags[round][node] & VOTED != 0;
    }

    /// @inheritdoc IFlareRounds
    function getProposal(uint256 round, uint256 proposalId)
        external
        view
        returns (ProposalView memory)
    {
        if (proposalId == 0 || proposalId > _rounds[round].proposalCount) {
            revert FlareRoundsUnknownProposal(round, proposalId);
        }
        Proposal storage proposal = _proposals[round][proposalId];
        return ProposalView({
            proposer: proposal.proposer,
            cid: proposal.cid,
            updatesRoot: proposal.updatesRoot,
            approvals: proposal.approvals,
            rejections: proposal.rejections
        });
    }

    /// @inheritdoc IFlareRounds
    function globalModel() external view returns (uint256 round, bytes memory cid) {
        round = _lastFinalizedRound;
        cid = _modelOf(round);
    }

    /// @inheritdoc IFlareRounds
    function baseModel(uint256 round) external view returns (bytes memory cid) {
        uint256 current = _currentRound;
        if (round == 0 || round > current) revert FlareRoundsWrongRound(round, current);
        return _modelOf(_rounds[round].baseRound);
    }

    // ------------------------------------------------------------------ internals

    /// @dev The one place a phase is decided; every guard and view goes through it.
    function _phase(uint256 round, Round storage rd) private view returns (Phase) {
        uint256 current = _currentRound;
        if (round == 0 || round > current) return Phase.None;
        if (rd.finalizedProposal != 0) return Phase.Finalized;
        if (round < current) return Phase.Failed;
        uint256 reviewStart = _reviewStart(rd);
        if (block.timestamp < reviewStart) return Phase.Training;
        if (rd.updateCount < rd.minUpdates) return Phase.Failed;
        if (block.timestamp < reviewStart + rd.reviewWindow) return Phase.Review;
        return Phase.Failed;
    }

    /// @dev Guard of submitUpdate and claimSeat: the current round, still training.
    function _trainingRound(uint256 round) private view returns (Round storage rd) {
        uint256 current = _currentRound;
        if (current == 0) revert FlareRoundsNotStarted();
        if (round != current) revert FlareRoundsWrongRound(round, current);
        rd = _rounds[round];
        Phase actual = _phase(round, rd);
        if (actual != Phase.Training) revert FlareRoundsWrongPhase(round, Phase.Training, actual);
    }

    /// @dev Guard of proposeAggregate and vote: only the current round can be in Review.
    function _reviewRound(uint256 round) private view returns (Round storage rd) {
        if (_currentRound == 0) revert FlareRoundsNotStarted();
        rd = _rounds[round];
        Phase actual = _phase(round, rd);
        if (actual != Phase.Review) revert FlareRoundsWrongPhase(round, Phase.Review, actual);
    }

    function _eligible(uint256 round, Node storage entry) private view returns (bool) {
        return round != 0 && entry.registered && entry.eligibleFrom <= round;
    }

    function _checkEligible(uint256 round, address node) private view returns (Node storage entry) {
        entry = _nodes[node];
        if (!_eligible(round, entry)) revert FlareRoundsNotEligible(round, node);
    }

    /// @dev The caller's flags for `round` if it holds a seat there now: it won one, was not
    /// evicted, and has not left the federation since (a node removed mid-round loses its seat).
    function _seatHolderFlags(uint256 round, address node) private view returns (uint256 bits) {
        bits = _flags[round][node];
        if (bits & SEATED == 0 || !_eligible(round, _nodes[node])) {
            revert FlareRoundsNotSeatHolder(round, node);
        }
    }

    /// @dev The caller's flags for `round` if it may claim there: eligible, no claim yet, and
    /// `blsKey` is the key it registered (storage keeps only the key's hash).
    function _unclaimedFlags(uint256 round, bytes calldata blsKey)
        private
        view
        returns (uint256 bits)
    {
        Node storage node = _checkEligible(round, msg.sender);
        bits = _flags[round][msg.sender];
        if (bits & CLAIMED != 0) revert FlareRoundsAlreadyClaimed(round, msg.sender);
        bytes32 keyHash = keccak256(blsKey);
        if (keyHash != node.blsKeyHash) revert FlareRoundsWrongBlsKey(msg.sender, keyHash);
    }

    /// @dev The caller's heap word for `output`, and the root it must beat once all k seats are
    /// held (0 while a seat is free). Checked before the proof, so a claim that cannot win costs
    /// no pairing.
    function _rankedSeat(Round storage rd, uint256 round, bytes32 output)
        private
        view
        returns (uint256 seat, uint256 highest)
    {
        seat = (uint256(output) >> HOLDER_BITS << HOLDER_BITS) | uint160(msg.sender);
        if (rd.seatCount < rd.committeeSize) return (seat, 0);
        highest = _seatHeap[round][0];
        if (seat >= highest) {
            revert FlareRoundsOutputTooHigh(round, _rankOf(seat), _rankOf(highest));
        }
    }

    /// @dev Puts `seat` in the heap: into the first free place, or over the root (`highest`),
    /// whose holder loses its seat. Returns the evicted holder, or zero.
    function _placeSeat(Round storage rd, uint256 round, uint256 seat, uint256 highest)
        private
        returns (address evicted)
    {
        uint256[MAX_COMMITTEE_SIZE] storage heap = _seatHeap[round];
        uint8 count = rd.seatCount;
        uint8 k = rd.committeeSize;
        if (count < k) {
            rd.seatCount = count + 1;
            _siftUp(heap, count, seat);
            return address(0);
        }
        evicted = _holderOf(highest);
        _flags[round][evicted] &= ~SEATED;
        _siftDown(heap, k, seat);
    }

    /// @dev Training closes early once every eligible node has submitted and all k seats are
    /// held, but never before claimEnd: until then a lower output may still evict a seat, so the
    /// k lowest outputs win rather than the first k claims. The end is recorded once (it may lie
    /// ahead); reports whether this call recorded it.
    function _closesTraining(Round storage rd) private returns (bool) {
        if (rd.closedAt != 0) return false;
        if (rd.updateCount != rd.eligibleNodes || rd.seatCount != rd.committeeSize) return false;
        uint40 claimEnd = rd.claimEnd;
        // forge-lint: disable-next-line(unsafe-typecast) timestamps fit 40 bits until year 36812
        uint40 now_ = uint40(block.timestamp);
        rd.closedAt = now_ > claimEnd ? now_ : claimEnd;
        return true;
    }

    /// @dev Opens `round` on the current config; called by start, finalization and closeRound.
    /// The seed mixes the previous seed, prevrandao and the previous round's VRF accumulator, so
    /// even a chain with a constant prevrandao yields seeds nobody could predict.
    function _openRound(uint64 round, uint64 baseRound, bytes memory baseModel_) private {
        Params memory cfg = _params;
        uint32 configId = _configId;
        Round storage previous = _rounds[round - 1];
        bytes32 seed = keccak256(
            abi.encode(
                previous.seed, block.prevrandao, round, address(this), previous.vrfAccumulator
            )
        );
        // forge-lint: disable-next-line(unsafe-typecast) timestamps fit 40 bits until year 36812
        uint40 now_ = uint40(block.timestamp);
        uint256 approvalsNeeded = _quorum(cfg.committeeSize, cfg.quorumBps);

        Round storage rd = _rounds[round];
        _rounds[round] = Round({
            trainEnd: now_ + cfg.trainWindow,
            closedAt: 0,
            claimEnd: now_ + cfg.minClaimWindow,
            eligibleNodes: _nodeCount,
            updateCount: 0,
            minUpdates: cfg.minUpdates,
            // forge-lint: disable-next-line(unsafe-typecast) validated: 1..64
            committeeSize: uint8(cfg.committeeSize),
            // forge-lint: disable-next-line(unsafe-typecast) ceil(k * bps / 10000) <= k <= 64
            quorum: uint8(approvalsNeeded),
            seatCount: 0,
            proposalCount: 0,
            finalizedProposal: 0,
            seed: seed,
            vrfAccumulator: seed,
            openedAt: now_,
            baseRound: baseRound,
            reviewWindow: cfg.reviewWindow,
            maxSamples: cfg.maxSamples,
            configId: configId
        });
        _currentRound = round;

        _emitRoundOpened(round, rd, baseModel_);
    }

    function _emitRoundOpened(uint256 round, Round storage rd, bytes memory baseModel_) private {
        RoundParams memory params = RoundParams({
            trainEnd: rd.trainEnd,
            claimEnd: rd.claimEnd,
            reviewWindow: rd.reviewWindow,
            committeeSize: rd.committeeSize,
            quorum: rd.quorum,
            minUpdates: rd.minUpdates,
            maxSamples: rd.maxSamples,
            eligibleNodes: rd.eligibleNodes
        });
        emit RoundOpened(round, rd.seed, rd.baseRound, baseModel_, params, _policies[rd.configId]);
    }

    /// @dev Checks and stores a config, its policy under a new id, and emits ConfigSet.
    function _storeConfig(Config memory cfg, uint256 effectiveFrom) private {
        _checkConfig(cfg);
        uint32 configId = _configId + 1;
        _params = Params({
            committeeSize: cfg.committeeSize,
            quorumBps: cfg.quorumBps,
            trainWindow: cfg.trainWindow,
            reviewWindow: cfg.reviewWindow,
            minClaimWindow: cfg.minClaimWindow,
            minUpdates: cfg.minUpdates,
            maxSamples: cfg.maxSamples
        });
        _configId = configId;
        _policies[configId] = cfg.reviewPolicy;
        emit ConfigSet(cfg, effectiveFrom);
    }

    /// @dev eligibleNodes snapshots of open rounds stay as they were, so a departure only means
    /// that round cannot close training early; the node loses its seat there (`_eligible`).
    function _removeNode(address node, address by) private {
        Node storage entry = _nodes[node];
        _nodeCount -= 1;
        entry.registered = false;
        entry.eligibleFrom = 0;
        emit NodeDeregistered(node, by);
    }

    /// @dev Fills seat `count` (the first free one) with `seat`, moving higher parents down.
    function _siftUp(uint256[MAX_COMMITTEE_SIZE] storage heap, uint256 index, uint256 seat)
        private
    {
        while (index != 0) {
            uint256 parent = (index - 1) / 2;
            uint256 above = heap[parent];
            if (above > seat) break;
            heap[index] = above;
            index = parent;
        }
        heap[index] = seat;
    }

    /// @dev Replaces the root (the highest seat) with `seat`, moving higher children up.
    function _siftDown(uint256[MAX_COMMITTEE_SIZE] storage heap, uint256 k, uint256 seat) private {
        uint256 index = 0;
        while (true) {
            uint256 child = 2 * index + 1;
            if (child >= k) break;
            uint256 larger = heap[child];
            if (child + 1 < k) {
                uint256 right = heap[child + 1];
                if (right > larger) {
                    larger = right;
                    child += 1;
                }
            }
            if (larger < seat) break;
            heap[index] = larger;
            index = child;
        }
        heap[index] = seat;
    }

    function _rankOf(uint256 seat) private pure returns (uint96) {
        // forge-lint: disable-next-line(unsafe-typecast) a seat word's high 96 bits are its rank
        return uint96(seat >> HOLDER_BITS);
    }

    function _holderOf(uint256 seat) private pure returns (address) {
        // forge-lint: disable-next-line(unsafe-typecast) a seat word's low 160 bits are its holder
        return address(uint160(seat));
    }

    /// @dev The CID of the model finalized in `round`; round 0 is the genesis model.
    function _modelOf(uint256 round) private view returns (bytes memory) {
        // slither-disable-next-line incorrect-equality (a round number, not a timestamp)
        if (round == 0) return _genesisModel;
        return _proposals[round][_rounds[round].finalizedProposal].cid;
    }

    function _reviewStart(Round storage rd) private view returns (uint64) {
        uint40 closedAt = rd.closedAt;
        return closedAt == 0 ? rd.trainEnd : closedAt;
    }

    function _reviewEnd(Round storage rd) private view returns (uint64) {
        return _reviewStart(rd) + rd.reviewWindow;
    }

    /// @dev Approvals a proposal needs: ceil(k * quorumBps / 10000).
    function _quorum(uint256 committeeSize, uint256 quorumBps) private pure returns (uint256) {
        return (committeeSize * quorumBps + MAX_QUORUM_BPS - 1) / MAX_QUORUM_BPS;
    }

    function _checkCid(uint256 length) private pure {
        if (length == 0 || length > MAX_CID_LENGTH) revert FlareRoundsInvalidCid(length);
    }

    /// @dev Refuses configs that make no sense: with a quorum of half the seats or fewer, a
    /// minority of the committee could finalize a model the honest majority rejects; a
    /// committee beyond the seat array cannot be stored.
    function _checkConfig(Config memory cfg) private pure {
        if (cfg.committeeSize == 0 || cfg.committeeSize > MAX_COMMITTEE_SIZE) {
            revert FlareRoundsInvalidConfig("committeeSize must be 1..64");
        }
        if (cfg.quorumBps == 0 || cfg.quorumBps > MAX_QUORUM_BPS) {
            revert FlareRoundsInvalidConfig("quorumBps must be 1..10000");
        }
        // A rounded-up quotient compared with k: the division comes first by design.
        // slither-disable-next-line divide-before-multiply
        if (2 * _quorum(cfg.committeeSize, cfg.quorumBps) <= cfg.committeeSize) {
            revert FlareRoundsInvalidConfig("quorum must be more than half of committeeSize");
        }
        if (cfg.trainWindow == 0) revert FlareRoundsInvalidConfig("trainWindow must be > 0");
        if (cfg.reviewWindow == 0) revert FlareRoundsInvalidConfig("reviewWindow must be > 0");
        if (cfg.minClaimWindow > cfg.trainWindow) {
            revert FlareRoundsInvalidConfig("minClaimWindow must be <= trainWindow");
        }
        if (cfg.minUpdates == 0) revert FlareRoundsInvalidConfig("minUpdates must be >= 1");
        if (cfg.maxSamples == 0) revert FlareRoundsInvalidConfig("maxSamples must be >= 1");
        if (cfg.reviewPolicy.length == 0 || cfg.reviewPolicy.length > MAX_CID_LENGTH) {
            revert FlareRoundsInvalidConfig("reviewPolicy must be a CID of 1..128 bytes");
        }
    }
}
