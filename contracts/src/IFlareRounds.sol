// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IFlareRounds
/// @notice The round protocol of flare-node, interface version 2: registration with BLS12-381
/// keys, training rounds, committee seats won with BLS VRF proofs that the contract verifies,
/// aggregate proposals and votes, and a committed review policy. Events are the audit log:
/// every round can be rebuilt from them alone. Phases are derived from stored timestamps and
/// counters, never stored.
/// @dev Keys and proofs use the EIP-2537 encodings (see BLS12381.sol): a BLS public key is a G2
/// point (256 bytes), a VRF proof or proof of possession a G1 point (128 bytes).
///   VRF proof    pi = sk * H_vrf(seed_r || uint256(r)), H = RFC 9380 hash_to_curve on G1 under
///                VRF_DST; the output is keccak256(pi), computed by the contract.
///   possession   sk * H_pop(uint256(chainid) || address(this) || registrant) under POP_DST.
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
    /// @param quorumBps approvals needed, in basis points of k, rounded up; more than half of k
    /// @param trainWindow seconds of Training
    /// @param reviewWindow seconds of Review
    /// @param minClaimWindow seconds after opening before Training may close early, so seats go
    /// to the k lowest outputs rather than the first k claims (<= trainWindow)
    /// @param minUpdates updates a round needs to enter Review (>= 1)
    /// @param maxSamples the most training samples one update may claim (its FedAvg weight)
    /// @param reviewPolicy binary CID of the review policy document (flare-policy/1): the rule,
    /// bounds and acceptance test every seat holder applies
    struct Config {
        uint16 committeeSize;
        uint16 quorumBps;
        uint32 trainWindow;
        uint32 reviewWindow;
        uint32 minClaimWindow;
        uint32 minUpdates;
        uint64 maxSamples;
        bytes reviewPolicy;
    }

    /// @notice The stored facts of a round and what derives from them.
    struct RoundView {
        uint256 round;
        Phase phase;
        bytes32 seed;
        uint256 baseRound; // the round whose model is this round's base; 0 = genesis
        uint64 openedAt;
        uint64 claimEnd; // Training cannot close early before this timestamp
        uint64 trainEnd; // training closes at this timestamp unless it closed early
        uint64 reviewStart; // trainEnd, or the moment training closed early
        uint64 reviewEnd;
        uint16 committeeSize;
        uint16 quorum; // approvals needed: ceil(k * quorumBps / 10000)
        uint32 minUpdates;
        uint64 maxSamples;
        uint32 eligibleNodes; // registered before the round opened
        uint32 updateCount;
        uint16 seatCount;
        uint32 proposalCount;
        uint32 finalizedProposal; // 0 until finalized; proposal ids start at 1
        bytes32 vrfAccumulator; // keccak chain of the seed and every verified VRF output so far
        bytes reviewPolicy;
    }

    /// @notice The parameters a round snapshotted when it opened (in RoundOpened).
    struct RoundParams {
        uint64 trainEnd;
        uint64 claimEnd;
        uint32 reviewWindow;
        uint16 committeeSize;
        uint16 quorum;
        uint32 minUpdates;
        uint64 maxSamples;
        uint32 eligibleNodes;
    }

    struct NodeView {
        bool registered;
        bool allowed;
        bytes32 blsKeyHash; // keccak256 of the 256-byte G2 public key; kept after the node leaves
        bytes32 peerKey; // ed25519 public key: the node's libp2p identity and gossip signer
        uint256 eligibleFrom; // first round this node may take part in
    }

    /// @notice A committee seat. Seats are ranked by `rank`, the first 12 bytes of the holder's
    /// VRF output read as a big-endian integer, then by the holder's address: lower wins.
    struct Seat {
        address holder;
        uint96 rank;
    }

    struct ProposalView {
        address proposer;
        bytes cid;
        bytes32 updatesRoot;
        uint32 approvals;
        uint32 rejections;
    }

    // ------------------------------------------------------------------ events

    /// @notice `node` joined with the BLS key `blsKey` (proof of possession checked) and the
    /// ed25519 peer key `peerKey`; it may take part from round `eligibleFrom`.
    event NodeRegistered(
        address indexed node, bytes blsKey, bytes32 peerKey, uint256 indexed eligibleFrom
    );
    /// @notice `node` left; `by` is the node itself, or the owner through disallow(). It loses
    /// its seat and vote in the open round.
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
    /// needs to check it: its seed, its base model, the parameters it snapshotted and the review
    /// policy its committee applies.
    event RoundOpened(
        uint256 indexed round,
        bytes32 seed,
        uint256 baseRound,
        bytes baseModel,
        RoundParams params,
        bytes reviewPolicy
    );
    /// @notice `node` submitted the update bundle `cid` trained on `numSamples` samples.
    event UpdateSubmitted(
        uint256 indexed round, address indexed node, bytes cid, uint256 numSamples
    );
    /// @notice `node` took a seat with the VRF `proof` the contract verified, whose output is
    /// `output` = keccak256(proof); `evicted` lost its seat to it, or is zero when a seat was free.
    event SeatClaimed(
        uint256 indexed round, address indexed node, bytes32 output, bytes proof, address evicted
    );
    /// @notice Every eligible node submitted and all seats are held: Training ends at
    /// `reviewStart` (not before the round's claimEnd) and Review at `reviewEnd`.
    event TrainingClosed(uint256 indexed round, uint64 reviewStart, uint64 reviewEnd);
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
    error FlareRoundsInvalidBlsKey();
    error FlareRoundsBlsKeyTaken(bytes32 blsKeyHash, address owner);
    error FlareRoundsInvalidPossessionProof(address node);
    error FlareRoundsInvalidPeerKey();
    error FlareRoundsNoBlsPrecompiles();
    error FlareRoundsNotStarted();
    error FlareRoundsAlreadyStarted();
    error FlareRoundsWrongRound(uint256 round, uint256 currentRound);
    error FlareRoundsWrongPhase(uint256 round, Phase expected, Phase actual);
    error FlareRoundsNotEligible(uint256 round, address node);
    error FlareRoundsAlreadySubmitted(uint256 round, address node);
    error FlareRoundsInvalidCid(uint256 length);
    error FlareRoundsZeroSamples();
    error FlareRoundsTooManySamples(uint256 numSamples, uint256 maxSamples);
    error FlareRoundsAlreadyClaimed(uint256 round, address node);
    error FlareRoundsWrongBlsKey(address node, bytes32 blsKeyHash);
    error FlareRoundsInvalidProof(uint256 round, address node);
    error FlareRoundsOutputTooHigh(uint256 round, uint96 rank, uint96 highestRank);
    error FlareRoundsNotSeatHolder(uint256 round, address node);
    error FlareRoundsAlreadyProposed(uint256 round, address node);
    error FlareRoundsUnknownProposal(uint256 round, uint256 proposalId);
    error FlareRoundsAlreadyVoted(uint256 round, address node);
    error FlareRoundsNotClosable(uint256 round, Phase phase);
    error FlareRoundsInvalidConfig(string reason);

    // ------------------------------------------------------------------ nodes

    /// @notice Join with a BLS12-381 key for VRF seat proofs and an ed25519 peer key. A node that
    /// registers while round c is open is eligible from round c + 1, so nobody can pick a key
    /// once a round's seed is known. A BLS key stays bound to the first address that registered it.
    /// @param blsKey the G2 public key, 256 bytes (EIP-2537); not the identity, in the subgroup
    /// @param proofOfPossession the key's BLS signature (G1, 128 bytes) over
    /// uint256(chainid) || address(this) || msg.sender under POP_DST: nobody can register a key
    /// they do not hold, nor replay someone else's registration
    /// @param peerKey the ed25519 public key the node signs gossip with (non-zero)
    /// @dev Reverts FlareRoundsAlreadyRegistered, FlareRoundsNotAllowed (allowlist on and not
    /// allowed), FlareRoundsInvalidBlsKey (wrong length, or the identity),
    /// FlareRoundsInvalidPeerKey, FlareRoundsBlsKeyTaken, FlareRoundsInvalidPossessionProof (also
    /// for a key or proof that is not a point of its subgroup: the pairing check refuses those);
    /// whenNotPaused.
    function register(bytes calldata blsKey, bytes calldata proofOfPossession, bytes32 peerKey)
        external;

    /// @notice Leave; the node stops counting for rounds opened later and loses any seat and
    /// vote it has in the open round (a vote already cast stays counted). Its seat is not
    /// handed on: the round needs its quorum from the remaining holders. Snapshots of rounds
    /// already open are not changed.
    /// @dev Reverts FlareRoundsNotRegistered; whenNotPaused.
    function deregister() external;

    // ------------------------------------------------------------------ rounds

    /// @notice Register the CID of this node's update bundle for round `round`. Storage keeps
    /// keccak256(cid) (see updateOf); the UpdateSubmitted event carries the full CID.
    /// @param cid binary CIDv1, 1..128 bytes
    /// @param numSamples training samples behind the update (1..maxSamples), the FedAvg weight
    /// @dev Reverts FlareRoundsInvalidCid, FlareRoundsZeroSamples, FlareRoundsTooManySamples,
    /// FlareRoundsNotStarted, FlareRoundsWrongRound (not the current round),
    /// FlareRoundsWrongPhase (not Training), FlareRoundsNotEligible,
    /// FlareRoundsAlreadySubmitted; whenNotPaused. May close training early (TrainingClosed).
    function submitUpdate(uint256 round, bytes calldata cid, uint256 numSamples) external;

    /// @notice Claim a committee seat with a BLS VRF proof over alpha = seed || uint256(round).
    /// The contract verifies the proof against the caller's registered key, derives the output
    /// keccak256(proof) and keeps the k lowest ranks; once k seats are held, a claim must rank
    /// below the highest seat and evicts it (SeatClaimed names the evicted node).
    /// @param proof the G1 point sk * H_vrf(alpha), 128 bytes
    /// @param blsKey the caller's registered G2 public key (storage keeps only its hash)
    /// @dev Reverts FlareRoundsNotStarted, FlareRoundsWrongRound, FlareRoundsWrongPhase (not
    /// Training), FlareRoundsNotEligible, FlareRoundsAlreadyClaimed (one claim per node per
    /// round, evicted or not), FlareRoundsWrongBlsKey, FlareRoundsOutputTooHigh,
    /// FlareRoundsInvalidProof; whenNotPaused. May close training early (TrainingClosed).
    function claimSeat(uint256 round, bytes calldata proof, bytes calldata blsKey) external;

    /// @notice A seat holder proposes the aggregate; `updatesRoot` commits to the included updates.
    /// @return proposalId 1 for the round's first proposal, then 2, 3, ...
    /// @dev Reverts FlareRoundsInvalidCid, FlareRoundsNotStarted, FlareRoundsWrongPhase (not
    /// Review), FlareRoundsNotSeatHolder (no seat, evicted, or left the federation since),
    /// FlareRoundsAlreadyProposed; whenNotPaused.
    function proposeAggregate(uint256 round, bytes calldata cid, bytes32 updatesRoot)
        external
        returns (uint256 proposalId);

    /// @notice One vote per seat holder per round; quorum finalizes and opens the next round.
    /// @dev Reverts FlareRoundsNotStarted, FlareRoundsWrongPhase (not Review),
    /// FlareRoundsNotSeatHolder (no seat, evicted, or left the federation since),
    /// FlareRoundsAlreadyVoted (across all proposals of the round), FlareRoundsUnknownProposal;
    /// whenNotPaused. The
    /// approval that reaches the quorum emits VoteCast, RoundFinalized and RoundOpened for the
    /// next round.
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
    /// (NodeDeregistered with `by` = the owner) and loses its seat and vote in the open round.
    function disallow(address node) external;

    /// @notice Turn the allowlist on or off. Registrations made before stay as they are.
    function setAllowlist(bool enabled) external;

    /// @notice Set the parameters of rounds opened from now on; the open round keeps its own.
    /// @dev Reverts FlareRoundsInvalidConfig(reason) unless k is 1..64, the quorum is more than
    /// half of k, both windows > 0, minClaimWindow <= trainWindow, minUpdates >= 1,
    /// maxSamples >= 1 and reviewPolicy is a CID of 1..128 bytes.
    function setConfig(Config calldata newConfig) external;

    /// @notice Stop every node action (register, deregister, submitUpdate, claimSeat,
    /// proposeAggregate, vote, closeRound). Phases keep following the clock while paused.
    function pause() external;

    /// @notice Resume node actions.
    function unpause() external;

    // ------------------------------------------------------------------ views

    /// @notice The interface version this contract speaks (2). Nodes refuse one they do not.
    function version() external pure returns (uint256);

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

    /// @notice A node's registration. blsKeyHash and peerKey are its last registered keys, kept
    /// after it leaves.
    function getNode(address node) external view returns (NodeView memory);

    /// @notice The address a BLS key (by keccak256 of its 256 bytes) is bound to; zero if none.
    function blsKeyOwner(bytes32 blsKeyHash) external view returns (address);

    /// @notice Registered nodes now. Who they are is in the NodeRegistered and NodeDeregistered
    /// events: the contract keeps no list, which would cost every registration a storage slot.
    function nodeCount() external view returns (uint256);

    /// @notice Whether `node` may submit and claim in `round`: registered, and registered before
    /// that round opened.
    function isEligible(uint256 round, address node) external view returns (bool);

    /// @notice keccak256 of the CID `node` submitted in `round`; zero when none.
    function updateOf(uint256 round, address node) external view returns (bytes32 cidHash);

    /// @notice The seats of `round` (a max-heap: the highest rank first, the rest unsorted).
    function seats(uint256 round) external view returns (Seat[] memory);

    /// @notice Whether `node` holds a seat of `round` now: it claimed, was not evicted and is
    /// still eligible.
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
