"""Wiring a node from its config: keys, the chain, the store, the trainer and the loop.

`flare-node run`, `register` and `status` share it, so a node that registers is the one that
runs. The node's parts are opened in the order that fails cheapest first: the config and
password, then the chain (the contract and its version), then the store, then the trainer
(loading a policy takes seconds, a dataset check more): an operator learns of a wrong contract
address before waiting for a model to load.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flare.cli.nodeconfig import NodeConfig
from flare.cli.password import PASSWORD_ENV, PasswordError, read_password
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from flare.chain.ledger import Web3Ledger
    from flare.node.chatter import Chatter
    from flare.node.identity import NodeKeys
    from flare.node.round import Checkpoint, NodeLoop
    from flare.node.state import NodeState
    from flare.protocol.ports import Trainer
    from flare.protocol.store import BlobStore

CRASH_ENV = "FLARE_CRASH_AT"
"""Names a loop checkpoint (`flare.node.round.CHECKPOINTS`) or `<step>:broadcast`: the process
kills itself there with SIGKILL. For the crash tests; never set it on a node you care about."""


def node_password(config: NodeConfig, *, prompt: bool) -> str:
    """The key password: `keys.password_file`, else `$FLARE_PASSWORD`, else (if allowed) a prompt.

    An unattended node must never wait on a prompt nobody sees, so `run` passes prompt=False.
    """
    if config.keys.password_file is None and not os.environ.get(PASSWORD_ENV) and not prompt:
        raise PasswordError(
            "no key password: an unattended node reads it from a file or the environment",
            hint=f"set [keys] password_file (a file of mode 0600) or ${PASSWORD_ENV}",
        )
    return read_password(config.keys.password_file, prompt="Key password")


def load_keys(config: NodeConfig, password: str) -> NodeKeys:
    """The node's keys from the config's home (the hint names the config, not a --home flag)."""
    from flare.node.identity import load_node_keys
    from flare.node.keys import INIT_HINT, KeyFileMissingError

    home = config.home.expanduser()
    try:
        return load_node_keys(home, password)
    except KeyFileMissingError as error:
        if error.hint == INIT_HINT:
            error.hint = (
                f"create them with `flare-node init --home {home}`, or set `home` in the config "
                "to the directory that holds them"
            )
        raise


def crash_hook(environ: dict[str, str] | None = None) -> Checkpoint | None:
    """The `FLARE_CRASH_AT` hook: SIGKILL this process when the loop passes the named point."""
    from flare.node.round import CHECKPOINTS

    target = (environ if environ is not None else dict(os.environ)).get(CRASH_ENV)
    if not target:
        return None
    where = target.partition(":")[2]
    if target not in CHECKPOINTS and where != "broadcast":
        known = ", ".join((*CHECKPOINTS, "<step>:broadcast"))
        raise ConfigError(f"${CRASH_ENV}={target!r} names no crash point", hint=f"one of {known}")

    def checkpoint(point: str) -> None:
        if point == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


def open_chain(
    config: NodeConfig,
    private_key: bytes | None,
    state: NodeState | None = None,
    *,
    checkpoint: Checkpoint | None = None,
) -> Web3Ledger:
    """The deployment's ledger, checked to be a FlareRounds of the version this node speaks.

    With a state, every signed transaction is journaled there before it is broadcast, and the
    `<step>:broadcast` crash point fires right after the node accepted it.
    """
    from flare.chain.connect import connect
    from flare.chain.ledger import open_ledger
    from flare.cli.common import network_limits

    chain = config.chain
    if chain.contract is None:
        raise ConfigError(
            "the config names no contract",
            hint='set [chain] contract = "0x..." or [chain] deployment = "deployment.json"',
        )
    after_broadcast: Callable[[bytes], None] | None = None
    if checkpoint is not None and state is not None:
        journal = state

        def after_broadcast(tx_hash: bytes) -> None:
            current = journal.current
            checkpoint(f"{current[1] if current else 'unattributed'}:broadcast")

    ledger = open_ledger(
        connect(chain.rpc, limits=network_limits(config.network.limits())),
        chain.contract,
        private_key=private_key,
        journal=state,
        confirmations=chain.confirmations,
        receipt_timeout=chain.receipt_timeout,
        after_broadcast=after_broadcast,
    )
    if chain.deployment is not None:
        from flare.chain.deploy import read_deployment

        record = read_deployment(chain.deployment)
        if record.chain_id != ledger.chain_id:
            raise ConfigError(
                f"[chain] deployment {chain.deployment} is on chain {record.chain_id}, but "
                f"[chain] rpc {chain.rpc} serves chain {ledger.chain_id}",
                hint="point rpc at a node of the deployment's chain",
            )
    return ledger


def open_node_store(config: NodeConfig) -> BlobStore:
    from flare.cli.store import open_store

    if config.store.url == "embedded":
        from flare.node.store.embedded import EmbeddedStore

        return EmbeddedStore((config.store.path or config.home / "store").expanduser())
    return open_store(config.store.url, None, None, config.network.limits())


def open_trainer(config: NodeConfig, model_spec_hash: bytes) -> Trainer:
    """The configured trainer, refusing a model of another spec than the deployment's."""
    training = config.training
    state_dir = config.home.expanduser() / "trainer"
    if training.trainer == "twin":
        return _twin(config, model_spec_hash, state_dir)
    from flare.cli.common import offline_hub

    offline_hub()
    import torch

    from flare.node.compress import PowerSGDConfig
    from flare.node.train.dataset import DatasetSource, check_metadata, open_metadata
    from flare.node.train.policy import load_policy
    from flare.node.train.trainer import LeRobotTrainer, TrainerSettings

    if training.threads is not None:
        torch.set_num_threads(training.threads)
    if config.data.dataset is None or config.model.policy is None:
        raise ConfigError(
            "the lerobot trainer needs [data] dataset and [model] policy",
            hint="check the file with `flare-node config check`",
        )
    source = DatasetSource(config.data.dataset, dict(config.data.rename_cameras))
    loaded = load_policy(
        config.model.policy,
        device=training.device,
        backbone=config.model.backbone,
        expected_spec=model_spec_hash,
    )
    check_metadata(loaded.config, open_metadata(source), source)
    settings = TrainerSettings(
        steps=training.steps,
        batch_size=training.batch_size,
        mu=training.mu,
        lr=training.lr,
        held_out=training.held_out,
        eval_samples=training.eval_samples,
        schedule_steps=training.schedule_steps,
        compression=PowerSGDConfig(rank=training.rank, power_iterations=training.power_iterations),
    )
    return LeRobotTrainer(loaded, source, state_dir, settings)


def _twin(config: NodeConfig, model_spec_hash: bytes, state_dir: Path) -> Trainer:
    from flare.node.train.twin import TwinTrainer
    from flare.protocol.modelspec import ModelSpec

    path = config.training.twin_spec
    if path is None:
        raise ConfigError("the twin trainer needs [training] twin_spec (a model spec JSON file)")
    try:
        spec = ModelSpec.from_json(path.expanduser().read_bytes())
    except OSError as error:
        raise ConfigError(f"cannot read the model spec {path}: {error.strerror}") from error
    if spec.hash != model_spec_hash:
        raise ConfigError(
            f"the model spec {path} hashes to 0x{spec.hash.hex()}; the deployment's is "
            f"0x{model_spec_hash.hex()}",
            hint="use the spec the deployment was made with",
        )
    return TwinTrainer.for_node(spec, config.training.twin_index, state_dir)


def open_loop(
    config: NodeConfig,
    keys: NodeKeys,
    state: NodeState,
    *,
    log: Callable[[str], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> NodeLoop:
    """The node loop the config describes, for a node registered with its deployment."""
    from flare.node.round import Identity, NodeLoop, Retention

    address = keys.identity.address
    ledger = open_chain(config, keys.ethereum_key, state, checkpoint=checkpoint)
    if not ledger.get_node(address).registered:
        raise ConfigError(
            f"{address} is not registered with the contract at {ledger.address}",
            hint="run `flare-node register --config ...` first",
        )
    store = open_node_store(config)
    trainer = open_trainer(config, ledger.model_spec_hash())
    retention = config.retention
    chatter = open_chatter(config, keys, ledger, log) if config.gossip.enabled else None
    return NodeLoop(
        ledger,
        store,
        trainer,
        Identity(address, keys.bls_secret_key),
        state,
        from_block=config.chain.from_block or 0,
        log=log,
        retention=Retention(
            keep_globals=retention.keep_globals,
            keep_update_rounds=retention.keep_update_rounds,
            gc=retention.gc and config.store.url == "embedded",
        ),
        checkpoint=checkpoint,
        chatter=chatter,
    )


def open_chatter(
    config: NodeConfig, keys: NodeKeys, ledger: Web3Ledger, log: Callable[[str], None] | None
) -> Chatter:
    """The node's gossip: a libp2p host on the deployment's topic, under its peer key."""
    from flare.node.chatter import Chatter
    from flare.node.gossip.libp2p import Libp2pGossip
    from flare.protocol.gossip import topic

    settings = config.gossip
    host = Libp2pGossip(
        secret_key=keys.peer_secret_key,
        topic=topic(ledger.chain_id, ledger.address),
        listen=settings.listen,
        announce=settings.announce,
        bootstrap=settings.bootstrap,
        peers_dir=settings.peers_dir,
        log=log,
    )
    return Chatter(
        host, ledger, node=keys.identity.address, peer_secret=keys.peer_secret_key, log=log
    )


@dataclass
class Stop:
    """Set by SIGTERM or Ctrl-C: the loop stops at its next safe point (between steps).

    A second signal stops at once: every step is safe to interrupt (a restart re-derives it
    from the chain), only slower to redo.
    """

    requested: bool = False
    wake: Callable[[], None] | None = None
    _previous: dict[int, Any] = field(default_factory=dict, repr=False)

    def install(self) -> None:
        def handle(signum: int, frame: Any) -> None:
            if self.requested:
                signal.signal(signum, signal.SIG_DFL)
                raise KeyboardInterrupt
            self.requested = True
            if self.wake is not None:
                self.wake()

        self._previous = {
            signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)
        }

    def uninstall(self) -> None:
        """Put back the handlers `install` replaced (an in-process caller keeps its own)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
