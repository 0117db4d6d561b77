"""Owner commands (start, allowlist, config, pause, ownership) and `close-round`, which anyone may.

Each sends one transaction and prints its hash, block and gas; a refusal by the contract
arrives as the contract's own error (for example "not the contract owner") with a hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flare.chain.connect import DEFAULT_RPC
from flare.cli.common import HomeOption, JsonOption, RpcOption
from flare.cli.contract.options import (
    AddressOption,
    DeploymentOption,
    DevAccountOption,
    KeystoreOption,
    cid_text,
    config_json,
    config_text,
    open_signing,
    pin_policy,
    report_tx,
    seconds,
)
from flare.cli.hexarg import parse_address
from flare.cli.password import PasswordFileOption
from flare.cli.store import DataDirOption, StoreOption
from flare.protocol.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from flare.protocol.ledger import TxReceipt

NodeArgument = Annotated[str, typer.Argument(help="The node's account address.")]


class MissingEventError(IntegrityError):
    """A mined transaction lacks the event the contract emits for it."""


def start(
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Open round 1 (owner, once); later rounds open by themselves."""
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx("opened round 1", ledger.start(), json_output, round=1)


def allow(
    node: NodeArgument,
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Put a node on the allowlist so it may register (owner)."""
    node = parse_address(node, what="NODE")
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx(f"allowed {node}", ledger.allow(node), json_output, node=node)


def disallow(
    node: NodeArgument,
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Take a node off the allowlist and deregister it (owner)."""
    node = parse_address(node, what="NODE")
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx(f"disallowed {node}", ledger.disallow(node), json_output, node=node)


def allowlist(
    state: Annotated[str, typer.Argument(help="on: only allowed nodes register; off: anyone.")],
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Turn the registration allowlist on or off (owner).

    Open registration is safe for seats: every claim is verified on-chain against the key the
    node proved it holds. It still lets anyone join, so a Sybil gets as many chances at a seat
    as it registers keys; docs/deployer.md says when to keep the allowlist on.
    """
    if state not in ("on", "off"):
        raise ConfigError(f"allowlist state {state!r} is neither on nor off", hint="on or off")
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    enabled = state == "on"
    report_tx(f"allowlist {state}", ledger.set_allowlist(enabled), json_output, allowlist=enabled)


def set_config(
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    committee_size: Annotated[
        int | None, typer.Option(help="k, seats per round (1-64).", show_default=False)
    ] = None,
    quorum_bps: Annotated[
        int | None, typer.Option(help="Approvals in basis points of k.", show_default=False)
    ] = None,
    train_window: Annotated[
        str | None, typer.Option(help="Training time (600, 45m, 2h, 1d).", show_default=False)
    ] = None,
    review_window: Annotated[
        str | None, typer.Option(help="Review time.", show_default=False)
    ] = None,
    min_claim_window: Annotated[
        str | None,
        typer.Option(help="Time before Training may close early.", show_default=False),
    ] = None,
    min_updates: Annotated[
        int | None, typer.Option(help="Updates a round needs.", show_default=False)
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="A new review policy document; its sample cap becomes maxSamples.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change round parameters from the next opened round; unnamed ones keep their value."""
    from flare.cli.policy import read_policy_file
    from flare.protocol.cid import Cid
    from flare.protocol.rounds import RoundConfig

    # The options are read before the chain is contacted, so a typo fails at once (exit 2).
    train = None if train_window is None else seconds(train_window, "--train-window")
    review = None if review_window is None else seconds(review_window, "--review-window")
    claim = None if min_claim_window is None else seconds(min_claim_window, "--min-claim-window")
    policy = None if policy_file is None else read_policy_file(policy_file)
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    old = ledger.config()
    policy_cid, max_samples = old.review_policy, old.max_samples
    if policy is not None:
        policy_cid = Cid.parse(pin_policy(policy, store, data_dir, home)).binary
        max_samples = policy.sample_cap
    new = RoundConfig(
        committee_size=old.committee_size if committee_size is None else committee_size,
        quorum_bps=old.quorum_bps if quorum_bps is None else quorum_bps,
        train_window=old.train_window if train is None else train,
        review_window=old.review_window if review is None else review,
        min_claim_window=old.min_claim_window if claim is None else claim,
        min_updates=old.min_updates if min_updates is None else min_updates,
        max_samples=max_samples,
        review_policy=policy_cid,
    )
    receipt = ledger.set_config(new)
    # From the transaction's own event: a round opened since would make a fresh read wrong.
    effective = _effective_from(receipt)
    report_tx("config set", receipt, json_output, config=config_json(new), effective_from=effective)
    if not json_output:
        typer.echo(f"  {config_text(new)}; applies from round {effective}")
        typer.echo(f"  review policy {cid_text(new.review_policy)}")


def pause(
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Refuse node transactions until unpaused (owner); clocks keep running."""
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx("paused", ledger.pause(), json_output)


def unpause(
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Accept node transactions again (owner)."""
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx("unpaused", ledger.unpause(), json_output)


def transfer_ownership(
    new_owner: Annotated[str, typer.Argument(help="Address that must then accept.")],
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Offer ownership; the new owner takes over when it runs accept-ownership (owner)."""
    new_owner = parse_address(new_owner, what="NEW_OWNER")
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    receipt = ledger.transfer_ownership(new_owner)
    report_tx(f"ownership offered to {new_owner}", receipt, json_output, pending_owner=new_owner)


def accept_ownership(
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Become the owner after transfer-ownership named this account."""
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx("ownership accepted", ledger.accept_ownership(), json_output, owner=ledger.account)


def close_round(
    round: Annotated[int, typer.Argument(help="The current round, once it has failed.")],
    rpc: RpcOption = DEFAULT_RPC,
    deployment: DeploymentOption = None,
    address: AddressOption = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
    dev_account: DevAccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Record a failed round and open the next on the same base model (anyone)."""
    ledger = open_signing(rpc, deployment, address, keystore, password_file, dev_account)
    report_tx(f"closed round {round}", ledger.close_round(round), json_output, round=round)


def _effective_from(receipt: TxReceipt) -> int:
    """The first round the config applies to, as the `ConfigSet` event of `receipt` says."""
    from flare.protocol.events import ConfigSet

    for event in receipt.events:
        if isinstance(event, ConfigSet):
            return event.effective_from
    raise MissingEventError(
        f"the config was set (tx 0x{receipt.tx_hash.hex()}), but the transaction emitted no "
        "ConfigSet event saying from which round it applies",
        hint="the contract at this address does not behave like FlareRounds; check the address",
    )
