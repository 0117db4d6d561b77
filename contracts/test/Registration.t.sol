// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice register, deregister, the allowlist, eligibility and the node list.
contract RegistrationTest is FlareRoundsFixture {
    // ------------------------------------------------------------------ register

    function test_register_recordsNodeEligibleFromRoundOne() public {
        _expectEmit();
        emit IFlareRounds.NodeRegistered(_node(0), _key(0), 1);
        _register(0);

        IFlareRounds.NodeView memory n = rounds.getNode(_node(0));
        assertTrue(n.registered, "registered");
        assertEq(n.vrfPublicKey, _key(0), "key");
        assertEq(n.eligibleFrom, 1, "eligible from round 1");
        assertEq(rounds.nodeCount(), 1, "count");
        assertEq(rounds.nodes(0, 10)[0], _node(0), "listed");
    }

    function test_register_duringRoundIsEligibleFromTheNext() public {
        _startWith(2);
        _expectEmit();
        emit IFlareRounds.NodeRegistered(_node(5), _key(5), 2);
        _register(5);

        assertEq(rounds.getNode(_node(5)).eligibleFrom, 2, "eligibleFrom");
        assertFalse(rounds.isEligible(1, _node(5)), "not for the open round");
        assertTrue(rounds.isEligible(2, _node(5)), "eligible for the next");
        assertEq(rounds.getRound(1).eligibleNodes, 2, "snapshot unchanged");
    }

    function test_register_revertsWhenAlreadyRegistered() public {
        _register(0);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsAlreadyRegistered.selector, _node(0))
        );
        vm.prank(_node(0));
        rounds.register(_key(7));
    }

    function test_register_revertsOnZeroKey() public {
        vm.expectRevert(IFlareRounds.FlareRoundsInvalidVrfKey.selector);
        vm.prank(_node(0));
        rounds.register(bytes32(0));
    }

    function test_register_revertsWhenKeyBelongsToAnotherNode() public {
        _register(0);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsVrfKeyTaken.selector, _key(0), _node(0))
        );
        vm.prank(_node(1));
        rounds.register(_key(0));
    }

    function test_register_keyStaysBoundAfterItsNodeLeaves() public {
        _register(0);
        vm.prank(_node(0));
        rounds.deregister();

        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsVrfKeyTaken.selector, _key(0), _node(0))
        );
        vm.prank(_node(1));
        rounds.register(_key(0));

        vm.prank(_node(0));
        rounds.register(_key(0)); // the same address may take its key back
        assertTrue(rounds.getNode(_node(0)).registered, "re-registered");
    }

    function test_register_revertsWhenAllowlistedAndNotAllowed() public {
        rounds = _deploy(_config(K, QUORUM_BPS), true);
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotAllowed.selector, _node(0))
        );
        _register(0);

        vm.prank(owner);
        rounds.allow(_node(0));
        _register(0);
        assertTrue(rounds.getNode(_node(0)).registered, "allowed node registers");
    }

    function test_register_revertsWhenPaused() public {
        vm.prank(owner);
        rounds.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _register(0);
    }

    // ------------------------------------------------------------------ deregister

    function test_deregister_removesNodeAndKeepsTheListDense() public {
        _registerNodes(3);
        _expectEmit();
        emit IFlareRounds.NodeDeregistered(_node(0), _node(0));
        vm.prank(_node(0));
        rounds.deregister();

        IFlareRounds.NodeView memory n = rounds.getNode(_node(0));
        assertFalse(n.registered, "not registered");
        assertEq(n.eligibleFrom, 0, "eligibility cleared");
        assertEq(n.vrfPublicKey, _key(0), "key kept: it stays bound");
        address[] memory listed = rounds.nodes(0, 10);
        assertEq(listed.length, 2, "two left");
        assertEq(listed[0], _node(2), "last moved into the gap");
        assertEq(listed[1], _node(1), "others keep their place");

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
        assertEq(rounds.nodeCount(), 0, "removed from the list");
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotAllowed.selector, _node(0))
        );
        _register(0);
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
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotAllowed.selector, _node(0))
        );
        _register(0);

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

    // ------------------------------------------------------------------ eligibility and listing

    function test_isEligible_followsRegistrationAndRound() public {
        assertFalse(rounds.isEligible(1, _node(0)), "unregistered");
        _register(0);
        assertFalse(rounds.isEligible(0, _node(0)), "round 0 does not exist");
        assertTrue(rounds.isEligible(1, _node(0)), "round 1");
        assertTrue(rounds.isEligible(9, _node(0)), "later rounds");
    }

    function test_nodes_pagesThroughTheList() public {
        _registerNodes(5);
        address[] memory page = rounds.nodes(1, 2);
        assertEq(page.length, 2, "page size");
        assertEq(page[0], _node(1), "first of page");
        assertEq(page[1], _node(2), "second of page");
        assertEq(rounds.nodes(4, 10).length, 1, "short last page");
        assertEq(rounds.nodes(5, 10).length, 0, "past the end");
        assertEq(rounds.nodes(0, 0).length, 0, "zero limit");
        assertEq(rounds.nodes(2, type(uint256).max).length, 3, "huge limit does not overflow");
    }

    function test_nodes_countMatchesSnapshotAtOpening() public {
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
        assertEq(n.vrfPublicKey, bytes32(0), "key");
        assertEq(n.eligibleFrom, 0, "eligibleFrom");
    }
}
