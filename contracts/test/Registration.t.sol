// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {Vm} from "./base/Vm.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice register (BLS key, proof of possession, peer key), deregister, the allowlist,
/// eligibility, the BLS key binding, nodeCount and the registration events an auditor rebuilds
/// the node set from. Attacks on registration are in Attacks.t.sol.
contract RegistrationTest is FlareRoundsFixture {
    // ------------------------------------------------------------------ register

    function test_register_recordsNodeEligibleFromRoundOne() public {
        bytes memory key = _blsKey(0);
        _expectEmit();
        emit IFlareRounds.NodeRegistered(_node(0), key, _peerKey(0), 1);
        _register(0);

        IFlareRounds.NodeView memory n = rounds.getNode(_node(0));
        assertTrue(n.registered, "registered");
        assertFalse(n.allowed, "allowed flag untouched");
        assertEq(n.blsKeyHash, keccak256(key), "key hash");
        assertEq(n.peerKey, _peerKey(0), "peer key");
        assertEq(n.eligibleFrom, 1, "eligible from round 1");
        assertEq(rounds.nodeCount(), 1, "count");
        assertEq(rounds.blsKeyOwner(keccak256(key)), _node(0), "key bound to the node");
    }

    function test_register_duringRoundIsEligibleFromTheNext() public {
        _startWith(2);
        bytes memory key = _blsKey(5);
        _expectEmit();
        emit IFlareRounds.NodeRegistered(_node(5), key, _peerKey(5), 2);
        _register(5);

        assertEq(rounds.getNode(_node(5)).eligibleFrom, 2, "eligibleFrom");
        assertFalse(rounds.isEligible(1, _node(5)), "not for the open round");
        assertTrue(rounds.isEligible(2, _node(5)), "eligible for the next");
        assertEq(rounds.getRound(1).eligibleNodes, 2, "snapshot unchanged");
        assertEq(rounds.nodeCount(), 3, "counted now");
    }

    function test_register_revertsWhenAlreadyRegistered() public {
        _register(0);
        bytes memory otherKey = _blsKey(7);
        bytes memory possession = _possession(7, _node(0));
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadyRegistered.selector, _node(0))
        );
        vm.prank(_node(0));
        rounds.register(otherKey, possession, _peerKey(7));
    }

    function test_register_revertsOnTheIdentityKey() public {
        vm.expectRevert(IFlareRounds.FlareRoundsInvalidBlsKey.selector);
        vm.prank(_node(0));
        rounds.register(new bytes(256), new bytes(128), _peerKey(0));
    }

    function test_register_revertsOnZeroPeerKey() public {
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(0));
        vm.expectRevert(IFlareRounds.FlareRoundsInvalidPeerKey.selector);
        vm.prank(_node(0));
        rounds.register(key, possession, bytes32(0));
    }

    function test_register_revertsWhenKeyBelongsToAnotherNode() public {
        _register(0);
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsBlsKeyTaken.selector, keccak256(key), _node(0)
            )
        );
        vm.prank(_node(1));
        rounds.register(key, possession, _peerKey(1));
    }

    function test_register_keyStaysBoundAfterItsNodeLeaves() public {
        _register(0);
        vm.prank(_node(0));
        rounds.deregister();
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(1));

        vm.expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsBlsKeyTaken.selector, keccak256(key), _node(0)
            )
        );
        vm.prank(_node(1));
        rounds.register(key, possession, _peerKey(1));

        _register(0); // the same address may take its key back
        assertTrue(rounds.getNode(_node(0)).registered, "re-registered");
        assertEq(rounds.blsKeyOwner(keccak256(key)), _node(0), "still bound to it");
    }

    /// @dev A node that comes back with a new key keeps its old key bound too: nobody else can
    /// register either.
    function test_register_reRegisteringWithANewKeyBindsItAndKeepsTheOld() public {
        _register(0);
        vm.prank(_node(0));
        rounds.deregister();
        bytes memory newKey = _blsKey(8);
        bytes memory possession = _possession(8, _node(0));
        bytes32 newPeer = keccak256("new peer key");
        vm.prank(_node(0));
        rounds.register(newKey, possession, newPeer);

        IFlareRounds.NodeView memory n = rounds.getNode(_node(0));
        assertEq(n.blsKeyHash, keccak256(newKey), "the new key");
        assertEq(n.peerKey, newPeer, "the new peer key");
        assertEq(rounds.blsKeyOwner(keccak256(newKey)), _node(0), "new key bound");
        assertEq(rounds.blsKeyOwner(keccak256(_blsKey(0))), _node(0), "old key still bound");
    }

    function test_register_revertsWhenAllowlistedAndNotAllowed() public {
        rounds = _deploy(_config(K, QUORUM_BPS), true);
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(0));
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotAllowed.selector, _node(0))
        );
        vm.prank(_node(0));
        rounds.register(key, possession, _peerKey(0));

        vm.prank(owner);
        rounds.allow(_node(0));
        _register(0);
        assertTrue(rounds.getNode(_node(0)).registered, "allowed node registers");
    }

    function test_register_revertsWhenPaused() public {
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(0));
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(_node(0));
        rounds.register(key, possession, _peerKey(0));
    }

    // ------------------------------------------------------------------ deregister

    function test_deregister_removesNodeAndKeepsItsKeys() public {
        _registerNodes(3);
        _expectEmit();
        emit IFlareRounds.NodeDeregistered(_node(0), _node(0));
        vm.prank(_node(0));
        rounds.deregister();

        IFlareRounds.NodeView memory n = rounds.getNode(_node(0));
        assertFalse(n.registered, "not registered");
        assertEq(n.eligibleFrom, 0, "eligibility cleared");
        assertEq(n.blsKeyHash, keccak256(_blsKey(0)), "key hash kept: it stays bound");
        assertEq(n.peerKey, _peerKey(0), "peer key kept");
        assertEq(rounds.blsKeyOwner(keccak256(_blsKey(0))), _node(0), "binding kept");
        assertEq(rounds.nodeCount(), 2, "two left");

        vm.prank(_node(2));
        rounds.deregister();
        vm.prank(_node(1));
        rounds.deregister();
        assertEq(rounds.nodeCount(), 0, "all gone");
    }

    function test_deregister_endsEligibilityButKeepsTheSnapshot() public {
        _startWith(3);
        vm.prank(_node(1));
        rounds.deregister();
        assertFalse(rounds.isEligible(1, _node(1)), "no longer eligible");
        assertEq(rounds.getRound(1).eligibleNodes, 3, "snapshot unchanged");

        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, _node(1))
        );
        _submit(1, 1);
        bytes memory proof = _proofOf(1, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, _node(1))
        );
        _claimWith(1, 1, proof);
    }

    function test_deregister_reRegisteringGivesANewEligibleFrom() public {
        _startWith(2);
        vm.prank(_node(0));
        rounds.deregister();
        _register(0);
        assertEq(rounds.getNode(_node(0)).eligibleFrom, 2, "eligible from the next round");
        assertFalse(rounds.isEligible(1, _node(0)), "not this round");
    }

    function test_deregister_revertsWhenNotRegistered() public {
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotRegistered.selector, _node(0))
        );
        vm.prank(_node(0));
        rounds.deregister();
    }

    function test_deregister_revertsWhenPaused() public {
        _register(0);
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(_node(0));
        rounds.deregister();
    }

    // ------------------------------------------------------------------ allowlist

    function test_allow_emitsAndRecords() public {
        _expectEmit();
        emit IFlareRounds.NodeAllowed(_node(0));
        vm.prank(owner);
        rounds.allow(_node(0));
        assertTrue(rounds.getNode(_node(0)).allowed, "allowed");
    }

    function test_disallow_deregistersARegisteredNode() public {
        rounds = _deploy(_config(K, QUORUM_BPS), true);
        vm.prank(owner);
        rounds.allow(_node(0));
        _register(0);

        _expectEmit();
        emit IFlareRounds.NodeDisallowed(_node(0));
        _expectEmit();
        emit IFlareRounds.NodeDeregistered(_node(0), owner);
        vm.prank(owner);
        rounds.disallow(_node(0));

        IFlareRounds.NodeView memory n = rounds.getNode(_node(0));
        assertFalse(n.allowed, "not allowed");
        assertFalse(n.registered, "not registered");
        assertEq(rounds.nodeCount(), 0, "not counted");
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(0));
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotAllowed.selector, _node(0))
        );
        vm.prank(_node(0));
        rounds.register(key, possession, _peerKey(0));
    }

    function test_disallow_ofAnUnregisteredNodeOnlyClearsTheFlag() public {
        vm.prank(owner);
        rounds.allow(_node(0));
        vm.recordLogs();
        vm.prank(owner);
        rounds.disallow(_node(0));
        assertEq(vm.getRecordedLogs().length, 1, "only NodeDisallowed");
        assertFalse(rounds.getNode(_node(0)).allowed, "flag cleared");
    }

    function test_setAllowlist_togglesRegistrationRule() public {
        _expectEmit();
        emit IFlareRounds.AllowlistSet(true);
        vm.prank(owner);
        rounds.setAllowlist(true);
        assertTrue(rounds.allowlistEnabled(), "on");
        bytes memory key = _blsKey(0);
        bytes memory possession = _possession(0, _node(0));
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotAllowed.selector, _node(0))
        );
        vm.prank(_node(0));
        rounds.register(key, possession, _peerKey(0));

        vm.prank(owner);
        rounds.setAllowlist(false);
        _register(0);
        assertTrue(rounds.getNode(_node(0)).registered, "open registration");
    }

    function test_allowlistAdmin_revertsForNonOwner() public {
        bytes memory unauthorized =
            abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.startPrank(stranger);
        vm.expectRevert(unauthorized);
        rounds.allow(_node(0));
        vm.expectRevert(unauthorized);
        rounds.disallow(_node(0));
        vm.expectRevert(unauthorized);
        rounds.setAllowlist(true);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ eligibility and count

    function test_isEligible_followsRegistrationAndRound() public {
        assertFalse(rounds.isEligible(1, _node(0)), "unregistered");
        _register(0);
        assertFalse(rounds.isEligible(0, _node(0)), "round 0 does not exist");
        assertTrue(rounds.isEligible(1, _node(0)), "round 1");
        assertTrue(rounds.isEligible(9, _node(0)), "later rounds");
    }

    /// @dev The contract keeps no node list (v1's nodes() is gone): nodeCount counts, and the
    /// NodeRegistered and NodeDeregistered events name who. Replaying them rebuilds the set.
    function test_nodeCount_andTheEventsRebuildTheNodeSet() public {
        rounds = _deploy(_config(K, QUORUM_BPS), true);
        vm.startPrank(owner);
        for (uint256 i = 0; i < 6; ++i) {
            rounds.allow(_node(i));
        }
        vm.stopPrank();

        vm.recordLogs();
        _registerNodes(6);
        assertEq(rounds.nodeCount(), 6, "six registered");
        vm.prank(_node(1));
        rounds.deregister();
        vm.prank(owner);
        rounds.disallow(_node(4));
        _register(1); // back again
        vm.prank(_node(3));
        rounds.deregister();
        assertEq(rounds.nodeCount(), 4, "0, 1, 2, 5 remain");

        bool[6] memory member;
        uint256 members = 0;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            bytes32 topic = logs[i].topics[0];
            if (topic == IFlareRounds.NodeRegistered.selector) {
                uint256 index = uint160(uint256(logs[i].topics[1])) - 0x1000;
                assertFalse(member[index], "registered twice without leaving");
                member[index] = true;
                ++members;
            } else if (topic == IFlareRounds.NodeDeregistered.selector) {
                uint256 index = uint160(uint256(logs[i].topics[1])) - 0x1000;
                assertTrue(member[index], "left without being registered");
                member[index] = false;
                --members;
            }
        }
        assertEq(members, rounds.nodeCount(), "events and count agree");
        for (uint256 i = 0; i < 6; ++i) {
            assertEq(member[i], rounds.getNode(_node(i)).registered, "events and getNode agree");
        }
    }

    function test_nodeCount_matchesSnapshotAtOpening() public {
        _registerNodes(3);
        vm.prank(_node(2));
        rounds.deregister();
        vm.prank(owner);
        rounds.start();
        assertEq(rounds.getRound(1).eligibleNodes, 2, "registered nodes at opening");
    }

    function test_getNode_ofUnknownAddressIsEmpty() public view {
        IFlareRounds.NodeView memory n = rounds.getNode(stranger);
        assertFalse(n.registered, "registered");
        assertFalse(n.allowed, "allowed");
        assertEq(n.blsKeyHash, bytes32(0), "key hash");
        assertEq(n.peerKey, bytes32(0), "peer key");
        assertEq(n.eligibleFrom, 0, "eligibleFrom");
        assertEq(rounds.blsKeyOwner(bytes32(0)), address(0), "no owner of the zero hash");
    }
}
