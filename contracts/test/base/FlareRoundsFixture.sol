// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../../src/FlareRounds.sol";
import {IFlareRounds} from "../../src/IFlareRounds.sol";
import {TestBase} from "./TestBase.sol";

/// @title FlareRoundsFixture
/// @notice A deployed FlareRounds with named nodes and helpers that walk a round through its
/// phases, so each test states only what it is about.
abstract contract FlareRoundsFixture is TestBase {
    uint16 internal constant K = 3;
    uint16 internal constant QUORUM_BPS = 6000; // ceil(3 * 0.6) = 2 approvals
    uint32 internal constant TRAIN_WINDOW = 1 hours;
    uint32 internal constant REVIEW_WINDOW = 30 minutes;
    uint32 internal constant MIN_UPDATES = 2;
    uint256 internal constant START_TIME = 1_700_000_000;

    bytes32 internal constant SPEC_HASH = keccak256("flare model spec");

    address internal owner = address(0xA11CE);
    address internal stranger = address(0xBAD);
    FlareRounds internal rounds;

    function setUp() public virtual {
        vm.warp(START_TIME);
        vm.label(owner, "owner");
        vm.label(stranger, "stranger");
        rounds = _deploy(_config(K, QUORUM_BPS), false);
    }

    // ------------------------------------------------------------------ deployment

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
            minUpdates: MIN_UPDATES
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

    function _proof(uint256 seed) internal pure returns (bytes memory) {
        bytes32 a = keccak256(abi.encode("proof", seed));
        return abi.encodePacked(a, keccak256(abi.encode(a)), bytes16(a));
    }

    function _node(uint256 i) internal pure returns (address) {
        return address(uint160(0x1000 + i));
    }

    function _key(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("vrf key", i));
    }

    /// @dev A VRF output whose rank is `rank` (lower ranks win seats).
    function _output(uint256 rank) internal pure returns (bytes32) {
        return bytes32(rank << 128);
    }

    // ------------------------------------------------------------------ actions

    function _register(uint256 i) internal {
        vm.prank(_node(i));
        rounds.register(_key(i));
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

    function _claim(uint256 i, uint256 round, uint256 rank) internal {
        vm.prank(_node(i));
        rounds.claimSeat(round, _output(rank), _proof(i));
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

    /// @dev Nodes 0..updates-1 submit, nodes 0..K-1 claim seats (node i at rank i+1), then time
    /// moves to the end of training: the round is in Review with seats 0..K-1.
    function _toReview(uint256 round, uint256 updates) internal {
        for (uint256 i = 0; i < updates; ++i) {
            _submit(i, round);
        }
        for (uint256 i = 0; i < K; ++i) {
            _claim(i, round, i + 1);
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

    function _expectRevert(bytes memory data) internal {
        vm.expectRevert(data);
    }

    function _expectEmit() internal {
        vm.expectEmit(true, true, true, true, address(rounds));
    }
}
