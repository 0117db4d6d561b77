// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "./IFlareRounds.sol";

/// @title FlareRounds
/// @notice The single source of truth of a flare-node federation: who takes part, which update
/// each node submitted in each round, who sits on each round's committee, and which aggregate
/// became the global model. Nodes and auditors rebuild everything from the events.
/// @dev Phases are derived from stored timestamps and counters by `_phase` (as OpenZeppelin's
/// `Governor.state()` does); no status is ever stored. Storage is laid out for the hot paths:
/// every check and counter of `submitUpdate`, `claimSeat` and `vote` lives in the first slot of
/// `Round`, and a node's per-round flags share one word. There are no external calls, so every
/// function is checks -> effects -> events.
contract FlareRounds is IFlareRounds, Ownable2Step, Pausable {
    // ------------------------------------------------------------------ constants

    uint256 private constant MAX_COMMITTEE_SIZE = 64;
    uint256 private constant MAX_QUORUM_BPS = 10_000;
    uint256 private constant MAX_CID_LENGTH = 128;
    uint256 private constant PROOF_LENGTH = 80;

    // Bits of a node's flags word for one round.
    uint256 private constant CLAIMED = 1;
    uint256 private constant SEATED = 2;
    uint256 private constant PROPOSED = 4;
    uint256 private constant VOTED = 8;

    // ------------------------------------------------------------------ storage types

    /// @dev Slot 0 holds everything the round transactions read or count (224 bits), so each of
    /// them touches one round slot. k <= 64 bounds seats and proposals, hence the uint8 fields.
    struct Round {
        uint40 trainEnd;
        uint40 closedAt; // when training closed early; 0 if it did not
        uint32 reviewWindow;
        uint32 minUpdates;
        uint32 eligibleNodes;
        uint32 updateCount;
        uint8 committeeSize;
        uint8 quorum;
        uint8 seatCount;
        uint8 highestSeat; // index of the highest output among the seats
        uint8 proposalCount;
        uint8 finalizedProposal; // 0 until finalized
        bytes32 seed;
        uint40 openedAt;
        uint64 baseRound;
    }

    struct Node {
        bool registered;
        bool allowed;
        uint64 eligibleFrom;
        uint32 index; // 1-based position in `_nodeList` while registered
        bytes32 vrfPublicKey; // kept after deregistration: the key stays bound to this address
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
    Config private _config;

    uint64 private _currentRound;
    uint64 private _lastFinalizedRound;
    /// @custom:security write-protection="onlyOwner()"
    bool private _allowlistEnabled;

    address[] private _nodeList;
    mapping(address node => Node) private _nodes;
    mapping(bytes32 vrfPublicKey => address node) private _vrfKeyOwner;

    mapping(uint256 round => Round) private _rounds;
    mapping(uint256 round => mapping(address node => bytes32 cidHash)) private _updates;
    mapping(uint256 round => mapping(address node => uint256 bits)) private _flags;
    mapping(uint256 round => bytes32[MAX_COMMITTEE_SIZE]) private _seatOutputs;
    mapping(uint256 round => address[MAX_COMMITTEE_SIZE]) private _seatHolders;
    mapping(uint256 round => mapping(uint256 proposalId => Proposal)) private _proposals;

    // ------------------------------------------------------------------ construction

    /// @param initialOwner the admin (two-step transferable)
    /// @param modelSpecHash_ hash of the frozen backbone and trainable layout all nodes share
    /// @param genesisModel_ binary CIDv1 of the initial trainable weights
    /// @param config_ the parameters round 1 opens with
    /// @param allowlistEnabled_ true for a consortium: only allowed addresses may register
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
        _checkConfig(config_);
        _modelSpecHash = modelSpecHash_;
        _genesisModel = genesisModel_;
        _config = config_;
        _allowlistEnabled = allowlistEnabled_;
        emit ConfigSet(config_, 1);
        emit AllowlistSet(allowlistEnabled_);
    }

    // ------------------------------------------------------------------ nodes

    /// @inheritdoc IFlareRounds
    function register(bytes32 vrfPublicKey) external whenNotPaused {
        Node storage node = _nodes[msg.sender];
        if (node.registered) revert FlareRoundsAlreadyRegistered(msg.sender);
        if (_allowlistEnabled && !node.allowed) revert FlareRoundsNotAllowed(msg.sender);
        if (vrfPublicKey == bytes32(0)) revert FlareRoundsInvalidVrfKey();
        address keyOwner = _vrfKeyOwner[vrfPublicKey];
        if (keyOwner != address(0) && keyOwner != msg.sender) {
            revert FlareRoundsVrfKeyTaken(vrfPublicKey, keyOwner);
        }

        // Keys registered once a round's seed is known only count from the next round.
        uint64 eligibleFrom = _currentRound + 1;
        _nodeList.push(msg.sender);
        node.registered = true;
        node.eligibleFrom = eligibleFrom;
        // forge-lint: disable-next-line(unsafe-typecast) 2^32 registered nodes cannot happen
        node.index = uint32(_nodeList.length);
        node.vrfPublicKey = vrfPublicKey;
        if (keyOwner == address(0)) _vrfKeyOwner[vrfPublicKey] = msg.sender;

        emit NodeRegistered(msg.sender, vrfPublicKey, eligibleFrom);
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
        _checkEligible(round, msg.sender);
        mapping(address => bytes32) storage updates = _updates[round];
        if (updates[msg.sender] != bytes32(0)) {
            revert FlareRoundsAlreadySubmitted(round, msg.sender);
        }

        updates[msg.sender] = keccak256(cid);
        rd.updateCount += 1;
        bool closes = _closesTraining(rd);

        emit UpdateSubmitted(round, msg.sender, cid, numSamples);
        if (closes) emit TrainingClosed(round, _reviewEnd(rd));
    }

    /// @inheritdoc IFlareRounds
    /// @dev Seats are an unsorted array plus the index of the highest output: a claim costs one
    /// comparison until the committee is full, and a rescan of k outputs when it evicts.
    function claimSeat(uint256 round, bytes32 output, bytes calldata proof) external whenNotPaused {
        if (proof.length != PROOF_LENGTH) revert FlareRoundsInvalidProof(proof.length);
        Round storage rd = _trainingRound(round);
        _checkEligible(round, msg.sender);
        mapping(address => uint256) storage flags = _flags[round];
        if (flags[msg.sender] & CLAIMED != 0) revert FlareRoundsAlreadyClaimed(round, msg.sender);

        uint8 count = rd.seatCount;
        uint8 k = rd.committeeSize;
        uint8 seat = count;
        address evicted = address(0);
        if (count < k) {
            rd.seatCount = count + 1;
            if (count != 0 && output > _seatOutputs[round][rd.highestSeat]) rd.highestSeat = count;
            _seatOutputs[round][seat] = output;
        } else {
            seat = rd.highestSeat;
            bytes32 highest = _seatOutputs[round][seat];
            if (output >= highest) revert FlareRoundsOutputTooHigh(round, output, highest);
            evicted = _seatHolders[round][seat];
            flags[evicted] &= ~SEATED;
            _seatOutputs[round][seat] = output;
            rd.highestSeat = _highestSeat(round, k);
        }
        _seatHolders[round][seat] = msg.sender;
        flags[msg.sender] |= CLAIMED | SEATED;
        bool closes = _closesTraining(rd);

        emit SeatClaimed(round, msg.sender, output, proof, evicted);
        if (closes) emit TrainingClosed(round, _reviewEnd(rd));
    }

    /// @inheritdoc IFlareRounds
    function proposeAggregate(uint256 round, bytes calldata cid, bytes32 updatesRoot)
        external
        whenNotPaused
        returns (uint256 proposalId)
    {
        _checkCid(cid.length);
        Round storage rd = _reviewRound(round);
        uint256 bits = _flags[round][msg.sender];
        if (bits & SEATED == 0) revert FlareRoundsNotSeatHolder(round, msg.sender);
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
        uint256 bits = _flags[round][msg.sender];
        if (bits & SEATED == 0) revert FlareRoundsNotSeatHolder(round, msg.sender);
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
        _checkConfig(newConfig);
        _config = newConfig;
        emit ConfigSet(newConfig, uint256(_currentRound) + 1);
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
        return _config;
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
        view_.trainEnd = rd.trainEnd;
        view_.reviewStart = _reviewStart(rd);
        view_.reviewEnd = _reviewEnd(rd);
        view_.committeeSize = rd.committeeSize;
        view_.quorum = rd.quorum;
        view_.minUpdates = rd.minUpdates;
        view_.eligibleNodes = rd.eligibleNodes;
        view_.updateCount = rd.updateCount;
        view_.seatCount = rd.seatCount;
        view_.proposalCount = rd.proposalCount;
        view_.finalizedProposal = rd.finalizedProposal;
    }

    /// @inheritdoc IFlareRounds
    function getNode(address node) external view returns (NodeView memory) {
        Node storage entry = _nodes[node];
        return NodeView({
            registered: entry.registered,
            allowed: entry.allowed,
            vrfPublicKey: entry.vrfPublicKey,
            eligibleFrom: entry.eligibleFrom
        });
    }

    /// @inheritdoc IFlareRounds
    function nodeCount() external view returns (uint256) {
        return _nodeList.length;
    }

    /// @inheritdoc IFlareRounds
    function nodes(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        uint256 total = _nodeList.length;
        if (offset >= total) return new address[](0);
        uint256 end = limit > total - offset ? total : offset + limit;
        page = new address[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = _nodeList[i];
        }
    }

    /// @inheritdoc IFlareRounds
    function isEligible(uint256 round, address node) external view returns (bool) {
        Node storage entry = _nodes[node];
        return round != 0 && entry.registered && entry.eligibleFrom <= round;
    }

    /// @inheritdoc IFlareRounds
    function updateOf(uint256 round, address node) external view returns (bytes32 cidHash) {
        return _updates[round][node];
    }

    /// @inheritdoc IFlareRounds
    function seats(uint256 round) external view returns (Seat[] memory list) {
        uint256 count = _rounds[round].seatCount;
        list = new Seat[](count);
        for (uint256 i = 0; i < count; ++i) {
            list[i] = Seat({holder: _seatHolders[round][i], output: _seatOutputs[round][i]});
        }
    }

    /// @inheritdoc IFlareRounds
    function isSeatHolder(uint256 round, address node) external view returns (bool) {
        return _flags[round][node] & SEATED != 0;
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
        uint256 closedAt = rd.closedAt;
        uint256 trainEnd = rd.trainEnd;
        if (closedAt == 0 && block.timestamp < trainEnd) return Phase.Training;
        if (rd.updateCount < rd.minUpdates) return Phase.Failed;
        uint256 reviewStart = closedAt == 0 ? trainEnd : closedAt;
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

    function _checkEligible(uint256 round, address node) private view {
        Node storage entry = _nodes[node];
        if (!entry.registered || entry.eligibleFrom > round) {
            revert FlareRoundsNotEligible(round, node);
        }
    }

    /// @dev Training closes early once every eligible node has submitted and all k seats are
    /// held; nothing is left to wait for. Records the moment and reports whether it happened.
    function _closesTraining(Round storage rd) private returns (bool) {
        if (rd.updateCount != rd.eligibleNodes || rd.seatCount != rd.committeeSize) return false;
        // forge-lint: disable-next-line(unsafe-typecast) timestamps fit 40 bits until year 36812
        rd.closedAt = uint40(block.timestamp);
        return true;
    }

    /// @dev Opens `round` on the current config; called by start, finalization and closeRound.
    function _openRound(uint64 round, uint64 baseRound, bytes memory baseModel_) private {
        Config memory cfg = _config;
        bytes32 seed =
            keccak256(abi.encode(_rounds[round - 1].seed, block.prevrandao, round, address(this)));
        // forge-lint: disable-next-line(unsafe-typecast) timestamps fit 40 bits until year 36812
        uint40 now_ = uint40(block.timestamp);
        uint40 trainEnd = now_ + cfg.trainWindow;
        uint256 approvalsNeeded =
            (uint256(cfg.committeeSize) * cfg.quorumBps + MAX_QUORUM_BPS - 1) / MAX_QUORUM_BPS;
        // forge-lint: disable-next-line(unsafe-typecast) ceil(k * bps / 10000) <= k <= 64
        uint8 quorum = uint8(approvalsNeeded);
        // forge-lint: disable-next-line(unsafe-typecast) 2^32 registered nodes cannot happen
        uint32 eligibleNodes = uint32(_nodeList.length);

        _rounds[round] = Round({
            trainEnd: trainEnd,
            closedAt: 0,
            reviewWindow: cfg.reviewWindow,
            minUpdates: cfg.minUpdates,
            eligibleNodes: eligibleNodes,
            updateCount: 0,
            // forge-lint: disable-next-line(unsafe-typecast) validated: 1..64
            committeeSize: uint8(cfg.committeeSize),
            quorum: quorum,
            seatCount: 0,
            highestSeat: 0,
            proposalCount: 0,
            finalizedProposal: 0,
            seed: seed,
            openedAt: now_,
            baseRound: baseRound
        });
        _currentRound = round;

        emit RoundOpened(
            round,
            seed,
            baseRound,
            baseModel_,
            trainEnd,
            cfg.reviewWindow,
            cfg.committeeSize,
            quorum,
            cfg.minUpdates,
            eligibleNodes
        );
    }

    /// @dev Swap-and-pop keeps `nodes()` dense; eligibleNodes snapshots of open rounds stay as
    /// they were, so a departure only means that round cannot close training early.
    function _removeNode(address node, address by) private {
        Node storage entry = _nodes[node];
        uint256 index = entry.index;
        uint256 last = _nodeList.length;
        if (index != last) {
            address moved = _nodeList[last - 1];
            _nodeList[index - 1] = moved;
            _nodes[moved].index = entry.index;
        }
        _nodeList.pop();
        entry.registered = false;
        entry.eligibleFrom = 0;
        entry.index = 0;
        emit NodeDeregistered(node, by);
    }

    function _highestSeat(uint256 round, uint8 k) private view returns (uint8 index) {
        bytes32[MAX_COMMITTEE_SIZE] storage outputs = _seatOutputs[round];
        bytes32 highest = outputs[0];
        for (uint8 i = 1; i < k; ++i) {
            bytes32 value = outputs[i];
            if (value > highest) {
                highest = value;
                index = i;
            }
        }
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

    function _checkCid(uint256 length) private pure {
        if (length == 0 || length > MAX_CID_LENGTH) revert FlareRoundsInvalidCid(length);
    }

    function _checkConfig(Config memory cfg) private pure {
        if (cfg.committeeSize == 0 || cfg.committeeSize > MAX_COMMITTEE_SIZE) {
            revert FlareRoundsInvalidConfig("committeeSize must be 1..64");
        }
        if (cfg.quorumBps == 0 || cfg.quorumBps > MAX_QUORUM_BPS) {
            revert FlareRoundsInvalidConfig("quorumBps must be 1..10000");
        }
        if (cfg.trainWindow == 0) revert FlareRoundsInvalidConfig("trainWindow must be > 0");
        if (cfg.reviewWindow == 0) revert FlareRoundsInvalidConfig("reviewWindow must be > 0");
        if (cfg.minUpdates == 0) revert FlareRoundsInvalidConfig("minUpdates must be >= 1");
    }
}
