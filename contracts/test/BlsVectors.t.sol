// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS12381} from "../src/BLS12381.sol";
import {BlsSigner} from "./base/BlsSigner.sol";
import {TestBase} from "./base/TestBase.sol";

/// @notice The BLS12-381 library against RFC 9380's published vectors for the G1 suite
/// BLS12381G1_XMD:SHA-256_SSWU_RO_ (Appendix J.9.1), read from the vector file the Python tests
/// read too, and signatures made with the MSM precompiles through the verifier.
contract BlsVectorsTest is TestBase {
    string internal constant VECTORS = "../tests/vectors/bls/rfc9380-g1-ro.json";

    function test_hashToCurve_matchesTheRfcVectors() public view {
        string memory json = vm.readFile(VECTORS);
        bytes memory dst = bytes(vm.parseJsonString(json, ".dst"));
        uint256 checked = 0;
        for (uint256 i = 0; vm.keyExistsJson(json, _key(i, "")); ++i) {
            bytes memory message = bytes(vm.parseJsonString(json, _key(i, ".msg")));
            (bytes memory u0, bytes memory u1) = BLS12381.hashToField(message, dst);
            assertEq(u0, _pad(vm.parseJsonBytes(json, _key(i, ".u0"))), "u0");
            assertEq(u1, _pad(vm.parseJsonBytes(json, _key(i, ".u1"))), "u1");
            bytes memory expected = bytes.concat(
                _pad(vm.parseJsonBytes(json, _key(i, ".P_x"))),
                _pad(vm.parseJsonBytes(json, _key(i, ".P_y")))
            );
            assertEq(BLS12381.hashToG1(message, dst), expected, "P");
            ++checked;
        }
        assertEq(checked, 4, "all four RFC messages checked");
    }

    function test_verify_acceptsASignatureAndRefusesEveryAlteration() public view {
        uint256 sk = BlsSigner.secretKey(1);
        bytes memory pk = BlsSigner.publicKey(sk);
        bytes memory dst = "FLARE-TEST-DST";
        bytes memory sig = BlsSigner.sign(sk, "message", dst);
        assertTrue(BLS12381.verify(pk, "message", dst, sig), "valid signature");
        assertFalse(BLS12381.verify(pk, "messagf", dst, sig), "other message");
        assertFalse(BLS12381.verify(pk, "message", "FLARE-TEST-DSU", sig), "other tag");
        bytes memory otherKey = BlsSigner.publicKey(BlsSigner.secretKey(2));
        assertFalse(BLS12381.verify(otherKey, "message", dst, sig), "other key");
        bytes memory flipped = bytes.concat(sig);
        flipped[127] = bytes1(uint8(flipped[127]) ^ 1);
        assertFalse(BLS12381.verify(pk, "message", dst, flipped), "point off the curve");
        bytes memory padded = bytes.concat(sig);
        padded[0] = 0x01;
        assertFalse(BLS12381.verify(pk, "message", dst, padded), "non-zero padding");
        assertFalse(BLS12381.verify(pk, "message", dst, new bytes(128)), "infinity");
        assertFalse(BLS12381.verify(pk, "message", dst, new bytes(127)), "short");
    }

    /// @dev What a claim's verification costs inside the call: the hash to G1 alone, and the
    /// whole check (hash plus the two-pair pairing, 102,900 gas at EIP-2537 prices).
    function test_gas_ofHashingAndVerifying() public view {
        uint256 sk = BlsSigner.secretKey(3);
        bytes memory pk = BlsSigner.publicKey(sk);
        bytes memory alpha = abi.encodePacked(keccak256("seed"), uint256(1));
        bytes memory dst = "FLARE-ROUNDS-V02-CS01-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";
        bytes memory proof = BlsSigner.sign(sk, alpha, dst);

        uint256 before = gasleft();
        BLS12381.hashToG1(alpha, dst);
        uint256 hashing = before - gasleft();
        before = gasleft();
        bool valid = BLS12381.verify(pk, alpha, dst, proof);
        uint256 verifying = before - gasleft();

        assertTrue(valid, "valid proof");
        assertGe(verifying, 102_900 + hashing, "the pairing and the hash");
        log("hashToG1 gas", hashing);
        log("verify gas (hash + pairing)", verifying);
    }

    function test_precompilesAreAvailable() public view {
        assertTrue(BLS12381.precompilesAvailable(), "prague precompiles");
    }

    function _key(uint256 i, string memory field) internal pure returns (string memory) {
        return string.concat(".vectors[", vm.toString(i), "]", field);
    }

    /// @dev A 48-byte coordinate as EIP-2537 encodes it: 16 zero bytes, then the coordinate.
    function _pad(bytes memory coordinate) internal pure returns (bytes memory) {
        return bytes.concat(bytes16(0), coordinate);
    }
}
