// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title BLS12381
/// @notice BLS12-381 signatures checked with the EIP-2537 precompiles: hash to G1 (RFC 9380,
/// suite BLS12381G1_XMD:SHA-256_SSWU_RO_) and a two-pair pairing check. FlareRounds uses them
/// for VRF seat proofs (a BLS signature is unique, so it serves as a VRF) and for the proof of
/// possession a node registers with.
/// @dev Points use the EIP-2537 encodings: a G1 point is x || y and a G2 point
/// x.c0 || x.c1 || y.c0 || y.c1, each coordinate a 48-byte big-endian integer left-padded to 64
/// bytes; the point at infinity is all zeros. The precompiles refuse coordinates >= p, non-zero
/// padding and points off the curve, and the pairing check refuses points outside the prime-order
/// subgroups, so a valid signature has exactly one encoding. Calls forward more gas than today's
/// prices, so a later repricing cannot break verification; the pairing check, which a malformed
/// point makes fail (a failing precompile consumes all the gas it was given), gets four times
/// its price rather than all the transaction's gas.
library BLS12381 {
    uint256 internal constant G1_POINT_BYTES = 128;
    uint256 internal constant G2_POINT_BYTES = 256;

    // EIP-2537 (Prague) and EIP-198 precompiles.
    uint160 private constant SHA256 = 0x02;
    uint160 private constant MODEXP = 0x05;
    uint160 private constant G1_ADD = 0x0b;
    uint160 private constant PAIRING_CHECK = 0x0f;
    uint160 private constant MAP_FP_TO_G1 = 0x10;

    /// @dev Four times the EIP-2537 price of a two-pair pairing check (32,600 * 2 + 37,700).
    uint256 private constant PAIRING_GAS_LIMIT = 4 * 102_900;

    // The field modulus p, as the 64-byte big-endian word pair the modexp precompile takes.
    bytes32 private constant P_HI =
        0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7;
    bytes32 private constant P_LO =
        0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;

    /// @dev -G2: the negated generator of G2. e(sig, -G2) * e(H(m), pk) == 1 iff
    /// e(sig, G2) == e(H(m), pk).
    bytes private constant NEG_G2 = hex"00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8"
        hex"0000000000000000000000000000000013e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e"
        hex"000000000000000000000000000000000d1b3cc2c7027888be51d9ef691d77bcb679afda66c73f17f9ee3837a55024f78c71363275a75d75d86bab79f74782aa"
        hex"0000000000000000000000000000000013fa4d4a0ad8b1ce186ed5061789213d993923066dddaf1040bc3ff59f825c78df74f2d75467e25e0f55f8a00fa030ed";

    /// @notice A precompile this library needs is missing or answered with the wrong length: the
    /// chain does not implement EIP-2537 (Prague).
    error BLS12381PrecompileUnavailable(address precompile);

    /// @notice Whether the chain answers the EIP-2537 precompiles (checked once, at deployment,
    /// so a chain without them is refused before anyone registers). EIP-2537 comes whole with a
    /// hard fork, so one precompile answering stands for all; MAP_FP_TO_G1 is the cheapest to
    /// ask, a pairing would cost an in-process EVM written in Python most of a second.
    function precompilesAvailable() internal view returns (bool) {
        (bool ok, bytes memory out) = address(MAP_FP_TO_G1).staticcall(new bytes(64));
        return ok && out.length == G1_POINT_BYTES;
    }

    /// @notice hash_to_curve(message) for G1 (RFC 9380 §3, BLS12381G1_XMD:SHA-256_SSWU_RO_) under
    /// the domain separation tag `dst`: two field elements from expand_message_xmd, each mapped
    /// (MAP_FP_TO_G1 clears the cofactor) and added.
    function hashToG1(bytes memory message, bytes memory dst)
        internal
        view
        returns (bytes memory point)
    {
        (bytes memory u0, bytes memory u1) = hashToField(message, dst);
        bytes memory input = bytes.concat(_mapToG1(u0), _mapToG1(u1));
        point = new bytes(G1_POINT_BYTES);
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), G1_ADD, add(input, 32), 256, add(point, 32), 128)
            ok := and(ok, eq(returndatasize(), 128))
        }
        if (!ok) revert BLS12381PrecompileUnavailable(address(G1_ADD));
    }

    /// @notice hash_to_field(message, 2) for G1 (RFC 9380 §5.2): two field elements, each a
    /// 64-byte EIP-2537 encoding, from 128 bytes of expand_message_xmd reduced modulo p.
    function hashToField(bytes memory message, bytes memory dst)
        internal
        view
        returns (bytes memory u0, bytes memory u1)
    {
        (bytes32 b1, bytes32 b2, bytes32 b3, bytes32 b4) = _expandMessageXmd128(message, dst);
        u0 = _reduce(b1, b2);
        u1 = _reduce(b3, b4);
    }

    /// @notice Whether `signature` (G1) is `publicKey`'s (G2) signature of `message` under `dst`:
    /// e(signature, G2) == e(H(message), publicKey). False for malformed points, points off the
    /// curve or outside the subgroups.
    /// @dev The caller refuses the identity as a public key: with publicKey = O the check
    /// accepts signature = O for every message.
    function verify(
        bytes memory publicKey,
        bytes memory message,
        bytes memory dst,
        bytes memory signature
    ) internal view returns (bool) {
        if (publicKey.length != G2_POINT_BYTES || signature.length != G1_POINT_BYTES) {
            return false;
        }
        bytes memory input = bytes.concat(signature, NEG_G2, hashToG1(message, dst), publicKey);
        bool ok;
        uint256 result;
        assembly ("memory-safe") {
            let out := mload(0x40)
            ok := staticcall(PAIRING_GAS_LIMIT, PAIRING_CHECK, add(input, 32), 768, out, 32)
            ok := and(ok, eq(returndatasize(), 32))
            result := mload(out)
        }
        return ok && result == 1;
    }

    /// @notice Whether `point` encodes the point at infinity (all zeros).
    function isInfinity(bytes memory point) internal pure returns (bool) {
        return keccak256(point) == keccak256(new bytes(point.length));
    }

    // ------------------------------------------------------------------ internals

    /// @dev expand_message_xmd with SHA-256 (RFC 9380 §5.3.1) for len_in_bytes = 128: the
    /// uniform bytes b_1 || b_2 || b_3 || b_4 that hash_to_field splits into two 64-byte halves.
    function _expandMessageXmd128(bytes memory message, bytes memory dst)
        private
        view
        returns (bytes32 b1, bytes32 b2, bytes32 b3, bytes32 b4)
    {
        // forge-lint: disable-next-line(unsafe-typecast) DSTs are constants shorter than 256 bytes
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        // msg' = Z_pad (64 zero bytes) || msg || I2OSP(128, 2) || I2OSP(0, 1) || DST'
        bytes32 b0 = _sha256(
            abi.encodePacked(bytes32(0), bytes32(0), message, uint16(128), uint8(0), dstPrime)
        );
        b1 = _sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        b2 = _sha256(abi.encodePacked(b0 ^ b1, uint8(2), dstPrime));
        b3 = _sha256(abi.encodePacked(b0 ^ b2, uint8(3), dstPrime));
        b4 = _sha256(abi.encodePacked(b0 ^ b3, uint8(4), dstPrime));
    }

    function _sha256(bytes memory data) private view returns (bytes32 digest) {
        bool ok;
        assembly ("memory-safe") {
            let out := mload(0x40)
            ok := staticcall(gas(), SHA256, add(data, 32), mload(data), out, 32)
            ok := and(ok, eq(returndatasize(), 32))
            digest := mload(out)
        }
        if (!ok) revert BLS12381PrecompileUnavailable(address(SHA256));
    }

    /// @dev (hi || lo) mod p as a 64-byte field element, through modexp with exponent 1.
    function _reduce(bytes32 hi, bytes32 lo) private view returns (bytes memory element) {
        bytes memory input =
            abi.encodePacked(uint256(64), uint256(1), uint256(64), hi, lo, uint8(1), P_HI, P_LO);
        element = new bytes(64);
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), MODEXP, add(input, 32), mload(input), add(element, 32), 64)
            ok := and(ok, eq(returndatasize(), 64))
        }
        if (!ok) revert BLS12381PrecompileUnavailable(address(MODEXP));
    }

    function _mapToG1(bytes memory element) private view returns (bytes memory point) {
        point = new bytes(G1_POINT_BYTES);
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), MAP_FP_TO_G1, add(element, 32), 64, add(point, 32), 128)
            ok := and(ok, eq(returndatasize(), 128))
        }
        if (!ok) revert BLS12381PrecompileUnavailable(address(MAP_FP_TO_G1));
    }
}
