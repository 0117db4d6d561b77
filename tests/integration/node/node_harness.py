"""A federation of `flare-node run` processes on a real anvil, for the crash and reorg suites.

Each test gets a fresh FlareRounds deployment (so its round 1 is its own), node homes made as
`flare-node init` makes them, a config file per node written the way operators write theirs,
and one embedded store on disk that every node process shares (a stand-in for the IPFS network
they would all pin to; the embedded store is safe to share between processes). Nodes train
with the twin trainer, so a round is seconds, not minutes.

The command suites add nodes the harness leaves as operators first meet them: keys and a
config but not registered (`add_node(register=False)`), without funds (`funds=0`), or kept off
a deployment whose allowlist is on (`ProcessFederation(..., allowlist=True)`).

The fault suites run the nodes closer to a real deployment: on a real IPFS daemon
(`ipfs_api=`, the daemon's RPC multiaddr: the harness pins the genesis model and the policy there
and reads pins back from it), with their chain RPC behind something the test can break
(`node_rpc=`, e.g. a TCP proxy in front of anvil, while the harness keeps talking to anvil
directly), and with gossip on (`gossip=True`: every node joins the deployment's topic and finds
the others through one shared peers directory; the nodes in `gossip_cut_off` get a directory of
their own, so they gossip with nobody).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from web3 import Web3

from flare.chain.connect import connect
from flare.chain.deploy import deploy
from flare.chain.devchain import dev_account_key, fund
from flare.chain.ledger import Web3Ledger
from flare.node.identity import LIGHT_COST, create_node_keys, load_node_keys
from flare.node.state import NodeState
from flare.node.store.embedded import EmbeddedStore
from flare.node.store.ipfs import IpfsStore
from flare.protocol import vrf
from flare.protocol.aggregate import Rule
from flare.protocol.cid import decode_cid
from flare.protocol.events import ChainEvent
from flare.protocol.model import ModelMeta, write_model
from flare.protocol.modelspec import ModelSpec
from flare.protocol.policy import ReviewPolicy
from flare.protocol.rounds import RoundConfig, address_bytes
from flare.protocol.store import BlobStore

SPEC = ModelSpec.from_shapes({"layer.weight": (24, 16), "layer.bias": (16,)})
POLICY = ReviewPolicy(rule=Rule("fedavg"), norm_bound=100.0, sample_cap=1000)
PASSWORD = "crash-test-password"  # keys of a throwaway chain
FLARE_NODE = Path(sys.executable).parent / "flare-node"
WINDOW = 3600  # seconds of Training and of Review
EXIT_TIMEOUT = 180.0  # a bound on a process that hangs, never a synchronization
NODE_FUNDS = 10**20  # wei each node account gets: gas for many rounds


@dataclass
class Node:
    index: int
    home: Path
    config: Path
    address: str
    registered_nonce: int  # the account's nonce once registered: the processes sign from here
    runs: list[subprocess.Popen[str]] = field(default_factory=list)

    def state(self) -> NodeState:
        return NodeState(self.home / "state")

    def log(self, run: int = -1) -> str:
        return (self.home / f"run-{len(self.runs) if run == -1 else run + 1}.log").read_text()


@dataclass
class ProcessFederation:
    """`nodes` registered nodes of a fresh deployment with k = `committee` seats."""

    root: Path
    rpc: str  # the chain endpoint the harness uses: deploys, funds, reads events
    size: int = 2
    committee: int = 2
    allowlist: bool = False  # deploy with the allowlist on; the `size` nodes are allowed
    node_rpc: str | None = None  # the endpoint in the nodes' configs; default: `rpc`
    ipfs_api: str | None = None  # an IPFS daemon's RPC multiaddr; default: one embedded store
    gossip: bool = False  # write a [gossip] table: every node joins the deployment's topic
    gossip_cut_off: frozenset[int] = frozenset()  # node indices whose gossip finds no peer
    w3: Web3 = field(init=False)
    owner: Web3Ledger = field(init=False)
    store: BlobStore = field(init=False)  # where the nodes pin: the harness reads pins here
    nodes: list[Node] = field(init=False, default_factory=list)
    block: int = field(init=False)
    contract: str = field(init=False)
    chain_id: int = field(init=False)
    genesis: str = field(init=False)  # CID of round 1's base model

    def __post_init__(self) -> None:
        self.w3 = connect(self.rpc)
        chain_id = self.chain_id = int(self.w3.eth.chain_id)
        if self.ipfs_api is None:
            self.store = EmbeddedStore(self.root / "store")
        else:
            self.store = IpfsStore(self.ipfs_api)
        rng = np.random.default_rng(0)
        weights = {p.name: rng.standard_normal(p.shape).astype(np.float32) for p in SPEC.params}
        genesis = self.genesis = self.store.put(write_model(ModelMeta.genesis(SPEC), SPEC, weights))
        policy = self.store.put(POLICY.to_bytes())
        (self.root / "spec.json").write_bytes(SPEC.canonical_json())
        config = RoundConfig(
            committee_size=self.committee,
            quorum_bps=6000,
            train_window=WINDOW,
            review_window=WINDOW,
            min_claim_window=0,  # close Training as soon as every node submitted and sat
            min_updates=self.size,
            max_samples=1000,
            review_policy=decode_cid(policy),
        )
        record, self.owner = deploy(
            self.w3,
            dev_account_key(chain_id, 0),
            model_spec_hash=SPEC.hash,
            genesis_model=decode_cid(genesis),
            config=config,
            allowlist=self.allowlist,
        )
        self.block = record.block
        self.contract = record.address
        for _ in range(self.size):
            self.add_node(allow=self.allowlist)
        self.owner.start()

    def add_node(
        self, *, register: bool = True, funds: int = NODE_FUNDS, allow: bool = False
    ) -> Node:
        """A node home with keys, a password file and `node-<i>.toml`, as `flare-node init`
        and an operator make them; funded with `funds` wei, allowed by the owner if `allow`,
        and registered in-process if `register` (after round 1 opened: from round 2 on)."""
        i = len(self.nodes)
        contract, chain_id = self.contract, self.chain_id
        home = self.root / f"node-{i}"
        create_node_keys(home, PASSWORD, cost=LIGHT_COST)
        keys = load_node_keys(home, PASSWORD)
        address = keys.identity.address
        password = home / "password"
        password.write_text(PASSWORD + "\n")
        password.chmod(0o600)
        if funds:
            fund(self.w3, 0, address, funds)
        if allow:
            self.owner.allow(address)
        if register:
            ledger = Web3Ledger(self.w3, contract, private_key=keys.ethereum_key)
            possession = vrf.prove_possession(
                keys.bls_secret_key, chain_id, address_bytes(contract), address_bytes(address)
            )
            ledger.register(keys.identity.bls_public_key, possession, keys.identity.peer_public_key)
        config = self.root / f"node-{i}.toml"
        config.write_text(self.config_text(i))
        node = Node(i, home, config, address, int(self.w3.eth.get_transaction_count(address)))
        self.nodes.append(node)
        return node

    def config_text(self, i: int) -> str:
        """Node `i`'s config file, as an operator writes it (paths relative to the root)."""
        if self.ipfs_api is None:
            store = 'url = "embedded"\npath = "store"\n'
        else:
            host, port = ipfs_host_port(self.ipfs_api)
            store = f'url = "ipfs://{host}:{port}"\n'
        text = (
            f'home = "node-{i}"\n\n'
            "[chain]\n"
            f'rpc = "{self.node_rpc or self.rpc}"\n'
            f'contract = "{self.contract}"\n'
            f"from_block = {self.block}\n"
            "poll_interval = 0.1\n"
            "receipt_timeout = 60\n\n"
            "[keys]\n"
            f'password_file = "node-{i}/password"\n\n'
            "[store]\n"
            f"{store}\n"
            "[training]\n"
            'trainer = "twin"\n'
            'twin_spec = "spec.json"\n'
            f"twin_index = {i}\n\n"
            "[log]\n"
            'format = "json"\n'
        )
        if self.gossip:
            # Any free port; each node writes its dialable address into the peers directory and
            # dials the others found there. A directory of its own cuts a node off.
            peers = f"peers-{i}" if i in self.gossip_cut_off else "peers"
            text += (
                "\n[gossip]\n"
                "enabled = true\n"
                'listen = "/ip4/127.0.0.1/tcp/0"\n'
                f'peers_dir = "{peers}"\n'
            )
        return text

    # ---------------------------------------------------------------- processes

    def start(
        self,
        node: Node,
        *,
        rounds: int = 1,
        crash_at: str | None = None,
        args: Sequence[str] = (),
    ) -> None:
        """`flare-node run --config ... --rounds N [ARGS]`, its log in the node home."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLARE_")}
        env["FLARE_TOOLS_HOME"] = os.environ.get("FLARE_TOOLS_HOME", "")
        if crash_at is not None:
            env["FLARE_CRASH_AT"] = crash_at
        command = [str(FLARE_NODE), "run", "--config", str(node.config), "--rounds", str(rounds)]
        log = open(node.home / f"run-{len(node.runs) + 1}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            env=env,
            cwd=self.root,
        )
        log.close()
        node.runs.append(process)

    def wait(self, node: Node) -> int:
        """The exit status of the node's latest process (negative: killed by that signal)."""
        process = node.runs[-1]
        try:
            return process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"node {node.index} did not exit:\n{node.log()}") from None

    def wait_first(self, nodes: Sequence[Node]) -> Node:
        """The node whose latest process exits first (a waiting thread per process)."""
        exited: queue.Queue[Node] = queue.Queue()

        def wait(node: Node) -> None:
            node.runs[-1].wait()
            exited.put(node)

        for node in nodes:
            threading.Thread(target=wait, args=(node,), daemon=True).start()
        try:
            return exited.get(timeout=EXIT_TIMEOUT)
        except queue.Empty:
            logs = "\n".join(f"node {n.index}:\n{n.log()}" for n in nodes)
            raise AssertionError(f"no node exited:\n{logs}") from None

    def stop_all(self) -> None:
        for node in self.nodes:
            for process in node.runs:
                if process.poll() is None:
                    process.kill()
                    process.wait()

    # ---------------------------------------------------------------- chain facts

    def events(self, kind: type[ChainEvent], round_number: int = 1) -> list[Any]:
        return [
            e
            for e in self.owner.events(self.block)
            if isinstance(e, kind) and getattr(e, "round", None) == round_number
        ]

    def close(self) -> None:
        """Every process killed, and the harness's own store connection closed."""
        self.stop_all()
        self.store.close()

    def of(self, events: Sequence[Any], node: Node) -> list[Any]:
        return [
            e for e in events if getattr(e, "node", getattr(e, "proposer", None)) == node.address
        ]


def ipfs_host_port(api: str) -> tuple[str, int]:
    """(host, port) of an RPC multiaddr such as /ip4/127.0.0.1/tcp/5001/http."""
    parts = api.strip("/").split("/")
    if len(parts) < 4 or parts[0] not in ("ip4", "dns4", "dns") or parts[2] != "tcp":
        raise ValueError(f"not an IPFS RPC multiaddr: {api}")
    return parts[1], int(parts[3])
