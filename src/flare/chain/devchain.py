"""Local development chains: their well-known funded accounts and their clocks.

eth-tester funds the keys 1..10; anvil (like Hardhat) funds the first accounts of the public
"test ... junk" mnemonic. Those keys are public knowledge, so they are only ever handed out on
the chain ids of local dev chains; on anything else `--dev-account` is refused.
"""

from __future__ import annotations

from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from web3 import Web3
from web3.types import Wei

from flare.chain.connect import ANVIL_CHAIN_ID, DEV_CHAIN_IDS, ETH_TESTER_CHAIN_ID, endpoint_of
from flare.protocol.errors import ConfigError

DEV_ACCOUNTS = 10
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


class DevAccountRefusedError(ConfigError):
    """A well-known development key was asked for on a chain where it would be unsafe."""


def dev_account_key(chain_id: int, index: int) -> bytes:
    """The private key of funded dev account `index` (0-based) on a local dev chain."""
    if chain_id not in DEV_CHAIN_IDS:
        raise DevAccountRefusedError(
            f"--dev-account is only for local dev chains; chain {chain_id} is not one "
            f"(eth-tester is {ETH_TESTER_CHAIN_ID}, anvil {ANVIL_CHAIN_ID})",
            hint="use --keystore with an encrypted key on real chains",
        )
    if not 0 <= index < DEV_ACCOUNTS:
        raise DevAccountRefusedError(
            f"dev account {index} does not exist", hint=f"use 0..{DEV_ACCOUNTS - 1}"
        )
    if chain_id == ETH_TESTER_CHAIN_ID:
        return (index + 1).to_bytes(32, "big")
    seed = seed_from_mnemonic(ANVIL_MNEMONIC, "")
    return bytes(key_from_seed(seed, f"m/44'/60'/0'/0/{index}"))


def is_dev_chain(w3: Web3) -> bool:
    """Whether `w3` is a local dev chain (where clocks can be moved and dev keys exist)."""
    return w3.eth.chain_id in DEV_CHAIN_IDS


def advance_time(w3: Web3, seconds: int) -> int:
    """Move a dev chain's clock forward and mine a block there; returns its timestamp.

    Phases are derived from block timestamps, so tests, benchmarks and demos use this instead of
    waiting out a window.
    """
    if not is_dev_chain(w3):
        raise DevAccountRefusedError(
            f"cannot move the clock of {endpoint_of(w3)}: not a local dev chain",
            hint="time travel exists only on eth-tester:// and anvil",
        )
    target = int(w3.eth.get_block("latest")["timestamp"]) + seconds
    if w3.eth.chain_id == ETH_TESTER_CHAIN_ID:
        # eth-tester mines the travel block one second before the target it is given.
        w3.provider.make_request("testing_timeTravel", [target + 1])  # type: ignore[arg-type]
    else:
        w3.provider.make_request("evm_setNextBlockTimestamp", [target])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(w3.eth.get_block("latest")["timestamp"])


def fund(w3: Web3, index: int, address: str, wei: int) -> None:
    """Send `wei` from dev account `index` to `address`: fresh node keys need gas money too.

    Both eth-tester and anvil keep their dev accounts unlocked, so the node signs this one.
    """
    if not is_dev_chain(w3):
        raise DevAccountRefusedError(
            f"cannot hand out dev-account money on {endpoint_of(w3)}: not a local dev chain",
            hint="fund node accounts from a wallet of your own on real chains",
        )
    sender = w3.eth.accounts[index]
    tx_hash = w3.eth.send_transaction(
        {"from": sender, "to": Web3.to_checksum_address(address), "value": Wei(wei)}
    )
    w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.005)
