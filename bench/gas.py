"""Gas used by every FlareRounds function, and by a full round with N nodes and k seats.

Runs one scripted federation on a chain (the in-process EVM by default, or anvil with
--rpc http://127.0.0.1:8545) through the same `Web3Ledger` nodes use, and prints min / median /
max gas per function next to the protocol's gas targets, as the ratio max/target (<= 1.00
meets it). Seat claims are ordered worst case: once the committee is full, every claim evicts
the highest seat and rescans all k outputs. Their outputs and proofs are random-looking bytes,
as real VRF values are: calldata costs 16 gas per non-zero byte and 4 per zero byte, so
all-zero stand-ins would under-report a real claim by about 1,300 gas.

    python bench/gas.py [--nodes 10] [--seats 7] [--rpc eth-tester://] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from flare.chain.connect import DEFAULT_RPC, connect
from flare.chain.deploy import deploy
from flare.chain.devchain import advance_time, dev_account_key
from flare.chain.ledger import Web3Ledger
from flare.protocol.ledger import TxReceipt
from flare.protocol.rounds import RoundConfig, updates_root

# Gas targets of the protocol (gas units); the finalizing vote also opens the next round.
TARGETS = {
    "submitUpdate": 70_000,
    "vote": 70_000,
    "claimSeat": 120_000,
    "vote (finalizes, opens next round)": 200_000,
}
PROOF_BYTES = 80  # an ECVRF-EDWARDS25519-SHA512-TAI proof
CID_PREFIX = bytes.fromhex("01551220")  # CIDv1, raw leaves, sha2-256, 32-byte digest
FUNDING_WEI = 10**18


class GasBook:
    """Gas per function name, in call order."""

    def __init__(self) -> None:
        self.used: dict[str, list[int]] = defaultdict(list)

    def record(self, name: str, receipt: TxReceipt) -> TxReceipt:
        self.used[name].append(receipt.gas_used)
        return receipt

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, values in self.used.items():
            target = TARGETS.get(name)
            rows.append(
                {
                    "function": name,
                    "calls": len(values),
                    "min": min(values),
                    "median": int(statistics.median(values)),
                    "max": max(values),
                    "target": target,
                    "max_over_target": round(max(values) / target, 3) if target else None,
                }
            )
        return rows


def fund(w3: Any, funder: bytes, keys: list[bytes]) -> None:
    """Give each bench node gas money from a dev account (dev chains fund only ten)."""
    sender = Account.from_key(funder)
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    hashes = []
    for offset, key in enumerate(keys):
        tx = {
            "to": Account.from_key(key).address,
            "value": FUNDING_WEI,
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price,
            "nonce": nonce + offset,
            "chainId": w3.eth.chain_id,
        }
        hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    for tx_hash in hashes:
        w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.005)


def stand_in_proof(index: int) -> bytes:
    """80 random-looking bytes: the contract stores proofs unchecked, calldata prices them."""
    stream = b"".join(keccak(b"flare-bench-proof-%d-%d" % (index, part)) for part in range(3))
    return stream[:PROOF_BYTES]


def run(rpc: str, nodes: int, seats: int) -> dict[str, Any]:
    """Script one federation and return every figure measured."""
    w3 = connect(rpc)
    chain_id = int(w3.eth.chain_id)
    owner_key = dev_account_key(chain_id, 0)
    node_keys = [keccak(b"flare-bench-node-%d" % i) for i in range(nodes)]
    fund(w3, owner_key, node_keys)
    config = RoundConfig(
        committee_size=seats, quorum_bps=6000, train_window=3600, review_window=3600, min_updates=1
    )
    book = GasBook()
    record, owner = deploy(
        w3,
        owner_key,
        model_spec_hash=b"\x5e" * 32,
        genesis_model=CID_PREFIX + bytes(32),
        config=config,
    )
    book.used["deploy"].append(record.gas_used)
    ledgers = [Web3Ledger(w3, record.address, owner.artifact, key) for key in node_keys]
    addresses = [str(ledger.account) for ledger in ledgers]

    for address in addresses:
        book.record("allow", owner.allow(address))
    for index, ledger in enumerate(ledgers):
        book.record("register", ledger.register(keccak(b"vrf-%d" % index)))
    book.record("start", owner.start())

    # --- one full round: submit, claim (worst-case order), propose, vote to quorum ---
    round_gas: list[TxReceipt] = []

    def track(name: str, receipt: TxReceipt) -> TxReceipt:
        round_gas.append(receipt)
        return book.record(name, receipt)

    cids = {a: CID_PREFIX + keccak(a.encode()) for a in addresses}
    for ledger, address in zip(ledgers[:-1], addresses[:-1], strict=True):
        track("submitUpdate", ledger.submit_update(1, cids[address], 1000))
    # Descending outputs: every claim after the k-th evicts and rescans.
    outputs = sorted((keccak(b"flare-bench-output-%d" % i) for i in range(nodes)), reverse=True)
    for index, (ledger, output) in enumerate(zip(ledgers, outputs, strict=True)):
        track("claimSeat", ledger.claim_seat(1, output, stand_in_proof(index)))
    track("submitUpdate", ledgers[-1].submit_update(1, cids[addresses[-1]], 1000))
    holders = [ledgers[addresses.index(seat.holder)] for seat in owner.seats(1)]
    root = updates_root(cids.items())
    track("proposeAggregate", holders[0].propose_aggregate(1, CID_PREFIX + keccak(b"agg"), root))
    for voter in holders[: config.quorum - 1]:
        track("vote", voter.vote(1, 1, True))
    track("vote (finalizes, opens next round)", holders[config.quorum - 1].vote(1, 1, True))

    # --- a failed round, closed by anyone; then the admin functions ---
    advance_time(w3, config.train_window + 1)
    book.record("closeRound", ledgers[0].close_round(2))
    book.record("deregister", ledgers[-1].deregister())
    book.record("disallow", owner.disallow(addresses[-2]))
    book.record("setAllowlist", owner.set_allowlist(False))
    book.record("setConfig", owner.set_config(RoundConfig(committee_size=seats, quorum_bps=5000)))
    book.record("pause", owner.pause())
    book.record("unpause", owner.unpause())
    book.record("transferOwnership", owner.transfer_ownership(addresses[0]))
    book.record("acceptOwnership", ledgers[0].accept_ownership())

    total = sum(receipt.gas_used for receipt in round_gas)
    return {
        "rpc": rpc,
        "chain_id": chain_id,
        "nodes": nodes,
        "seats": seats,
        "quorum": config.quorum,
        "functions": book.rows(),
        "round": {"transactions": len(round_gas), "gas": total, "gas_per_node": total // nodes},
    }


def render(figures: dict[str, Any]) -> str:
    """The figures as a table for people."""
    lines = [
        f"FlareRounds gas on {figures['rpc']} (chain {figures['chain_id']}): "
        f"N={figures['nodes']} nodes, k={figures['seats']} seats, quorum {figures['quorum']}",
        f"{'function':<36}{'calls':>6}{'min':>10}{'median':>10}{'max':>10}{'target':>10}"
        f"{'max/target':>12}",
    ]
    for row in figures["functions"]:
        target = f"{row['target']:>10}" if row["target"] else f"{'-':>10}"
        ratio = row["max_over_target"]
        verdict = f"{ratio:>7.2f} {'ok' if ratio <= 1 else 'OVER'}" if ratio else f"{'-':>10}"
        lines.append(
            f"{row['function']:<36}{row['calls']:>6}{row['min']:>10}{row['median']:>10}"
            f"{row['max']:>10}{target}  {verdict}"
        )
    full = figures["round"]
    lines.append(
        f"full round: {full['transactions']} transactions, {full['gas']} gas "
        f"({full['gas_per_node']} per node)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10, help="registered nodes (N)")
    parser.add_argument("--seats", type=int, default=7, help="committee size (k)")
    parser.add_argument("--rpc", default=DEFAULT_RPC, help="eth-tester:// or http(s)://...")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.nodes < args.seats:
        parser.error("--nodes must be at least --seats to fill the committee")
    figures = run(args.rpc, args.nodes, args.seats)
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    missed = [r for r in figures["functions"] if (r["max_over_target"] or 0) > 1]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
