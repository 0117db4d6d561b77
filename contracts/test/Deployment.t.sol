// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {FlareRounds} from "../src/FlareRounds.sol";
import {IFlareRounds} from "../src/IFlareRounds.sol";
import {Vm} from "./base/Vm.sol";
import {FlareRoundsFixture} from "./base/FlareRoundsFixture.sol";

/// @notice Constructor, start() and two-step ownership.
contract DeploymentTest is FlareRoundsFixture {
    // ------------------------------------------------------------------ constructor

    function test_constructor_storesParameters() public view {
        assertEq(rounds.owner(), owner, "owner");
        assertEq(rounds.modelSpecHash(), SPEC_HASH, "spec hash");
        assertEq(rounds.genesisModel(), _genesis(), "genesis");
        assertFalse(rounds.allowlistEnabled(), "allowlist");
        IFlareRounds.Config memory cfg = rounds.config();
        assertEq(cfg.committeeSize, K, "k");
        assertEq(cfg.quorumBps, QUORUM_BPS, "quorumBps");
        assertEq(cfg.trainWindow, TRAIN_WINDOW, "trainWindow");
        assertEq(cfg.reviewWindow, REVIEW_WINDOW, "reviewWindow");
        assertEq(cfg.minClaimWindow, 0, "minClaimWindow");
        assertEq(cfg.minUpdates, MIN_UPDATES, "minUpdates");
        assertEq(cfg.maxSamples, MAX_SAMPLES, "maxSamples");
        assertEq(cfg.reviewPolicy, _policy(), "reviewPolicy");
        assertEq(rounds.currentRound(), 0, "not started");
        assertEq(rounds.nodeCount(), 0, "no nodes");
        assertFalse(rounds.paused(), "paused");
    }

    function test_constructor_emitsConfigAndAllowlist() public {
        IFlareRounds.Config memory cfg = _config(5, 6000);
        cfg.reviewPolicy = _cid(5);
        vm.recordLogs();
        FlareRounds deployed = _deploy(cfg, true);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        assertEq(logs.length, 3, "OwnershipTransferred, ConfigSet, AllowlistSet");
        assertEq(logs[1].topics[0], IFlareRounds.ConfigSet.selector, "ConfigSet topic");
        assertEq(logs[1].topics[1], bytes32(uint256(1)), "effective from round 1");
        IFlareRounds.Config memory logged = abi.decode(logs[1].data, (IFlareRounds.Config));
        assertEq(logged.committeeSize, 5, "logged k");
        assertEq(logged.quorumBps, 6000, "logged quorumBps");
        assertEq(logged.maxSamples, MAX_SAMPLES, "logged maxSamples");
        assertEq(logged.reviewPolicy, _cid(5), "logged review policy");
        assertEq(logs[2].topics[0], IFlareRounds.AllowlistSet.selector, "AllowlistSet topic");
        assertEq(abi.decode(logs[2].data, (bool)), true, "allowlist on");
        assertEq(logs[2].emitter, address(deployed), "emitter");
        assertTrue(deployed.allowlistEnabled(), "stored allowlist");
    }

    function test_constructor_revertsOnZeroOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new FlareRounds(address(0), SPEC_HASH, _genesis(), _config(K, QUORUM_BPS), false);
    }

    function test_constructor_revertsOnZeroSpecHash() public {
        _expectInvalidConfig("modelSpecHash is zero");
        new FlareRounds(owner, bytes32(0), _genesis(), _config(K, QUORUM_BPS), false);
    }

    function test_constructor_revertsOnEmptyGenesis() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidCid.selector, 0));
        new FlareRounds(owner, SPEC_HASH, "", _config(K, QUORUM_BPS), false);
    }

    function test_constructor_revertsOnOversizedGenesis() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidCid.selector, 129));
        new FlareRounds(owner, SPEC_HASH, new bytes(129), _config(K, QUORUM_BPS), false);
    }

    function test_constructor_revertsOnInvalidConfig() public {
        IFlareRounds.Config memory cfg = _config(0, QUORUM_BPS);
        _expectInvalidConfig("committeeSize must be 1..64");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(65, QUORUM_BPS);
        _expectInvalidConfig("committeeSize must be 1..64");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, 0);
        _expectInvalidConfig("quorumBps must be 1..10000");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, 10_001);
        _expectInvalidConfig("quorumBps must be 1..10000");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(4, 5000);
        _expectInvalidConfig("quorum must be more than half of committeeSize");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, QUORUM_BPS);
        cfg.trainWindow = 0;
        _expectInvalidConfig("trainWindow must be > 0");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, QUORUM_BPS);
        cfg.reviewWindow = 0;
        _expectInvalidConfig("reviewWindow must be > 0");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, QUORUM_BPS);
        cfg.minClaimWindow = TRAIN_WINDOW + 1;
        _expectInvalidConfig("minClaimWindow must be <= trainWindow");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, QUORUM_BPS);
        cfg.minUpdates = 0;
        _expectInvalidConfig("minUpdates must be >= 1");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, QUORUM_BPS);
        cfg.maxSamples = 0;
        _expectInvalidConfig("maxSamples must be >= 1");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);

        cfg = _config(K, QUORUM_BPS);
        cfg.reviewPolicy = "";
        _expectInvalidConfig("reviewPolicy must be a CID of 1..128 bytes");
        new FlareRounds(owner, SPEC_HASH, _genesis(), cfg, false);
    }

    function test_constructor_acceptsBoundaryConfig() public {
        IFlareRounds.Config memory cfg = _config(64, 10_000);
        cfg.minUpdates = 1;
        cfg.trainWindow = 1;
        cfg.reviewWindow = 1;
        cfg.minClaimWindow = 1; // = trainWindow
        cfg.maxSamples = 1;
        cfg.reviewPolicy = new bytes(128);
        FlareRounds deployed = _deploy(cfg, false);
        assertEq(deployed.config().committeeSize, 64, "k = 64 accepted");
        assertEq(deployed.config().quorumBps, 10_000, "quorumBps = 10000 accepted");
        assertEq(deployed.config().minClaimWindow, 1, "minClaimWindow = trainWindow accepted");
        assertEq(deployed.config().maxSamples, 1, "maxSamples = 1 accepted");
        assertEq(deployed.config().reviewPolicy.length, 128, "a 128-byte policy accepted");
    }

    // ------------------------------------------------------------------ before start

    function test_beforeStart_viewsDescribeNoRound() public view {
        assertEq(uint256(rounds.phase(0)), uint256(IFlareRounds.Phase.None), "phase 0");
        assertEq(uint256(rounds.phase(1)), uint256(IFlareRounds.Phase.None), "phase 1");
        IFlareRounds.RoundView memory r = rounds.getRound(1);
        assertEq(r.round, 1, "round echoed");
        assertEq(r.seed, bytes32(0), "no seed");
        assertEq(r.vrfAccumulator, bytes32(0), "no accumulator");
        assertEq(r.trainEnd, 0, "no trainEnd");
        assertEq(r.reviewPolicy.length, 0, "no policy");
        assertEq(rounds.seats(1).length, 0, "no seats");
        (uint256 round, bytes memory cid) = rounds.globalModel();
        assertEq(round, 0, "global round");
        assertEq(cid, _genesis(), "global model is genesis");
    }

    function test_baseModel_revertsForUnopenedRound() public {
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 1, 0));
        rounds.baseModel(1);
        vm.expectRevert(abi.encodeWithSelector(IFlareRounds.FlareRoundsWrongRound.selector, 0, 0));
        rounds.baseModel(0);
    }

    // ------------------------------------------------------------------ start

    function test_start_opensRoundOneOnGenesis() public {
        _registerNodes(4);
        vm.prevrandao(bytes32(uint256(0xCAFE)));
        // Round 0 has no seed and no accumulator.
        bytes32 seed = keccak256(
            abi.encode(bytes32(0), uint256(0xCAFE), uint256(1), address(rounds), bytes32(0))
        );
        IFlareRounds.RoundParams memory params = IFlareRounds.RoundParams({
            trainEnd: uint64(START_TIME + TRAIN_WINDOW),
            claimEnd: uint64(START_TIME),
            reviewWindow: REVIEW_WINDOW,
            committeeSize: K,
            quorum: 2,
            minUpdates: MIN_UPDATES,
            maxSamples: MAX_SAMPLES,
            eligibleNodes: 4
        });

        _expectEmit();
        emit IFlareRounds.RoundOpened(1, seed, 0, _genesis(), params, _policy());
        vm.prank(owner);
        rounds.start();

        IFlareRounds.RoundView memory r = rounds.getRound(1);
        assertEq(rounds.currentRound(), 1, "current round");
        assertEq(uint256(r.phase), uint256(IFlareRounds.Phase.Training), "training");
        assertEq(r.seed, seed, "seed");
        assertEq(r.vrfAccumulator, seed, "accumulator starts at the seed");
        assertEq(r.baseRound, 0, "base = genesis");
        assertEq(r.openedAt, START_TIME, "openedAt");
        assertEq(r.claimEnd, START_TIME, "claimEnd = openedAt + minClaimWindow");
        assertEq(r.trainEnd, START_TIME + TRAIN_WINDOW, "trainEnd");
        assertEq(r.reviewStart, START_TIME + TRAIN_WINDOW, "reviewStart = trainEnd");
        assertEq(r.reviewEnd, START_TIME + TRAIN_WINDOW + REVIEW_WINDOW, "reviewEnd");
        assertEq(r.committeeSize, K, "k");
        assertEq(r.quorum, 2, "quorum");
        assertEq(r.minUpdates, MIN_UPDATES, "minUpdates");
        assertEq(r.maxSamples, MAX_SAMPLES, "maxSamples");
        assertEq(r.eligibleNodes, 4, "eligible");
        assertEq(r.reviewPolicy, _policy(), "review policy");
        assertEq(rounds.baseModel(1), _genesis(), "base model");
    }

    function test_start_revertsWhenStartedTwice() public {
        _startWith(1);
        vm.expectRevert(IFlareRounds.FlareRoundsAlreadyStarted.selector);
        vm.prank(owner);
        rounds.start();
    }

    function test_start_revertsForNonOwner() public {
        vm.expectRevert(
            abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger)
        );
        vm.prank(stranger);
        rounds.start();
    }

    function test_start_withNoNodesOpensAnEmptyRound() public {
        vm.prank(owner);
        rounds.start();
        assertEq(rounds.getRound(1).eligibleNodes, 0, "no eligible nodes");
    }

    // ------------------------------------------------------------------ ownership

    function test_ownership_transfersInTwoSteps() public {
        vm.prank(owner);
        rounds.transferOwnership(stranger);
        assertEq(rounds.owner(), owner, "owner unchanged until accepted");
        assertEq(rounds.pendingOwner(), stranger, "pending owner");

        vm.prank(stranger);
        rounds.acceptOwnership();
        assertEq(rounds.owner(), stranger, "new owner");
        assertEq(rounds.pendingOwner(), address(0), "pending cleared");

        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        vm.prank(owner);
        rounds.pause();
    }

    function test_ownership_acceptRevertsForAnyoneButThePendingOwner() public {
        vm.prank(owner);
        rounds.transferOwnership(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, _node(1))
        );
        vm.prank(_node(1));
        rounds.acceptOwnership();
    }

    function _expectInvalidConfig(string memory reason) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IFlareRounds.FlareRoundsInvalidConfig.selector, reason)
        );
    }
}
