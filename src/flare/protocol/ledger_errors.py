"""Errors of the round contract as Python exceptions, so node code can catch them by name.

The node layer cannot import `flare.chain`, yet it must tell "not eligible" from "already
submitted". Each custom error of FlareRounds (and OpenZeppelin's Ownable and Pausable errors the
contract inherits) has a subclass here; `flare.chain` decodes revert data into them, the same
way whether the chain is the in-process EVM or a JSON-RPC node. Re-exported by
`flare.protocol.ledger`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from flare.protocol.errors import FlareError
from flare.protocol.rounds import Phase

__all__ = [
    "CONTRACT_ERRORS",
    "AlreadyClaimedError",
    "AlreadyProposedError",
    "AlreadyRegisteredError",
    "AlreadyStartedError",
    "AlreadySubmittedError",
    "AlreadyVotedError",
    "BlsKeyTakenError",
    "ContractError",
    "ContractInputError",
    "ContractPermissionError",
    "EnforcedPauseError",
    "ExpectedPauseError",
    "InvalidBlsKeyError",
    "InvalidCidError",
    "InvalidConfigError",
    "InvalidPeerKeyError",
    "InvalidPossessionProofError",
    "InvalidProofError",
    "NoBlsPrecompilesError",
    "NotAllowedError",
    "NotClosableError",
    "NotEligibleError",
    "NotRegisteredError",
    "NotSeatHolderError",
    "NotStartedError",
    "OutputTooHighError",
    "OwnableInvalidOwnerError",
    "OwnableUnauthorizedAccountError",
    "PrecompileUnavailableError",
    "RevertedError",
    "TooManySamplesError",
    "UnknownProposalError",
    "WrongBlsKeyError",
    "WrongPhaseError",
    "WrongRoundError",
    "ZeroSamplesError",
    "contract_error",
]


class _Shown(dict[str, str]):
    """Template arguments; a name the contract did not send prints as `?` instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Phase):
        return value.name.lower()
    return str(value)


class ContractError(FlareError, RuntimeError):
    """The contract refused a call: `error_name` is its custom error, `error_args` the arguments.

    Subclasses exist per custom error of FlareRounds (and OpenZeppelin's Ownable/Pausable);
    `contract_error()` builds the right one from a decoded revert.
    """

    solidity_name: ClassVar[str] = ""
    template: ClassVar[str] = "the contract refused the call"
    hint_template: ClassVar[str | None] = None
    phase_args: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        error_args: Mapping[str, Any] | None = None,
        *,
        error_name: str | None = None,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        args = dict(error_args or {})
        for name in self.phase_args:
            if isinstance(args.get(name), int):
                args[name] = Phase(args[name])
        self.error_name = error_name or self.solidity_name
        self.error_args = args
        shown = _Shown({name: _show(value) for name, value in args.items()})
        if message is None:
            message = f"{self.error_name}: {self.template.format_map(shown)}"
        if hint is None and self.hint_template is not None:
            hint = self.hint_template.format_map(shown)
        super().__init__(message, hint=hint)


_REFRESH = "read the current round from the chain and retry"


class RevertedError(ContractError):
    """A revert that is not one of the contract's custom errors (a string, a panic, no data)."""


class ContractInputError(ContractError, ValueError):
    """The call carried a value the contract rejects whatever its state (length, zero, range)."""


class ContractPermissionError(ContractError):
    """The sender is not allowed to make this call."""


# One class per custom error; `template` and `hint_template` take the ABI argument names.


class NotAllowedError(ContractPermissionError):
    solidity_name = "FlareRoundsNotAllowed"
    template = "node {node} is not on the allowlist"
    hint_template = "the contract owner can add it with `flare-node contract allow {node}`"


class AlreadyRegisteredError(ContractError):
    solidity_name = "FlareRoundsAlreadyRegistered"
    template = "node {node} is already registered"
    hint_template = "nothing to do; to change its keys, deregister first"


class NotRegisteredError(ContractError):
    solidity_name = "FlareRoundsNotRegistered"
    template = "node {node} is not registered"
    hint_template = "register the node with `flare-node register` first"


class InvalidBlsKeyError(ContractInputError):
    solidity_name = "FlareRoundsInvalidBlsKey"
    template = "the BLS public key is not a 256-byte G2 point other than the identity"
    hint_template = "register the key `flare-node keys show` prints"


class BlsKeyTakenError(ContractError):
    solidity_name = "FlareRoundsBlsKeyTaken"
    template = "BLS key {blsKeyHash} (keccak256) is already bound to {owner}"
    hint_template = "every node needs its own BLS key: create one with `flare-node keys add-bls`"


class InvalidPossessionProofError(ContractError):
    solidity_name = "FlareRoundsInvalidPossessionProof"
    template = "the proof of possession does not prove {node} holds this BLS key here"
    hint_template = (
        "a proof of possession is made by the key's owner for one address, chain and contract; "
        "register from the node that holds the key"
    )


class InvalidPeerKeyError(ContractInputError):
    solidity_name = "FlareRoundsInvalidPeerKey"
    template = "the ed25519 peer key is zero"
    hint_template = "register the peer key `flare-node keys show` prints"


class NoBlsPrecompilesError(ContractError):
    solidity_name = "FlareRoundsNoBlsPrecompiles"
    template = "this chain lacks the EIP-2537 BLS12-381 precompiles"
    hint_template = "deploy on a chain with the Prague hard fork (anvil --hardfork prague or later)"


class PrecompileUnavailableError(ContractError):
    solidity_name = "BLS12381PrecompileUnavailable"
    template = "the chain did not answer the BLS12-381 precompile at {precompile}"
    hint_template = "use a chain with the Prague hard fork (EIP-2537), as anvil and eth-tester have"


class NotStartedError(ContractError):
    solidity_name = "FlareRoundsNotStarted"
    template = "rounds have not started yet"
    hint_template = "the contract owner opens round 1 with `flare-node contract start`"


class AlreadyStartedError(ContractError):
    solidity_name = "FlareRoundsAlreadyStarted"
    template = "rounds have already started"
    hint_template = "nothing to do: rounds open one after another by themselves"


class WrongRoundError(ContractError):
    solidity_name = "FlareRoundsWrongRound"
    template = "round {round} is not the current round ({currentRound})"
    hint_template = _REFRESH


class WrongPhaseError(ContractError):
    solidity_name = "FlareRoundsWrongPhase"
    template = "round {round} is in phase {actual}; this call needs phase {expected}"
    hint_template = "wait for the phase, or read the round from the chain and retry"
    phase_args = ("expected", "actual")


class NotEligibleError(ContractError):
    solidity_name = "FlareRoundsNotEligible"
    template = "node {node} is not eligible in round {round}"
    hint_template = "a node takes part from the first round opened after it registered"


class AlreadySubmittedError(ContractError):
    solidity_name = "FlareRoundsAlreadySubmitted"
    template = "node {node} already submitted an update in round {round}"
    hint_template = "one update per node per round: nothing to do"


class InvalidCidError(ContractInputError):
    solidity_name = "FlareRoundsInvalidCid"
    template = "a CID of {length} bytes is not a binary CIDv1"
    hint_template = "pass the binary CID (decode the base32 text first)"


class ZeroSamplesError(ContractInputError):
    solidity_name = "FlareRoundsZeroSamples"
    template = "an update must report at least one training sample"


class TooManySamplesError(ContractInputError):
    solidity_name = "FlareRoundsTooManySamples"
    template = "an update of {numSamples} samples is over the cap of {maxSamples}"
    hint_template = "report at most the round's maxSamples; the review policy caps weights too"


class AlreadyClaimedError(ContractError):
    solidity_name = "FlareRoundsAlreadyClaimed"
    template = "node {node} already claimed a seat in round {round}"
    hint_template = "one claim per node per round: nothing to do"


class WrongBlsKeyError(ContractError):
    solidity_name = "FlareRoundsWrongBlsKey"
    template = "the BLS key sent (keccak256 {blsKeyHash}) is not the one {node} registered"
    hint_template = "claim with the node's own registered key (`flare-node keys show`)"


class InvalidProofError(ContractError):
    solidity_name = "FlareRoundsInvalidProof"
    template = "the VRF proof of {node} does not verify for round {round}"
    hint_template = "prove over the round's seed with the registered key (`flare-node vrf prove`)"


class OutputTooHighError(ContractError):
    solidity_name = "FlareRoundsOutputTooHigh"
    template = "VRF rank {rank} ranks after every seat of the full committee ({highestRank})"
    hint_template = "this node was not selected in round {round}: nothing to do"


class NotSeatHolderError(ContractPermissionError):
    solidity_name = "FlareRoundsNotSeatHolder"
    template = "node {node} holds no committee seat in round {round}"


class AlreadyProposedError(ContractError):
    solidity_name = "FlareRoundsAlreadyProposed"
    template = "node {node} already proposed an aggregate in round {round}"


class UnknownProposalError(ContractInputError):
    solidity_name = "FlareRoundsUnknownProposal"
    template = "round {round} has no proposal {proposalId}"


class AlreadyVotedError(ContractError):
    solidity_name = "FlareRoundsAlreadyVoted"
    template = "node {node} already voted in round {round}"


class NotClosableError(ContractError):
    solidity_name = "FlareRoundsNotClosable"
    template = "round {round} cannot be closed in phase {phase}"
    hint_template = "a round is closed once its window passed without progress"
    phase_args = ("phase",)


class InvalidConfigError(ContractInputError):
    solidity_name = "FlareRoundsInvalidConfig"
    template = "invalid config: {reason}"
    hint_template = "see docs/deployer.md for the bounds of each parameter"


class OwnableUnauthorizedAccountError(ContractPermissionError):
    solidity_name = "OwnableUnauthorizedAccount"
    template = "{account} is not the contract owner"
    hint_template = "send admin calls from the owner's key"


class OwnableInvalidOwnerError(ContractInputError):
    solidity_name = "OwnableInvalidOwner"
    template = "{owner} cannot own the contract"
    hint_template = "give a non-zero owner address"


class EnforcedPauseError(ContractError):
    solidity_name = "EnforcedPause"
    template = "the contract is paused"
    hint_template = "the contract owner resumes it with `flare-node contract unpause`"


class ExpectedPauseError(ContractError):
    solidity_name = "ExpectedPause"
    template = "the contract is not paused"
    hint_template = "nothing to do"


CONTRACT_ERRORS: dict[str, type[ContractError]] = {
    cls.solidity_name: cls
    for cls in (
        NotAllowedError,
        AlreadyRegisteredError,
        NotRegisteredError,
        InvalidBlsKeyError,
        BlsKeyTakenError,
        InvalidPossessionProofError,
        InvalidPeerKeyError,
        NoBlsPrecompilesError,
        PrecompileUnavailableError,
        NotStartedError,
        AlreadyStartedError,
        WrongRoundError,
        WrongPhaseError,
        NotEligibleError,
        AlreadySubmittedError,
        InvalidCidError,
        ZeroSamplesError,
        TooManySamplesError,
        AlreadyClaimedError,
        WrongBlsKeyError,
        InvalidProofError,
        OutputTooHighError,
        NotSeatHolderError,
        AlreadyProposedError,
        UnknownProposalError,
        AlreadyVotedError,
        NotClosableError,
        InvalidConfigError,
        OwnableUnauthorizedAccountError,
        OwnableInvalidOwnerError,
        EnforcedPauseError,
        ExpectedPauseError,
    )
}


def contract_error(error_name: str, error_args: Mapping[str, Any]) -> ContractError:
    """The `ContractError` subclass for a decoded custom error; `RevertedError` for others."""
    cls = CONTRACT_ERRORS.get(error_name)
    if cls is None:
        rendered = ", ".join(f"{k}={_show(v)}" for k, v in error_args.items())
        return RevertedError(
            error_args,
            error_name=error_name,
            message=f"the contract reverted with {error_name}({rendered})",
            hint="see the contract's source for this error",
        )
    return cls(error_args)
