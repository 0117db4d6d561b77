// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS12381} from "../../src/BLS12381.sol";

/// @title BlsSigner
/// @notice BLS12-381 keys and signatures for forge tests, computed with the EIP-2537 MSM
/// precompiles: pk = sk * G2, sig = sk * H(message). Signing goes through the contract's own
/// `hashToG1`, which `BlsVectors.t.sol` checks against RFC 9380's published vectors, and the
/// Python side cross-checks the same proofs with two independent libraries.
library BlsSigner {
    /// @dev The order r of the BLS12-381 subgroups.
    uint256 internal constant ORDER =
        0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001;

    address private constant G1_MSM = address(0x0c);
    address private constant G2_MSM = address(0x0e);

    bytes private constant G2_GENERATOR = hex"00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8"
        hex"0000000000000000000000000000000013e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e"
        hex"000000000000000000000000000000000ce5d527727d6e118cc9cdc6da2e351aadfd9baa8cbdd3a76d429a695160d12c923ac9cc3baca289e193548608b82801"
        hex"000000000000000000000000000000000606c4a02ea734cc32acd2b02bc28b99cb3e287e85a763af267492ab572e99ab3f370d275cec1da1aaa9075ff05f79be";

    /// @notice A deterministic non-zero secret key for test identity `label`.
    function secretKey(uint256 label) internal pure returns (uint256 sk) {
        sk = uint256(keccak256(abi.encode("flare test bls key", label))) % ORDER;
        if (sk == 0) sk = 1;
    }

    /// @notice sk * G2, EIP-2537 encoded (256 bytes).
    function publicKey(uint256 sk) internal view returns (bytes memory) {
        return _call(G2_MSM, bytes.concat(G2_GENERATOR, bytes32(sk)), 256);
    }

    /// @notice sk * H(message) under `dst`, EIP-2537 encoded (128 bytes).
    function sign(uint256 sk, bytes memory message, bytes memory dst)
        internal
        view
        returns (bytes memory)
    {
        return _call(G1_MSM, bytes.concat(BLS12381.hashToG1(message, dst), bytes32(sk)), 128);
    }

    function _call(address precompile, bytes memory input, uint256 outLength)
        private
        view
        returns (bytes memory out)
    {
        bool ok;
        (ok, out) = precompile.staticcall(input);
        require(ok && out.length == outLength, "BLS precompile call failed");
    }
}
