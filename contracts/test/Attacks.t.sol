// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS12381} from "../src/BLS12381.sol";
import {FlareRounds} from "../src/FlareRounds.sol";
import {IFlareRounds} from "../src/IFlareRounds.sol";
import {BlsSigner} from "./base/BlsSigner.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Attacks on seats and registration, each refused with its own custom error: garbage
/// and minimal-output proofs, replayed proofs, proofs for another round or seed or under a key
/// that is not registered, stolen or malformed BLS keys and replayed proofs of possession, and
/// the v1 attack of choosing one's own output to win seats round after round.
/// @dev In v1 a claim carried its output and the contract took it on trust; in v2 the output is
/// keccak256 of a BLS VRF proof the contract verifies, so an output nobody can prove is worth
/// nothing, however low.
contract AttacksTest is FlareRoundsFixture {
    uint256 internal constant NODES = 5;
    /// @dev Random 128-byte strings tried for the lowest output (see _lowestGarbage).
    uint256 internal constant GARBAGE_TRIES = 256;

    /// @dev A point on the G2 curve (x = 2, the smallest integer x with x^3 + 4(1 + i) a square
    /// in Fp2) that is not in the prime-order subgroup, computed with py_ecc.
    bytes internal constant G2_OUTSIDE_SUBGROUP = hex"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000200000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        hex"0000000000000000000000000000000018c6b864ae17dc9da64203ffefb966306425a7bc6aeb7c75247438372716284a4173830420cd476ba1a365b95bfcec3800000000000000000000000000000000172e93db764a8400a7d5071b6b6f5de0da2f0f4a063119abca014006b7c40a2cfe291a1924e65db0d6d0fcfbf3bf3d5c";

    address internal constant G2_ADD = address(0x0d);
    address internal constant G2_MSM = address(0x0e);

    function setUp() public override {
        super.setUp();
        _startWith(NODES);
    }

    // ------------------------------------------------------------------ 1. garbage proofs

    function test_claim_garbageProofIsRefused() public {
        bytes32 accumulator = rounds.getRound(1).vrfAccumulator;
        bytes memory key = _blsKey(0);
        bytes[] memory fakes = new bytes[](5);
        fakes[0] = _garbage(1); // 128 random bytes: not even a point encoding
        fakes[1] = new bytes(128); // the point at infinity
        // Valid G1 subgroup points that are not the node's VRF proof of round 1: its signature
        // of another message, and of the right message under the possession tag.
        fakes[2] = BlsSigner.sign(BlsSigner.secretKey(0), "another message", rounds.VRF_DST());
        bytes memory alpha = abi.encodePacked(rounds.getRound(1).seed, uint256(1));
        fakes[3] = BlsSigner.sign(BlsSigner.secretKey(0), alpha, rounds.POP_DST());
        // The real proof with one bit flipped.
        fakes[4] = _proofOf(0, 1);
        fakes[4][127] = bytes1(uint8(fakes[4][127]) ^ 1);

        for (uint256 i = 0; i < fakes.length; ++i) {
            _expectRevert(_invalidProof(1, _node(0)));
            vm.prank(_node(0));
            rounds.claimSeat(1, fakes[i], key);
        }
        assertEq(rounds.getRound(1).seatCount, 0, "no seat taken");
        assertFalse(rounds.isSeatHolder(1, _node(0)), "no seat held");
        assertEq(rounds.getRound(1).vrfAccumulator, accumulator, "accumulator untouched");

        _claim(0, 1); // a refused claim does not use up the node's one claim
        assertTrue(rounds.isSeatHolder(1, _node(0)), "the real proof wins its seat");
    }

    /// @dev The lowest-output string of a few hundred random ones ranks below every honest
    /// proof of the round: had the contract taken outputs on trust (v1), it would take a seat
    /// and evict the highest. It passes the rank check (so it is refused as a proof, not as too
    /// high) and fails the pairing.
    function test_claim_garbageProofWithTheLowestOutputIsRefused() public {
        (bytes memory garbage, uint96 garbageRank) = _lowestGarbage(GARBAGE_TRIES);
        uint256[] memory order = _byRank(1, NODES);
        assertLt(garbageRank, _rank(order[0], 1), "ranks below every honest proof");

        _expectRevert(_invalidProof(1, _node(order[4])));
        _claimWith(order[4], 1, garbage); // a free seat: refused all the same

        for (uint256 i = 0; i < K; ++i) {
            _claim(order[i], 1);
        }
        uint256[] memory seatsBefore = _seatWords(1);
        bytes32 accumulator = rounds.getRound(1).vrfAccumulator;
        for (uint256 i = K; i < NODES; ++i) {
            _expectRevert(_invalidProof(1, _node(order[i])));
            _claimWith(order[i], 1, garbage);
        }
        uint256[] memory seatsAfter = _seatWords(1);
        for (uint256 i = 0; i < K; ++i) {
            assertEq(seatsAfter[i], seatsBefore[i], "seats unchanged");
        }
        assertEq(rounds.getRound(1).vrfAccumulator, accumulator, "accumulator untouched");
    }

    // ------------------------------------------------------------------ 2. replayed proofs

    /// @dev B copies A's proof from A's pending transaction (front-running it) or from A's
    /// SeatClaimed event: with B's key the pairing fails; with A's key, the key is not B's.
    function test_claim_anotherNodesProofIsRefused() public {
        bytes memory proofA = _proofOf(0, 1);
        bytes memory keyA = _blsKey(0);
        bytes memory keyB = _blsKey(1);

        for (uint256 pass = 0; pass < 2; ++pass) {
            _expectRevert(_invalidProof(1, _node(1)));
            vm.prank(_node(1));
            rounds.claimSeat(1, proofA, keyB);

            _expectRevert(
                abi.encodeWithSelector(
                    IFlareRounds.FlareRoundsWrongBlsKey.selector, _node(1), keccak256(keyA)
                )
            );
            vm.prank(_node(1));
            rounds.claimSeat(1, proofA, keyA);

            if (pass == 0) _claim(0, 1); // A's own claim lands between the two attempts
        }
        assertTrue(rounds.isSeatHolder(1, _node(0)), "A holds its seat");
        assertFalse(rounds.isSeatHolder(1, _node(1)), "B holds none");
        assertEq(rounds.getRound(1).seatCount, 1, "one seat");
        _claim(1, 1);
        assertTrue(rounds.isSeatHolder(1, _node(1)), "B's own proof still wins its seat");
    }

    // ------------------------------------------------------------------ 3. other rounds, seeds

    function test_claim_proofForAnotherRoundOrSeedIsRefused() public {
        bytes32 seed1 = rounds.getRound(1).seed;
        _finalize(1, 3);
        bytes32 seed2 = rounds.getRound(2).seed;
        assertTrue(seed1 != seed2, "a new seed");

        uint256 sk = BlsSigner.secretKey(3);
        bytes memory vrfDst = rounds.VRF_DST();
        bytes[] memory proofs = new bytes[](5);
        proofs[0] = BlsSigner.sign(sk, abi.encodePacked(seed1, uint256(1)), vrfDst); // round 1's
        proofs[1] = BlsSigner.sign(sk, abi.encodePacked(seed1, uint256(2)), vrfDst); // old seed
        proofs[2] = BlsSigner.sign(sk, abi.encodePacked(seed2, uint256(1)), vrfDst); // old round
        proofs[3] =
            BlsSigner.sign(sk, abi.encodePacked(keccak256("made-up seed"), uint256(2)), vrfDst);
        proofs[4] = BlsSigner.sign(sk, abi.encodePacked(seed2, uint256(2)), rounds.POP_DST());

        for (uint256 i = 0; i < proofs.length; ++i) {
            _expectRevert(_invalidProof(2, _node(3)));
            _claimWith(3, 2, proofs[i]);
        }
        assertEq(rounds.getRound(2).seatCount, 0, "no seat taken");
        _claim(3, 2);
        assertTrue(rounds.isSeatHolder(2, _node(3)), "the proof over round 2's seed wins");
    }

    // ------------------------------------------------------------------ 4. unregistered keys

    function test_claim_underAKeyThatIsNotRegisteredIsRefused() public {
        uint256 sk = BlsSigner.secretKey(99);
        bytes memory freshKey = BlsSigner.publicKey(sk);
        bytes memory alpha = abi.encodePacked(rounds.getRound(1).seed, uint256(1));
        bytes memory proof = BlsSigner.sign(sk, alpha, rounds.VRF_DST());
        bytes memory ownKey = _blsKey(0);

        // A registered node with a proof under a fresh key, sent with that key.
        _expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsWrongBlsKey.selector, _node(0), keccak256(freshKey)
            )
        );
        vm.prank(_node(0));
        rounds.claimSeat(1, proof, freshKey);

        // The same proof sent with the node's registered key.
        _expectRevert(_invalidProof(1, _node(0)));
        vm.prank(_node(0));
        rounds.claimSeat(1, proof, ownKey);

        // An address that never registered, with its own key and a valid proof under it.
        _expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsNotEligible.selector, 1, stranger)
        );
        vm.prank(stranger);
        rounds.claimSeat(1, proof, freshKey);
        assertEq(rounds.getRound(1).seatCount, 0, "no seat taken");
    }

    // ------------------------------------------------------------------ 5. registration

    /// @dev The attacker copies the victim's pending registration (front-running it): the proof
    /// of possession signs the victim's address, not the attacker's. Once the victim registered,
    /// the key is bound to it, whatever proof the attacker brings.
    function test_register_withSomeoneElsesKeyIsRefused() public {
        address victim = _node(10);
        address attacker = _node(11);
        bytes memory key = _blsKey(10);
        bytes32 keyHash = keccak256(key);
        bytes memory victimPossession = _possession(10, victim);

        _expectRevert(
            abi.encodeWithSelector(
                IFlareRounds.FlareRoundsInvalidPossessionProof.selector, attacker
            )
        );
        vm.prank(attacker);
        rounds.register(key, victimPossession, _peerKey(11));
        assertEq(rounds.blsKeyOwner(keyHash), address(0), "key not bound");

        _register(10);
        assertEq(rounds.blsKeyOwner(keyHash), victim, "bound to the victim");

        // Even a possession proof made for the attacker's address (a key shared with it) cannot
        // take a key already bound to another address.
        bytes memory attackerPossession = _possession(10, attacker);
        bytes memory taken =
            abi.encodeWithSelector(IFlareRounds.FlareRoundsBlsKeyTaken.selector, keyHash, victim);
        _expectRevert(taken);
        vm.prank(attacker);
        rounds.register(key, attackerPossession, _peerKey(11));
        _expectRevert(taken);
        vm.prank(attacker);
        rounds.register(key, victimPossession, _peerKey(11));
        assertFalse(rounds.getNode(attacker).registered, "attacker not registered");
    }

    function test_register_possessionForAnotherChainContractOrTagIsRefused() public {
        address registrant = _node(10);
        uint256 sk = BlsSigner.secretKey(10);
        bytes memory key = _blsKey(10);
        FlareRounds other = _deploy(_config(K, QUORUM_BPS), false);
        bytes memory popDst = rounds.POP_DST();

        bytes[] memory proofs = new bytes[](4);
        proofs[0] = BlsSigner.sign(
            sk, abi.encodePacked(block.chainid + 1, address(rounds), registrant), popDst
        );
        proofs[1] =
            BlsSigner.sign(sk, abi.encodePacked(block.chainid, address(other), registrant), popDst);
        proofs[2] = BlsSigner.sign(
            sk, abi.encodePacked(block.chainid, address(rounds), registrant), rounds.VRF_DST()
        );
        // The message without the chain id (address(this) || registrant only).
        proofs[3] = BlsSigner.sign(sk, abi.encodePacked(address(rounds), registrant), popDst);

        for (uint256 i = 0; i < proofs.length; ++i) {
            _expectRevert(
                abi.encodeWithSelector(
                    IFlareRounds.FlareRoundsInvalidPossessionProof.selector, registrant
                )
            );
            vm.prank(registrant);
            rounds.register(key, proofs[i], _peerKey(10));
        }

        vm.prank(registrant);
        other.register(key, proofs[1], _peerKey(10)); // where it was made for, it is valid
        assertTrue(other.getNode(registrant).registered, "registered on the other contract");
        assertFalse(rounds.getNode(registrant).registered, "not on this one");
    }

    /// @dev With the identity as public key, the identity is a valid signature of every message,
    /// so the contract must refuse it before the pairing.
    function test_register_identityKeyIsRefused() public {
        bytes memory identity = new bytes(256);
        bytes memory identitySignature = new bytes(128);
        bytes memory message = abi.encodePacked(block.chainid, address(rounds), _node(10));
        assertTrue(
            BLS12381.verify(identity, message, rounds.POP_DST(), identitySignature),
            "the pairing alone would accept it"
        );

        _expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidBlsKey.selector));
        vm.prank(_node(10));
        rounds.register(identity, identitySignature, _peerKey(10));
    }

    function test_register_keyOutsideTheSubgroupIsRefused() public {
        bytes memory point = G2_OUTSIDE_SUBGROUP;
        // A failing precompile consumes the gas it was given: give these two little.
        (bool onCurve,) = G2_ADD.staticcall{gas: 100_000}(bytes.concat(point, point));
        assertTrue(onCurve, "G2ADD accepts it: a point on the curve");
        (bool inSubgroup,) =
            G2_MSM.staticcall{gas: 100_000}(bytes.concat(point, bytes32(uint256(2))));
        assertFalse(inSubgroup, "G2MSM refuses it: not in the subgroup");
        (bool control,) =
            G2_MSM.staticcall{gas: 100_000}(bytes.concat(_blsKey(10), bytes32(uint256(2))));
        assertTrue(control, "G2MSM takes a subgroup point with that gas");

        bytes[] memory proofs = new bytes[](2);
        proofs[0] = _possession(10, _node(10)); // a valid G1 point
        proofs[1] = new bytes(128);
        for (uint256 i = 0; i < proofs.length; ++i) {
            _expectRevert(_invalidPossession(_node(10)));
            vm.prank(_node(10));
            rounds.register(point, proofs[i], _peerKey(10));
        }
        assertEq(rounds.blsKeyOwner(keccak256(point)), address(0), "not bound");
    }

    function test_register_corruptedKeyIsRefused() public {
        bytes memory possession = _possession(10, _node(10));
        uint256[3] memory positions = [uint256(255), 100, 0]; // a y bit, an x bit, the padding
        for (uint256 i = 0; i < positions.length; ++i) {
            bytes memory key = bytes.concat(_blsKey(10));
            key[positions[i]] = bytes1(uint8(key[positions[i]]) ^ 1);
            _expectRevert(_invalidPossession(_node(10)));
            vm.prank(_node(10));
            rounds.register(key, possession, _peerKey(10));
        }
        _register(10);
        assertTrue(rounds.getNode(_node(10)).registered, "the intact key registers");
    }

    function test_register_wrongLengthsAreRefused() public {
        bytes memory key = _blsKey(10);
        bytes memory possession = _possession(10, _node(10));
        uint256[5] memory keyLengths = [uint256(0), 128, 255, 257, 512];
        for (uint256 i = 0; i < keyLengths.length; ++i) {
            bytes memory bad = _resized(key, keyLengths[i]);
            _expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidBlsKey.selector));
            vm.prank(_node(10));
            rounds.register(bad, possession, _peerKey(10));
        }
        uint256[4] memory proofLengths = [uint256(0), 64, 127, 129];
        for (uint256 i = 0; i < proofLengths.length; ++i) {
            bytes memory bad = _resized(possession, proofLengths[i]);
            _expectRevert(_invalidPossession(_node(10)));
            vm.prank(_node(10));
            rounds.register(key, bad, _peerKey(10));
        }
    }

    function test_register_zeroPeerKeyIsRefused() public {
        bytes memory key = _blsKey(10);
        bytes memory possession = _possession(10, _node(10));
        _expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidPeerKey.selector));
        vm.prank(_node(10));
        rounds.register(key, possession, bytes32(0));
    }

    // ------------------------------------------------------------------ 6. the v1 attack

    /// @dev In v1 one node could claim output 0 in every round and sit on every committee. Here
    /// it sends the lowest-output garbage it can find in each of ten rounds, before the seats
    /// fill and after: every attempt is refused as an invalid proof, while the honest claims
    /// take the seats.
    function test_attack_chosenOutputWinsNoSeatInTenRounds() public {
        rounds = _deploy(_config(K, QUORUM_BPS), false);
        _startWith(NODES + 1);
        uint256 attacker = NODES; // node 5; nodes 0..4 are honest
        (bytes memory garbage, uint96 garbageRank) = _lowestGarbage(GARBAGE_TRIES);

        uint256 seatsWon = 0;
        for (uint256 round = 1; round <= 10; ++round) {
            assertEq(rounds.currentRound(), round, "round open");
            _expectRevert(_invalidProof(round, _node(attacker)));
            _claimWith(attacker, round, garbage);

            uint256[] memory order = _byRank(round, NODES);
            for (uint256 i = 0; i < K; ++i) {
                _claim(order[i], round);
            }
            assertLt(garbageRank, rounds.seats(round)[0].rank, "would beat the highest seat");
            // A second try is refused too: its one claim was not used up by the first.
            _expectRevert(_invalidProof(round, _node(attacker)));
            _claimWith(attacker, round, garbage);

            if (rounds.isSeatHolder(round, _node(attacker))) ++seatsWon;
            IFlareRounds.Seat[] memory list = rounds.seats(round);
            for (uint256 i = 0; i < list.length; ++i) {
                assertTrue(list[i].holder != _node(attacker), "attacker in the heap");
                assertTrue(rounds.isSeatHolder(round, list[i].holder), "honest holder");
            }
            assertEq(list.length, K, "honest claims fill the seats");

            _warpPastTraining(round);
            rounds.closeRound(round); // no updates: the round fails and the next one opens
        }
        assertEq(seatsWon, 0, "no seat in ten rounds");
        assertEq(rounds.currentRound(), 11, "ten rounds played");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev 128 bytes derived from `seed`: random-looking, not a point encoding.
    function _garbage(uint256 seed) internal pure returns (bytes memory) {
        return abi.encodePacked(
            keccak256(abi.encode("garbage", seed, 0)),
            keccak256(abi.encode("garbage", seed, 1)),
            keccak256(abi.encode("garbage", seed, 2)),
            keccak256(abi.encode("garbage", seed, 3))
        );
    }

    /// @dev Of `tries` garbage strings, the one whose keccak256 (the output the contract would
    /// derive) ranks lowest, and that rank.
    function _lowestGarbage(uint256 tries)
        internal
        pure
        returns (bytes memory best, uint96 bestRank)
    {
        bestRank = type(uint96).max;
        for (uint256 i = 0; i < tries; ++i) {
            bytes memory candidate = _garbage(i);
            uint96 rank = uint96(uint256(keccak256(candidate)) >> 160);
            if (rank < bestRank) {
                bestRank = rank;
                best = candidate;
            }
        }
    }

    /// @dev `data` cut or zero-extended to `length` bytes.
    function _resized(bytes memory data, uint256 length) internal pure returns (bytes memory out) {
        out = new bytes(length);
        for (uint256 i = 0; i < length && i < data.length; ++i) {
            out[i] = data[i];
        }
    }

    function _invalidProof(uint256 round, address node) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidProof.selector, round, node);
    }

    function _invalidPossession(address node) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidPossessionProof.selector, node);
    }
}
