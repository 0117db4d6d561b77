// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IFlareRounds
/// @notice The round protocol of flare-node: registration, training rounds, VRF-ranked committee
/// seats, aggregate proposals and votes. Events are the audit log: every round can be rebuilt
/// from them alone. Phases are derived from stored timestamps and counters, never stored.
interface IFlareRounds {
    // ------------------------------------------------------------------ types

    /// @notice Where a round stands. `None` is a round not opened yet.
    enum Phase {
        None,
        Training,
        Review,
        Finalized,
        Failed
    }

    /// @notice Why a round failed.
    enum FailureReason {
        TooFewUpdates,
        NoQuorum
    }

    /// @notice Parameters a round is opened with; changes apply from the next opened round.
    /// @param committeeSize k, the number of seats (1..64)
    /// @param quorumBps approvals needed, in basis points of k, rounded up (1..10000)
    /// @param trainWindow seconds of Training
    /// @param reviewWindow seconds of Review
    /// @param minUpdates updates a round needs to enter Review (>= 1)
    struct Config {
        uint16 committeeSize;
        uint16 quorumBps;
        uint32 trainWindow;
        uint32 reviewWindow;
        uint32 minUpdates;
    }

    /// @notice The stored facts of a round and what derives from them.
    struct RoundView {
        uint256 round;
        Phase phase;
        bytes32 seed;
        uint256 baseRound; // the round whose model is this round's base; 0 = genesis
        uint64 openedAt;
        uint64 trainEnd; // training closes at this timestamp unless it closed early
        uint64 reviewStart; // trainEnd, or the moment training closed early
        uint64 reviewEnd;
        uint16 committeeSize;
        uint16 quorum; // approvals needed: ceil(k * quorumBps / 10000)
        uint32 minUpdates;
        uint32 eligibleNodes; // registered before the round opened
        uint32 updateCount;
        uint16 seatCount;
        uint32 proposalCount;
        uint32 finalizedProposal; // 0 until finalized; proposal ids start at 1
    }

    struct NodeView {
        bool registered;
        bool allowed;
        bytes32 vrfPublicKey;
        uint256 eligibleFrom; // first round this node may take part in
    }

    struct Seat {
        address holder;
        bytes32 output; // first 32 bytes of the VRF output beta, ranked as a uint256
    }

    struct ProposalView {
        address proposer;
        bytes cid;
        bytes32 updatesRoot;
        uint32 approvals;
        uint32 rejections;
    }

    // ------------------------------------------------------------------ events

    event NodeRegistered(address indexed node, bytes32 vrfPublicKey, uint256 indexed eligibleFrom);
    event NodeDeregistered(address indexed node, address indexed by);
    event NodeAllowed(address indexed node);
    event NodeDisallowed(address indexed node);
    event AllowlistSet(bool enabled);
    event ConfigSet(Config config, uint256 indexed effectiveFrom);
    event RoundOpened(
        uint256 indexed round,
        bytes32 seed,
        uint256 baseRound,
        bytes baseModel,
        uint64 trainEnd,
        uint32 reviewWindow,
        uint16 committeeSize,
        uint16 quorum,
        uint32 minUpdates,
        uint32 eligibleNodes
    );
    event UpdateSubmitted(uint256 indexed round, address indexed node, bytes cid, uint256 numSamples);
    event SeatClaimed(uint256 indexed round, address indexed node, bytes32 output, bytes proof, address evicted);
    event TrainingClosed(uint256 indexed round, uint64 reviewEnd);
    event AggregateProposed(
        uint256 indexed round, address indexed proposer, uint256 indexed proposalId, bytes cid, bytes32 updatesRoot
    );
    event VoteCast(uint256 indexed round, address indexed node, uint256 indexed proposalId, bool approve);
    event RoundFinalized(uint256 indexed round, uint256 indexed proposalId, bytes cid, bytes32 updatesRoot, uint32 approvals);
    event RoundFailed(uint256 indexed round, FailureReason reason);

    // ------------------------------------------------------------------ errors

    error FlareRoundsNotAllowed(address node);
    error FlareRoundsAlreadyRegistered(address node);
    error FlareRoundsNotRegistered(address node);
    error FlareRoundsInvalidVrfKey();
    error FlareRoundsVrfKeyTaken(bytes32 vrfPublicKey, address owner);
    error FlareRoundsNotStarted();
    error FlareRoundsAlreadyStarted();
    error FlareRoundsWrongRound(uint256 round, uint256 currentRound);
    error FlareRoundsWrongPhase(uint256 round, Phase expected, Phase actual);
    error FlareRoundsNotEligible(uint256 round, address node);
    error FlareRoundsAlreadySubmitted(uint256 round, address node);
    error FlareRoundsInvalidCid(uint256 length);
    error FlareRoundsZeroSamples();
    error FlareRoundsAlreadyClaimed(uint256 round, address node);
    error FlareRoundsInvalidProof(uint256 length);
    error FlareRoundsOutputTooHigh(uint256 round, bytes32 output, bytes32 highestSeat);
    error FlareRoundsNotSeatHolder(uint256 round, address node);
    error FlareRoundsAlreadyProposed(uint256 round, address node);
    error FlareRoundsUnknownProposal(uint256 round, uint256 proposalId);
    error FlareRoundsAlreadyVoted(uint256 round, address node);
    error FlareRoundsNotClosable(uint256 round, Phase phase);
    error FlareRoundsInvalidConfig(string reason);

    // ------------------------------------------------------------------ nodes

    /// @notice Join with the ed25519 VRF public key (32 bytes, unique across nodes).
    function register(bytes32 vrfPublicKey) external;

    /// @notice Leave; the node stops counting for rounds opened later.
    function deregister() external;

    // ------------------------------------------------------------------ rounds

    /// @notice Register the CID of this node's update bundle for round `round`.
    function submitUpdate(uint256 round, bytes calldata cid, uint256 numSamples) external;

    /// @notice Claim a committee seat with an ECVRF proof (80 bytes) over alpha = seed || round.
    /// @param output the first 32 bytes of beta = proof_to_hash(proof); verified off-chain in v1
    function claimSeat(uint256 round, bytes32 output, bytes calldata proof) external;

    /// @notice A seat holder proposes the aggregate; `updatesRoot` commits to the included updates.
    function proposeAggregate(uint256 round, bytes calldata cid, bytes32 updatesRoot)
        external
        returns (uint256 proposalId);

    /// @notice One vote per seat holder per round; quorum finalizes and opens the next round.
    function vote(uint256 round, uint256 proposalId, bool approve) external;

    /// @notice Record a failed round and open the next one. Anyone may call it.
    function closeRound(uint256 round) external;

    // ------------------------------------------------------------------ admin

    function start() external;
    function allow(address node) external;
    function disallow(address node) external;
    function setAllowlist(bool enabled) external;
    function setConfig(Config calldata config) external;
    function pause() external;
    function unpause() external;

    // ------------------------------------------------------------------ views

    function modelSpecHash() external view returns (bytes32);
    function genesisModel() external view returns (bytes memory);
    function allowlistEnabled() external view returns (bool);
    function config() external view returns (Config memory);
    function currentRound() external view returns (uint256);
    function phase(uint256 round) external view returns (Phase);
    function getRound(uint256 round) external view returns (RoundView memory);
    function getNode(address node) external view returns (NodeView memory);
    function nodeCount() external view returns (uint256);
    function nodes(uint256 offset, uint256 limit) external view returns (address[] memory);
    function isEligible(uint256 round, address node) external view returns (bool);
    function updateOf(uint256 round, address node) external view returns (bytes32 cidHash);
    function seats(uint256 round) external view returns (Seat[] memory);
    function isSeatHolder(uint256 round, address node) external view returns (bool);
    function hasVoted(uint256 round, address node) external view returns (bool);
    function getProposal(uint256 round, uint256 proposalId) external view returns (ProposalView memory);
    /// @notice The latest finalized global model (round 0 = genesis).
    function globalModel() external view returns (uint256 round, bytes memory cid);
    /// @notice The model a round trains from.
    function baseModel(uint256 round) external view returns (bytes memory cid);
}
