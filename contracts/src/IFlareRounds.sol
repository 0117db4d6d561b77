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

    /// @notice `node` joined with `vrfPublicKey`; it may take part from round `eligibleFrom`.
    event NodeRegistered(address indexed node, bytes32 vrfPublicKey, uint256 indexed eligibleFrom);
    /// @notice `node` left; `by` is the node itself, or the owner through disallow().
    event NodeDeregistered(address indexed node, address indexed by);
    /// @notice The owner allowed `node` to register while the allowlist is on.
    event NodeAllowed(address indexed node);
    /// @notice The owner withdrew `node`'s permission.
    event NodeDisallowed(address indexed node);
    /// @notice The allowlist was turned on or off (also emitted at deployment).
    event AllowlistSet(bool enabled);
    /// @notice Rounds opened from `effectiveFrom` on use `config` (also emitted at deployment).
    event ConfigSet(Config config, uint256 indexed effectiveFrom);
    /// @notice Round `round` opened with everything a node needs to take part and an auditor
    /// needs to check it: its seed, its base model and the parameters it snapshotted.
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
    /// @notice `node` submitted the update bundle `cid` trained on `numSamples` samples.
    event UpdateSubmitted(
        uint256 indexed round, address indexed node, bytes cid, uint256 numSamples
    );
    /// @notice `node` took a seat with `output` and its VRF `proof` (check it off-chain);
    /// `evicted` lost its seat to it, or is zero when a seat was free.
    event SeatClaimed(
        uint256 indexed round, address indexed node, bytes32 output, bytes proof, address evicted
    );
    /// @notice Every eligible node submitted and all seats are held: Review started early and
    /// ends at `reviewEnd`.
    event TrainingClosed(uint256 indexed round, uint64 reviewEnd);
    /// @notice Seat holder `proposer` proposed aggregate `cid` over the updates `updatesRoot`
    /// commits to.
    event AggregateProposed(
        uint256 indexed round,
        address indexed proposer,
        uint256 indexed proposalId,
        bytes cid,
        bytes32 updatesRoot
    );
    /// @notice Seat holder `node` voted on proposal `proposalId`.
    event VoteCast(
        uint256 indexed round, address indexed node, uint256 indexed proposalId, bool approve
    );
    /// @notice Proposal `proposalId` reached the quorum: `cid` is the new global model.
    event RoundFinalized(
        uint256 indexed round,
        uint256 indexed proposalId,
        bytes cid,
        bytes32 updatesRoot,
        uint32 approvals
    );
    /// @notice Round `round` ended without a model, for `reason`; the next round keeps its base.
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

    /// @notice Join with the ed25519 VRF public key (32 bytes, unique across nodes). A node that
    /// registers while round c is open is eligible from round c + 1, so nobody can pick a key
    /// once a round's seed is known. A key stays bound to the first address that registered it.
    /// @dev Reverts FlareRoundsAlreadyRegistered, FlareRoundsNotAllowed (allowlist on and not
    /// allowed), FlareRoundsInvalidVrfKey (zero key), FlareRoundsVrfKeyTaken; whenNotPaused.
    function register(bytes32 vrfPublicKey) external;

    /// @notice Leave; the node stops counting for rounds opened later. Snapshots of rounds already
    /// open are not changed, and a seat already held is kept for that round.
    /// @dev Reverts FlareRoundsNotRegistered; whenNotPaused.
    function deregister() external;

    // ------------------------------------------------------------------ rounds

    /// @notice Register the CID of this node's update bundle for round `round`. Storage keeps
    /// keccak256(cid) (see updateOf); the UpdateSubmitted event carries the full CID.
    /// @param cid binary CIDv1, 1..128 bytes
    /// @param numSamples training samples behind the update (> 0), the FedAvg weight
    /// @dev Reverts FlareRoundsInvalidCid, FlareRoundsZeroSamples, FlareRoundsNotStarted,
    /// FlareRoundsWrongRound (not the current round), FlareRoundsWrongPhase (not Training),
    /// FlareRoundsNotEligible, FlareRoundsAlreadySubmitted; whenNotPaused. May close training
    /// early (TrainingClosed).
    function submitUpdate(uint256 round, bytes calldata cid, uint256 numSamples) external;

    /// @notice Claim a committee seat with an ECVRF proof (80 bytes) over alpha = seed || round.
    /// The contract keeps the k lowest outputs; once k are held, a claim must be lower than the
    /// highest held output and evicts it (SeatClaimed names the evicted node).
    /// @param output the first 32 bytes of beta = proof_to_hash(proof); verified off-chain in v1
    /// @dev Reverts FlareRoundsInvalidProof, FlareRoundsNotStarted, FlareRoundsWrongRound,
    /// FlareRoundsWrongPhase (not Training), FlareRoundsNotEligible, FlareRoundsAlreadyClaimed
    /// (one claim per node per round, evicted or not), FlareRoundsOutputTooHigh; whenNotPaused.
    /// May close training early (TrainingClosed).
    function claimSeat(uint256 round, bytes32 output, bytes calldata proof) external;

    /// @notice A seat holder proposes the aggregate; `updatesRoot` commits to the included updates.
    /// @return proposalId 1 for the round's first proposal, then 2, 3, ...
    /// @dev Reverts FlareRoundsInvalidCid, FlareRoundsNotStarted, FlareRoundsWrongPhase (not
    /// Review), FlareRoundsNotSeatHolder, FlareRoundsAlreadyProposed; whenNotPaused.
    function proposeAggregate(uint256 round, bytes calldata cid, bytes32 updatesRoot)
        external
        returns (uint256 proposalId);

    /// @notice One vote per seat holder per round; quorum finalizes and opens the next round.
    /// @dev Reverts FlareRoundsNotStarted, FlareRoundsWrongPhase (not Review),
    /// FlareRoundsNotSeatHolder, FlareRoundsAlreadyVoted (across all proposals of the round),
    /// FlareRoundsUnknownProposal; whenNotPaused. The approval that reaches the quorum emits
    /// VoteCast, RoundFinalized and RoundOpened for the next round.
    function vote(uint256 round, uint256 proposalId, bool approve) external;

    /// @notice Record a failed round and open the next one, on the same base model. Anyone may
    /// call it.
    /// @dev Reverts FlareRoundsNotClosable unless `round` is the current round and Failed;
    /// whenNotPaused.
    function closeRound(uint256 round) external;

    // ------------------------------------------------------------------ admin (owner only)

    /// @notice Open round 1 on the genesis model. Once only: FlareRoundsAlreadyStarted.
    function start() external;

    /// @notice Let `node` register while the allowlist is on.
    function allow(address node) external;

    /// @notice Withdraw `node`'s permission; a registered node is also deregistered
    /// (NodeDeregistered with `by` = the owner).
    function disallow(address node) external;

    /// @notice Turn the allowlist on or off. Registrations made before stay as they are.
    function setAllowlist(bool enabled) external;

    /// @notice Set the parameters of rounds opened from now on; the open round keeps its own.
    /// @dev Reverts FlareRoundsInvalidConfig(reason) unless k is 1..64, quorumBps 1..10000,
    /// both windows > 0 and minUpdates >= 1.
    function setConfig(Config calldata newConfig) external;

    /// @notice Stop every node action (register, deregister, submitUpdate, claimSeat,
    /// proposeAggregate, vote, closeRound). Phases keep following the clock while paused.
    function pause() external;

    /// @notice Resume node actions.
    function unpause() external;

    // ------------------------------------------------------------------ views

    /// @notice Hash of the frozen backbone and trainable-parameter layout every node must share.
    function modelSpecHash() external view returns (bytes32);

    /// @notice Binary CIDv1 of the initial trainable weights (the base of round 1).
    function genesisModel() external view returns (bytes memory);

    /// @notice Whether registration needs the owner's allow().
    function allowlistEnabled() external view returns (bool);

    /// @notice The parameters the next opened round will use.
    function config() external view returns (Config memory);

    /// @notice The latest opened round; 0 before start().
    function currentRound() external view returns (uint256);

    /// @notice The phase of `round`, derived from its stored facts and the block time.
    function phase(uint256 round) external view returns (Phase);

    /// @notice Everything stored about `round` and what derives from it; all zero but `round`
    /// and `phase` (None) for a round not opened yet.
    function getRound(uint256 round) external view returns (RoundView memory);

    /// @notice A node's registration. vrfPublicKey is its last registered key, kept after it leaves.
    function getNode(address node) external view returns (NodeView memory);

    /// @notice Registered nodes now.
    function nodeCount() external view returns (uint256);

    /// @notice A page of the registered nodes (order changes when nodes leave).
    function nodes(uint256 offset, uint256 limit) external view returns (address[] memory);

    /// @notice Whether `node` may submit and claim in `round`: registered, and registered before
    /// that round opened.
    function isEligible(uint256 round, address node) external view returns (bool);

    /// @notice keccak256 of the CID `node` submitted in `round`; zero when none.
    function updateOf(uint256 round, address node) external view returns (bytes32 cidHash);

    /// @notice The seats of `round`, in slot order (not sorted by output).
    function seats(uint256 round) external view returns (Seat[] memory);

    /// @notice Whether `node` holds a seat of `round` now (an evicted claim does not).
    function isSeatHolder(uint256 round, address node) external view returns (bool);

    /// @notice Whether `node` has voted in `round`.
    function hasVoted(uint256 round, address node) external view returns (bool);

    /// @notice A proposal of `round`; reverts FlareRoundsUnknownProposal for an id not given out.
    function getProposal(uint256 round, uint256 proposalId)
        external
        view
        returns (ProposalView memory);

    /// @notice The latest finalized global model (round 0 = genesis).
    function globalModel() external view returns (uint256 round, bytes memory cid);

    /// @notice The model a round trains from; reverts FlareRoundsWrongRound for a round not opened.
    function baseModel(uint256 round) external view returns (bytes memory cid);
}
