// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../../src/FlareRounds.sol";
import {IFlareRounds} from "../../src/IFlareRounds.sol";
import {BlsSigner} from "./BlsSigner.sol";
import {TestBase} from "./TestBase.sol";

/// @title FlareRoundsFixture
/// @notice A deployed FlareRounds with named nodes holding real BLS keys, and helpers that walk
/// a round through its phases, so each test states only what it is about.
/// @dev Node i's BLS key is `BlsSigner.secretKey(i)`; its seat proofs are real VRF proofs, so
/// who ranks lowest follows from the round's seed. Tests that need an order ask `_byRank`.
/// Arguments of a pranked call are computed before `vm.prank`: an external view call in the
/// argument list would use up the prank.
abstract contract FlareRoundsFixture is TestBase {
    uint16 internal constant K = 3;
    uint16 internal constant QUORUM_BPS = 6000; // ceil(3 * 0.6) = 2 approvals
    uint32 internal constant TRAIN_WINDOW = 1 hours;
    uint32 internal constant REVIEW_WINDOW = 30 minutes;
    uint32 internal constant MIN_UPDATES = 2;
    uint64 internal constant MAX_SAMPLES = 1_000_000;
    uint256 internal constant START_TIME = 1_700_000_000;

    bytes32 internal constant SPEC_HASH = keccak256("flare model spec");

    address internal owner = address(0xA11CE);
    address internal stranger = address(0xBAD);
    FlareRounds internal rounds;

    mapping(uint256 label => bytes) private _publicKeys;

    function setUp() public virtual {
        vm.warp(START_TIME);
        vm.label(owner, "owner");
        vm.label(stranger, "stranger");
        rounds = _deploy(_config(K, QUORUM_BPS), false);
    }

    // ------------------------------------------------------------------ deployment

    /// @dev No minimum claim window, so a round may close as soon as everything is in; the
    /// claim window has tests of its own.
    function _config(uint16 k, uint16 quorumBps)
        internal
        pure
        returns (IFlareRounds.Config memory)
    {
        return IFlareRounds.Config({
            committeeSize: k,
            quorumBps: quorumBps,
            trainWindow: TRAIN_WINDOW,
            reviewWindow: REVIEW_WINDOW,
            minClaimWindow: 0,
            minUpdates: MIN_UPDATES,
            maxSamples: MAX_SAMPLES,
            reviewPolicy: _policy()
        });
    }

    function _deploy(IFlareRounds.Config memory cfg, bool allowlist)
        internal
        returns (FlareRounds)
    {
        FlareRounds deployed = new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, allowlist);
        vm.label(address(deployed), "FlareRounds");
        return deployed;
    }

    // ------------------------------------------------------------------ values

    /// @dev Binary CIDv1 (raw codec, sha2-256): 0x01 0x55 0x12 0x20 then a 32-byte digest.
    function _cid(uint256 seed) internal pure returns (bytes memory) {
        return abi.encodePacked(hex"01551220", keccak256(abi.encode("cid", seed)));
    }

    function _genesis() internal pure returns (bytes memory) {
        return _cid(0);
    }

    function _policy() internal pure returns (bytes memory) {
        return abi.encodePacked(hex"01551220", keccak256("review policy"));
    }

    function _node(uint256 i) internal pure returns (address) {
        return address(uint160(0x1000 + i));
    }

    function _peerKey(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("peer key", i));
    }

    /// @dev Node i's BLS public key (cached: a G2 multiplication per call is slow to trace).
    function _blsKey(uint256 i) internal returns (bytes memory key) {
        key = _publicKeys[i];
        if (key.length == 0) {
            key = BlsSigner.publicKey(BlsSigner.secretKey(i));
            _publicKeys[i] = key;
        }
    }

    /// @dev Key `label`'s proof of possession for `registrant` on the deployed contract.
    function _possession(uint256 label, address registrant) internal view returns (bytes memory) {
        bytes memory message = abi.encodePacked(block.chainid, address(rounds), registrant);
        return BlsSigner.sign(BlsSigner.secretKey(label), message, rounds.POP_DST());
    }

    /// @dev Key `label`'s VRF proof for `round` (over the round's seed as stored now).
    function _proofOf(uint256 label, uint256 round) internal view returns (bytes memory) {
        bytes memory alpha = abi.encodePacked(rounds.getRound(round).seed, round);
        return BlsSigner.sign(BlsSigner.secretKey(label), alpha, rounds.VRF_DST());
    }

    /// @dev The heap word of node i's seat in `round`: its rank above its address.
    function _seatWord(uint256 i, uint256 round) internal view returns (uint256) {
        uint256 output = uint256(keccak256(_proofOf(i, round)));
        return (output >> 160 << 160) | uint160(_node(i));
    }

    function _rank(uint256 i, uint256 round) internal view returns (uint96) {
        return uint96(_seatWord(i, round) >> 160);
    }

    /// @dev Nodes 0..count-1 ordered by their seat in `round`, best (lowest) first.
    function _byRank(uint256 round, uint256 count) internal view returns (uint256[] memory order) {
        order = new uint256[](count);
        uint256[] memory words = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            order[i] = i;
            words[i] = _seatWord(i, round);
        }
        for (uint256 i = 1; i < count; ++i) {
            for (uint256 j = i; j > 0 && words[j - 1] > words[j]; --j) {
                (words[j - 1], words[j]) = (words[j], words[j - 1]);
                (order[j - 1], order[j]) = (order[j], order[j - 1]);
            }
        }
    }

    /// @dev The heap word `proof` earns `node`: the first 96 bits of keccak256(proof) (the rank)
    /// above the node's address, as the contract stores a seat.
    function _wordOf(bytes memory proof, address node) internal pure returns (uint256) {
        return (uint256(keccak256(proof)) >> 160 << 160) | uint160(node);
    }

    function _rankOfWord(uint256 word) internal pure returns (uint96) {
        return uint96(word >> 160);
    }

    /// @dev The seats of `round` as heap words, in the contract's order (the root first).
    function _seatWords(uint256 round) internal view returns (uint256[] memory words) {
        IFlareRounds.Seat[] memory list = rounds.seats(round);
        words = new uint256[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            words[i] = (uint256(list[i].rank) << 160) | uint160(list[i].holder);
        }
    }

    /// @dev seats(round) is a max-heap of words: every parent above its children, so the root
    /// (seats[0]) is the highest seat, the one a lower claim evicts.
    function _assertMaxHeap(uint256 round) internal view {
        uint256[] memory words = _seatWords(round);
        for (uint256 i = 1; i < words.length; ++i) {
            assertGe(words[(i - 1) / 2], words[i], "a parent below its child");
            assertGe(words[0], words[i], "the root is not the highest seat");
        }
    }

    /// @dev A permutation of 0..count-1 drawn from `seed` (Fisher-Yates).
    function _permutation(uint256 count, uint256 seed) internal pure returns (uint256[] memory p) {
        p = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            p[i] = i;
        }
        for (uint256 i = count; i > 1; --i) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % i;
            (p[i - 1], p[j]) = (p[j], p[i - 1]);
        }
    }

    // ------------------------------------------------------------------ actions

    function _register(uint256 i) internal {
        bytes memory key = _blsKey(i);
        bytes memory possession = _possession(i, _node(i));
        vm.prank(_node(i));
        rounds.register(key, possession, _peerKey(i));
    }

    function _registerNodes(uint256 count) internal {
        for (uint256 i = 0; i < count; ++i) {
            _register(i);
        }
    }

    /// @dev Registers `count` nodes, then opens round 1.
    function _startWith(uint256 count) internal {
        _registerNodes(count);
        vm.prank(owner);
        rounds.start();
    }

    function _submit(uint256 i, uint256 round) internal {
        vm.prank(_node(i));
        rounds.submitUpdate(round, _cid(round * 1000 + i), 10 + i);
    }

    function _claim(uint256 i, uint256 round) internal {
        bytes memory proof = _proofOf(i, round);
        bytes memory key = _blsKey(i);
        vm.prank(_node(i));
        rounds.claimSeat(round, proof, key);
    }

    /// @dev Node i claims with `proof` (computed beforehand, e.g. to rank it) and its own key.
    function _claimWith(uint256 i, uint256 round, bytes memory proof) internal {
        bytes memory key = _blsKey(i);
        vm.prank(_node(i));
        rounds.claimSeat(round, proof, key);
    }

    function _propose(uint256 i, uint256 round) internal returns (uint256) {
        vm.prank(_node(i));
        return rounds.proposeAggregate(round, _aggregate(round, i), keccak256(abi.encode(round, i)));
    }

    function _vote(uint256 i, uint256 round, uint256 proposalId, bool approve) internal {
        vm.prank(_node(i));
        rounds.vote(round, proposalId, approve);
    }

    function _aggregate(uint256 round, uint256 i) internal pure returns (bytes memory) {
        return _cid(1_000_000 + round * 1000 + i);
    }

    function _warpPastTraining(uint256 round) internal {
        vm.warp(rounds.getRound(round).trainEnd);
    }

    function _warpPastReview(uint256 round) internal {
        vm.warp(rounds.getRound(round).reviewEnd);
    }

    /// @dev Nodes 0..updates-1 submit, nodes 0..K-1 claim the K seats, then time moves to the end
    /// of training: the round is in Review with seats 0..K-1.
    function _toReview(uint256 round, uint256 updates) internal {
        for (uint256 i = 0; i < updates; ++i) {
            _submit(i, round);
        }
        for (uint256 i = 0; i < K; ++i) {
            _claim(i, round);
        }
        if (rounds.phase(round) == IFlareRounds.Phase.Training) _warpPastTraining(round);
    }

    /// @dev Takes `round` from Training to Finalized with node 0's proposal and two approvals.
    function _finalize(uint256 round, uint256 updates) internal returns (uint256 proposalId) {
        _toReview(round, updates);
        proposalId = _propose(0, round);
        _vote(0, round, proposalId, true);
        _vote(1, round, proposalId, true);
    }

    /// @dev The revert data of FlareRoundsWrongPhase(round, expected, actual).
    function _wrongPhase(uint256 round, IFlareRounds.Phase expected, IFlareRounds.Phase actual)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(
            IFlareRounds.FlareRoundsWrongPhase.selector, round, expected, actual
        );
    }

    function _expectRevert(bytes memory data) internal {
        vm.expectRevert(data);
    }

    function _expectEmit() internal {
        vm.expectEmit(true, true, true, true, address(rounds));
    }
}
