// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Vm
/// @notice The forge cheatcodes the FlareRounds tests use, declared at the cheatcode address.
/// @dev The project carries its own small test base because the npm `forge-std` package does not
/// compile (it imports `ds-test`, which it does not ship). Signatures follow forge 1.x.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    struct Gas {
        uint64 gasLimit;
        uint64 gasTotalUsed;
        uint64 gasMemoryUsed;
        int64 gasRefunded;
        uint64 gasRemaining;
    }

    // -- environment
    function warp(uint256 newTimestamp) external;
    function prevrandao(bytes32 newPrevrandao) external;
    function cool(address target) external;
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);

    // -- callers
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;

    // -- expectations
    function expectRevert() external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(
        bool checkTopic1,
        bool checkTopic2,
        bool checkTopic3,
        bool checkData,
        address emitter
    ) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function lastCallGas() external view returns (Gas memory gas);

    // -- files and JSON (paths under fs_permissions in foundry.toml)
    function readFile(string calldata path) external view returns (string memory data);
    function keyExistsJson(string calldata json, string calldata key) external view returns (bool);
    function parseJsonString(string calldata json, string calldata key)
        external
        pure
        returns (string memory);
    function parseJsonBytes(string calldata json, string calldata key)
        external
        pure
        returns (bytes memory);

    // -- labels and formatting
    function label(address account, string calldata newLabel) external;
    function toString(uint256 value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function toString(address value) external pure returns (string memory);
    function toString(bool value) external pure returns (string memory);
    function toString(bytes calldata value) external pure returns (string memory);
}
