"""`flare-node register`: join a deployment with this node's keys (once per node and contract).

Sends `register(blsKey, proofOfPossession, peerKey)`. Everything that would make the
transaction revert is checked first and said plainly: the contract's version (checked when the
ledger opens), the allowlist, an account that cannot pay for the registration, a node already
registered (which is not an error: registering is idempotent from the operator's side).
"""

from __future__ import annotations

from typing import Any

import typer

from flare.cli.common import JsonOption, emit_json
from flare.cli.run import DEFAULT_CONFIG, ConfigOption, load
from flare.protocol.errors import ConfigError

# Gas of a registration, open or allowlisted, with its proof of possession (docs/deployer.md,
# "Gas": 252,558 at most, measured), rounded up.
REGISTER_GAS = 260_000


class NotAllowedYetError(ConfigError):
    """The deployment keeps an allowlist and this node's address is not on it."""


class NoFundsError(ConfigError):
    """The node's account cannot pay for a transaction."""


def register(config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False) -> None:
    """Register this node's keys with the deployment named in the config."""
    from flare.cli.nodesetup import load_keys, node_password, open_chain
    from flare.protocol import vrf
    from flare.protocol.rounds import address_bytes

    settings = load(config)
    keys = load_keys(settings, node_password(settings, prompt=True))
    address = keys.identity.address
    ledger = open_chain(settings, keys.ethereum_key)
    node = ledger.get_node(address)
    result: dict[str, Any] = {"node": address, "contract": ledger.address}
    if node.registered:
        result |= {"registered": True, "already": True, "eligible_from": node.eligible_from}
        _report(result, json_output)
        return
    if ledger.allowlist_enabled() and not node.allowed:
        raise NotAllowedYetError(
            f"{address} is not on the allowlist of the contract at {ledger.address}",
            hint=f"send the address to the deployer, who runs `flare-node contract allow "
            f"{address}`; then register again",
        )
    w3 = ledger.w3
    balance = int(w3.eth.get_balance(w3.to_checksum_address(address)))
    cost = REGISTER_GAS * int(w3.eth.gas_price)
    if balance < cost:  # a chain that charges nothing for gas lets an empty account register
        raise NoFundsError(
            f"the node's account {address} has {balance} wei on chain {ledger.chain_id}; "
            f"registering costs about {cost} wei at the current gas price",
            hint="send it some of the chain's native token for gas (about 0.01 ETH covers "
            "registration and many rounds at 1 gwei)",
        )
    possession = vrf.prove_possession(
        keys.bls_secret_key, ledger.chain_id, address_bytes(ledger.address), address_bytes(address)
    )
    receipt = ledger.register(
        keys.identity.bls_public_key, possession, keys.identity.peer_public_key
    )
    node = ledger.get_node(address)
    result |= {
        "registered": True,
        "already": False,
        "eligible_from": node.eligible_from,
        "tx_hash": receipt.tx_hash,
        "gas_used": receipt.gas_used,
    }
    _report(result, json_output)


def _report(result: dict[str, Any], json_output: bool) -> None:
    if json_output:
        emit_json(result)
        return
    if result["already"]:
        typer.echo(f"{result['node']} is already registered with {result['contract']}")
    else:
        typer.echo(
            f"registered {result['node']} with {result['contract']}: "
            f"tx 0x{result['tx_hash'].hex()} (gas {result['gas_used']:,})"
        )
    typer.echo(f"eligible from round {result['eligible_from']}")
