// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FlareRounds} from "../src/FlareRounds.sol";
import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Gas budgets of the hot transactions, as a transaction would pay them.
/// @dev Gas is deterministic, so these are exact checks, not timings. Each measured call starts
/// with cold storage (`vm.cool`), and the figure adds what the call frame does not see: the
/// 21,000 base cost and the calldata cost, or the EIP-7623 calldata floor when that is higher.
/// Under `--isolate` (which `--gas-report` turns on) forge runs each call as its own transaction
/// and its figure already includes those; `_measure` detects that and adds nothing.
/// Claims are measured in their worst case for the seat heap: a seat that sifts from a leaf to
/// the root while seats fill, and an eviction that sifts from the root to a leaf.
/// `tools/forge-test --match-contract GasTest -vv` prints the figures.
contract GasTest is FlareRoundsFixture {
    uint16 internal constant K7 = 7;
    uint16 internal constant K64 = 64;
    uint256 internal constant NODES = 12;

    uint256 internal constant REGISTER_BUDGET = 260_000;
    uint256 internal constant SUBMIT_BUDGET = 70_000;
    uint256 internal constant CLAIM_BUDGET_K7 = 240_000;
    uint256 internal constant CLAIM_BUDGET_K64 = 270_000;
    uint256 internal constant VOTE_BUDGET = 70_000;
    uint256 internal constant FINALIZING_VOTE_BUDGET = 200_000;

    function setUp() public override {
        super.setUp();
        rounds = _deploy(_config(K7, QUORUM_BPS), false); // quorum ceil(7 * 0.6) = 5
    }

    // ------------------------------------------------------------------ register

    function test_gas_register() public {
        _registerNodes(3);
        bytes memory call = _registerCall(5);
        uint256 gas = _measure(_node(5), call);
        _report("register (open registration)", gas, REGISTER_BUDGET);
    }

    function test_gas_registerAllowed() public {
        rounds = _deploy(_config(K7, QUORUM_BPS), true);
        vm.prank(owner);
        rounds.allow(_node(5));
        bytes memory call = _registerCall(5);
        uint256 gas = _measure(_node(5), call);
        _report("register (allowlisted node)", gas, REGISTER_BUDGET);
    }

    // ------------------------------------------------------------------ submitUpdate

    function test_gas_submitUpdate() public {
        _startWith(NODES);
        _submit(1, 1);
        uint256 gas = _measure(_node(0), abi.encodeCall(rounds.submitUpdate, (1, _cid(7), 1000)));
        _report("submitUpdate", gas, SUBMIT_BUDGET);
    }

    function test_gas_submitUpdateThatClosesTraining() public {
        _startWith(NODES);
        for (uint256 i = 0; i < K7; ++i) {
            _claim(i, 1);
        }
        for (uint256 i = 1; i < NODES; ++i) {
            _submit(i, 1);
        }
        uint256 gas = _measure(_node(0), abi.encodeCall(rounds.submitUpdate, (1, _cid(7), 1000)));
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed early");
        _report("submitUpdate (closes training)", gas, SUBMIT_BUDGET);
    }

    // ------------------------------------------------------------------ claimSeat

    function test_gas_claimSeatK7() public {
        _claimScenarios(K7, CLAIM_BUDGET_K7, "k=7");
    }

    function test_gas_claimSeatK64() public {
        _claimScenarios(K64, CLAIM_BUDGET_K64, "k=64");
    }

    function test_gas_claimSeatThatClosesTraining() public {
        _startWith(NODES);
        for (uint256 i = 0; i < NODES; ++i) {
            _submit(i, 1);
        }
        for (uint256 i = 1; i < K7; ++i) {
            _claim(i, 1);
        }
        uint256 gas = _measure(_node(0), _claimCall(0));
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed early");
        _report("claimSeat k=7 (last seat, closes training)", gas, CLAIM_BUDGET_K7);
    }

    // ------------------------------------------------------------------ vote

    function test_gas_voteAndFinalizingVote() public {
        _startWith(NODES);
        _toReviewK7();
        uint256 id = _propose(0, 1);
        for (uint256 i = 0; i < 4; ++i) {
            _vote(i, 1, id, true); // quorum is 5: one approval short
        }
        uint256 gas = _measure(_node(5), abi.encodeCall(rounds.vote, (1, id, false)));
        _report("vote", gas, VOTE_BUDGET);

        gas = _measure(_node(4), abi.encodeCall(rounds.vote, (1, id, true)));
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Finalized), "finalized");
        assertEq(rounds.currentRound(), 2, "next round open");
        _report("vote (finalizes, opens next round)", gas, FINALIZING_VOTE_BUDGET);
    }

    function test_gas_proposeAggregate() public {
        _startWith(NODES);
        _toReviewK7();
        bytes memory call =
            abi.encodeCall(rounds.proposeAggregate, (1, _cid(77), bytes32(uint256(1))));
        uint256 gas = _measure(_node(0), call);
        log("proposeAggregate tx gas (no budget)", gas);
        assertGe(gas, 21_000, "measured");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev Two worst cases on a fresh deployment with committee size k: the claim that fills
    /// the last free seat with the highest rank so far (it sifts from a leaf to the root), and
    /// the lowest claim once all seats are held (it evicts the root and sifts down to a leaf).
    function _claimScenarios(uint16 k, uint256 budget, string memory label) internal {
        rounds = _deploy(_config(k, QUORUM_BPS), false);
        uint256 count = uint256(k) + 1;
        _startWith(count);
        uint256[] memory order = _byRank(1, count);
        // order[0] is the lowest; order[1..k] fill the seats, the highest of them last.
        for (uint256 i = 1; i < k; ++i) {
            _claim(order[i], 1);
        }
        uint256 gas = _measure(_node(order[k]), _claimCall(order[k]));
        assertEq(rounds.seats(1)[0].holder, _node(order[k]), "the last claim became the root");
        _report(string.concat("claimSeat ", label, " (fills, sifts to the root)"), gas, budget);

        gas = _measure(_node(order[0]), _claimCall(order[0]));
        assertFalse(rounds.isSeatHolder(1, _node(order[k])), "highest evicted");
        _report(string.concat("claimSeat ", label, " (full, evicts, sifts down)"), gas, budget);
    }

    function _toReviewK7() internal {
        for (uint256 i = 0; i < K7; ++i) {
            _submit(i, 1);
            _claim(i, 1);
        }
        _warpPastTraining(1);
    }

    function _registerCall(uint256 i) internal returns (bytes memory) {
        return abi.encodeCall(rounds.register, (_blsKey(i), _possession(i, _node(i)), _peerKey(i)));
    }

    function _claimCall(uint256 i) internal returns (bytes memory) {
        return abi.encodeCall(rounds.claimSeat, (1, _proofOf(i, 1), _blsKey(i)));
    }

    /// @dev Runs `data` from `sender` on cold storage; returns what the transaction would cost.
    function _measure(address sender, bytes memory data) internal returns (uint256) {
        vm.cool(address(rounds));
        vm.prank(sender);
        (bool ok, bytes memory ret) = address(rounds).call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        uint256 execution = vm.lastCallGas().gasTotalUsed;
        if (_forgeIsolatesCalls()) return execution;
        (uint256 calldataGas, uint256 floorGas) = _calldataCost(data);
        uint256 standard = 21_000 + calldataGas + execution;
        return standard > floorGas ? standard : floorGas;
    }

    /// @dev Reading currentRound costs a few thousand gas inside a frame and over 21,000 as a
    /// transaction. A plain CALL, since forge does not isolate static calls.
    function _forgeIsolatesCalls() internal returns (bool) {
        (bool ok,) = address(rounds).call(abi.encodeCall(rounds.currentRound, ()));
        assertTrue(ok, "currentRound");
        return vm.lastCallGas().gasTotalUsed >= 21_000;
    }

    /// @dev EIP-2028 calldata gas and the EIP-7623 floor (Prague) of a transaction carrying `data`.
    function _calldataCost(bytes memory data) internal pure returns (uint256 cost, uint256 floor) {
        uint256 tokens = 0;
        for (uint256 i = 0; i < data.length; ++i) {
            if (data[i] == 0) {
                cost += 4;
                tokens += 1;
            } else {
                cost += 16;
                tokens += 4;
            }
        }
        floor = 21_000 + 10 * tokens;
    }

    function _report(string memory what, uint256 gas, uint256 budget) internal view {
        log(string.concat(what, " tx gas"), gas);
        assertLe(gas, budget, string.concat(what, " over budget"));
    }

    // Keeps the FlareRounds import used when the file is read on its own.
    function _type() internal pure returns (FlareRounds) {
        return FlareRounds(address(0));
    }
}
