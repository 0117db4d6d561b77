// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFlareRounds} from "../src/IFlareRounds.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Gas budgets of the hot transactions with k = 7, as a transaction would pay them.
/// @dev Gas is deterministic, so these are exact checks, not timings. Each measured call starts
/// with cold storage (`vm.cool`), and the figure adds what the call frame does not see: the
/// 21,000 base cost and the calldata cost, or the EIP-7623 calldata floor when that is higher.
/// Under `--isolate` (which `--gas-report` turns on) forge runs each call as its own transaction
/// and its figure already includes those; `_measure` detects that and adds nothing.
/// `tools/forge-test --match-contract GasTest -vv` prints the figures.
contract GasTest is FlareRoundsFixture {
    uint16 internal constant K7 = 7;
    uint256 internal constant NODES = 12;

    uint256 internal constant SUBMIT_BUDGET = 70_000;
    uint256 internal constant CLAIM_BUDGET = 120_000;
    uint256 internal constant VOTE_BUDGET = 70_000;
    uint256 internal constant FINALIZING_VOTE_BUDGET = 200_000;

    function setUp() public override {
        super.setUp();
        rounds = _deploy(_config(K7, QUORUM_BPS), false); // quorum ceil(7 * 0.6) = 5
        _startWith(NODES);
    }

    function test_gas_submitUpdate() public {
        _submit(1, 1);
        uint256 gas = _measure(_node(0), abi.encodeCall(rounds.submitUpdate, (1, _cid(7), 1000)));
        _report("submitUpdate", gas, SUBMIT_BUDGET);
    }

    function test_gas_submitUpdateThatClosesTraining() public {
        for (uint256 i = 0; i < K7; ++i) {
            _claim(i, 1, i + 1);
        }
        for (uint256 i = 1; i < NODES; ++i) {
            _submit(i, 1);
        }
        uint256 gas = _measure(_node(0), abi.encodeCall(rounds.submitUpdate, (1, _cid(7), 1000)));
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed early");
        _report("submitUpdate (closes training)", gas, SUBMIT_BUDGET);
    }

    function test_gas_claimSeatNotFull() public {
        for (uint256 i = 1; i < K7; ++i) {
            _claim(i, 1, 100 + i);
        }
        uint256 gas = _measure(_node(0), _claimCall(50));
        _report("claimSeat (last free seat, new highest)", gas, CLAIM_BUDGET);
    }

    function test_gas_claimSeatThatClosesTraining() public {
        for (uint256 i = 0; i < NODES; ++i) {
            _submit(i, 1);
        }
        for (uint256 i = 1; i < K7; ++i) {
            _claim(i, 1, 100 + i);
        }
        uint256 gas = _measure(_node(0), _claimCall(500));
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.Review), "closed early");
        _report("claimSeat (last seat, closes training)", gas, CLAIM_BUDGET);
    }

    function test_gas_claimSeatFullAndEvicting() public {
        for (uint256 i = 1; i <= K7; ++i) {
            _claim(i, 1, 100 + i);
        }
        uint256 gas = _measure(_node(0), _claimCall(50));
        assertFalse(rounds.isSeatHolder(1, _node(K7)), "highest evicted");
        _report("claimSeat (full, evicting)", gas, CLAIM_BUDGET);
    }

    function test_gas_voteAndFinalizingVote() public {
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
        _toReviewK7();
        bytes memory call =
            abi.encodeCall(rounds.proposeAggregate, (1, _cid(77), bytes32(uint256(1))));
        uint256 gas = _measure(_node(0), call);
        log("proposeAggregate tx gas (no budget)", gas);
        assertGe(gas, 21_000, "measured");
    }

    // ------------------------------------------------------------------ helpers

    function _toReviewK7() internal {
        for (uint256 i = 0; i < K7; ++i) {
            _submit(i, 1);
            _claim(i, 1, i + 1);
        }
        _warpPastTraining(1);
    }

    function _claimCall(uint256 rank) internal view returns (bytes memory) {
        return abi.encodeCall(rounds.claimSeat, (1, _output(rank), _proof(rank)));
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
}
