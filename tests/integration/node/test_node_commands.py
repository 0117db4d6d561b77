"""`flare-node register`, `status` and `run` from a node's config file, on a real anvil.

Each test gets a fresh deployment with two registered nodes (`ProcessFederation`) and adds the
nodes it needs as operators first meet them: keys and a config, but not registered, without
funds, or off an allowlist; the tests that follow a round share one (`round_one`). The commands
run in-process through typer's runner (the way a shell calls them, minus the interpreter
start); a node that must act alongside runs as a `flare-node run` process. States in the middle
of a round are reached with the crash hook (`FLARE_CRASH_AT`): a node process kills itself at a
named point of its loop, so what the chain and the node's state hold afterwards does not depend
on timing. Every expectation is read from the chain (receipts, events, views) or from the
node's own state database.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from node_harness import EXIT_TIMEOUT, WINDOW, Node, ProcessFederation
from typer.testing import CliRunner

from flare.chain.devchain import fund
from flare.chain.ledger import INTERFACE_VERSION
from flare.cli import nodelog
from flare.cli.app import app
from flare.cli.status import LAST_ERRORS, ROUND_GAS
from flare.node.state import NodeState
from flare.protocol.cid import encode_cid
from flare.protocol.events import (
    AggregateProposed,
    RoundFinalized,
    SeatClaimed,
    UpdateSubmitted,
    VoteCast,
)

pytestmark = pytest.mark.anvil

TEXT_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<level>debug|info|warning|error) +"
    r"(?:round (?P<round>\d+) (?P<phase>[A-Z]+): )?(?P<message>.+)$"
)
TRAINING_STEPS = ("adopt", "retain", "claim", "train", "submit")


# ------------------------------------------------------------------------------- helpers


def invoke(*args: str) -> Result:
    """`flare-node ARGS` in this process, with no FLARE_* variable of the test run leaking in.

    `run` installs signal handlers and a log handler on the runner's stderr: both are put back
    after, so later tests (and Ctrl-C) meet the process as it was.
    """
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FLARE_")}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        logging.getLogger(nodelog.LOGGER).handlers.clear()


def invoke_run(node: Node, *args: str) -> Result:
    """`flare-node run --config <node> ARGS` in-process, stopped as an operator would stop it
    (SIGTERM) if it outlives the harness's bound on a hung process."""
    watchdog = threading.Timer(EXIT_TIMEOUT, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        return invoke("run", "--config", str(node.config), *args)
    finally:
        watchdog.cancel()


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def refused(result: Result, code: int) -> str:
    """The error text of a command that failed cleanly with `code` (no traceback)."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ")
    return " ".join(result.stderr.split())  # messages may wrap; compare on single spaces


def nonce(federation: ProcessFederation, node: Node) -> int:
    return int(federation.w3.eth.get_transaction_count(node.address))


def balance(federation: ProcessFederation, node: Node) -> int:
    return int(federation.w3.eth.get_balance(node.address))


def gas_of(federation: ProcessFederation, tx_hashes: list[str]) -> int:
    receipts = [federation.w3.eth.get_transaction_receipt(h) for h in tx_hashes]
    assert all(r["status"] == 1 for r in receipts), [
        (h, r["status"], r["gasUsed"], r["blockNumber"])
        for h, r in zip(tx_hashes, receipts, strict=True)
    ]
    return sum(int(r["gasUsed"]) for r in receipts)


def signed(node: Node, round_number: int, *steps: str) -> list[str]:
    """Hashes of the transactions the node journaled for `steps` of the round."""
    steps = steps or ("claim", "submit", "propose", "vote", "close")
    with node.state() as state:
        return [h for step in steps for h in state.txs(round_number, step)]


def recorded(node: Node, round_number: int) -> list[tuple[str, dict[str, Any]]]:
    """(step, outcome) the node recorded for the round, in order."""
    with node.state() as state:
        return [(step, outcome) for _, step, outcome in state.outcomes(round_number)]


def with_contract(federation: ProcessFederation, node: Node, contract: str) -> Path:
    """A copy of the node's config naming another contract."""
    text = node.config.read_text()
    assert f'contract = "{federation.contract}"' in text
    path = node.config.with_name(f"{node.config.stem}-other.toml")
    path.write_text(text.replace(federation.contract, contract))
    return path


def deploy_runtime(federation: ProcessFederation, runtime: str) -> str:
    """A contract whose runtime code is `runtime` (hex), behind a 10-byte initcode."""
    size = len(runtime) // 2
    initcode = f"60{size:02x}600a5f3960{size:02x}5ff3" + runtime
    w3 = federation.w3
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[9], "data": "0x" + initcode})
    receipt = w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.005)
    assert receipt["status"] == 1
    assert w3.eth.get_code(receipt["contractAddress"]) == bytes.fromhex(runtime)
    return str(receipt["contractAddress"])


# ------------------------------------------------------------------------------- register


def test_register_sends_one_registration_and_is_idempotent(
    federation: ProcessFederation,
) -> None:
    text_node = federation.add_node(register=False)
    json_node = federation.add_node(register=False)
    assert not federation.owner.get_node(text_node.address).registered

    # Text: the transaction named is the one that registered this node.
    result = invoke("register", "--config", str(text_node.config))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    node = federation.owner.get_node(text_node.address)
    assert node.registered
    assert node.eligible_from == federation.owner.current_round() + 1  # round 1 was open
    (tx_hash,) = re.findall(r"tx (0x[0-9a-f]{64})", result.stdout)
    receipt = federation.w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["from"] == text_node.address
    assert receipt["to"] == federation.contract
    assert f"registered {text_node.address} with {federation.contract}" in result.stdout
    assert f"(gas {receipt['gasUsed']:,})" in result.stdout
    assert f"eligible from round {node.eligible_from}" in result.stdout
    assert nonce(federation, text_node) == 1

    # JSON: the same facts as fields.
    fresh = ok_json(invoke("register", "--config", str(json_node.config), "--json"))
    receipt = federation.w3.eth.get_transaction_receipt(fresh["tx_hash"])
    assert receipt["from"] == json_node.address
    assert fresh == {
        "node": json_node.address,
        "contract": federation.contract,
        "registered": True,
        "already": False,
        "eligible_from": federation.owner.get_node(json_node.address).eligible_from,
        "tx_hash": fresh["tx_hash"],
        "gas_used": receipt["gasUsed"],
    }

    # Again: nothing is sent, and it says so (as text and as JSON).
    again = invoke("register", "--config", str(text_node.config))
    assert again.exit_code == 0, again.stderr
    assert f"{text_node.address} is already registered with {federation.contract}" in again.stdout
    assert "tx 0x" not in again.stdout
    already = ok_json(invoke("register", "--config", str(json_node.config), "--json"))
    assert already == {
        "node": json_node.address,
        "contract": federation.contract,
        "registered": True,
        "already": True,
        "eligible_from": fresh["eligible_from"],
    }
    assert nonce(federation, text_node) == nonce(federation, json_node) == 1


def test_register_refuses_a_node_off_the_allowlist_until_it_is_allowed(
    node_anvil: str, tmp_path: Path
) -> None:
    federation = ProcessFederation(tmp_path, node_anvil, allowlist=True)
    try:
        assert federation.owner.allowlist_enabled()
        outsider = federation.add_node(register=False)

        error = refused(invoke("register", "--config", str(outsider.config)), 2)
        assert f"{outsider.address} is not on the allowlist of the contract at " in error
        assert federation.contract in error
        allow = f"`flare-node contract allow {outsider.address}`"
        assert f"hint: send the address to the deployer, who runs {allow}" in error
        assert nonce(federation, outsider) == 0  # refused before signing anything
        assert not federation.owner.get_node(outsider.address).registered

        federation.owner.allow(outsider.address)
        registered = ok_json(invoke("register", "--config", str(outsider.config), "--json"))
        assert registered["already"] is False
        assert federation.owner.get_node(outsider.address).registered
    finally:
        federation.store.close()


@pytest.mark.parametrize("funds", [0, 1], ids=["empty", "one-wei"])
def test_register_refuses_an_account_that_cannot_pay(
    federation: ProcessFederation, funds: int
) -> None:
    poor = federation.add_node(register=False, funds=funds)
    assert balance(federation, poor) == funds

    error = refused(invoke("register", "--config", str(poor.config)), 2)
    assert (
        f"the node's account {poor.address} has {funds} wei on chain {federation.chain_id}" in error
    )
    assert "hint: send it some of the chain's native token" in error
    assert nonce(federation, poor) == 0
    assert not federation.owner.get_node(poor.address).registered

    fund(federation.w3, 0, poor.address, 10**18)
    assert invoke("register", "--config", str(poor.config)).exit_code == 0
    assert federation.owner.get_node(poor.address).registered


def test_commands_refuse_a_contract_of_another_interface_version(
    federation: ProcessFederation,
) -> None:
    # Answers the word 1 to every call, version() included: a FlareRounds of interface 1.
    old = deploy_runtime(federation, "600160005260205ff3")
    node = federation.nodes[0]
    config = with_contract(federation, node, old)
    before = nonce(federation, node)
    for command in (["register"], ["status"], ["run", "--rounds", "1"]):
        error = refused(invoke(*command, "--config", str(config)), 2)
        assert f"the FlareRounds at {old} on chain {federation.chain_id}" in error, command
        speaks = f"this flare-node speaks version {INTERFACE_VERSION}"
        assert f"speaks interface version 1; {speaks}" in error
        assert "hint: the contract is not upgradeable: the deployer redeploys" in error
    assert nonce(federation, node) == before


# ------------------------------------------------------------------------------- status


def status_of(node: Node) -> dict[str, Any]:
    report: dict[str, Any] = ok_json(invoke("status", "--config", str(node.config), "--json"))
    return report


def status_text(node: Node) -> list[str]:
    result = invoke("status", "--config", str(node.config))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout.splitlines()


def line(lines: list[str], label: str) -> str:
    """The one status line starting with `label`, its spacing collapsed."""
    (found,) = [entry for entry in lines if entry.startswith(f"{label} ")]
    return " ".join(found.split())


def chain_facts(federation: ProcessFederation, node: Node) -> dict[str, Any]:
    """What status must report about the chain, as the chain says it (at the latest block)."""
    owner, w3 = federation.owner, federation.w3
    r = owner.current_round()
    info = owner.get_round(r)
    deadline = {"TRAINING": info.train_end, "REVIEW": info.review_end}.get(info.phase.name)
    cost = ROUND_GAS * int(w3.eth.gas_price)
    funds = balance(federation, node)
    registration = owner.get_node(node.address)
    return {
        "node": node.address,
        "contract": federation.contract,
        "chain_id": federation.chain_id,
        "registered": registration.registered,
        "eligible_from": registration.eligible_from if registration.registered else None,
        "round": r,
        "phase": info.phase.name,
        "seconds_left": None if deadline is None else deadline - owner.timestamp(),
        "base_model": encode_cid(owner.base_model(r)),
        "updates_registered": len(federation.events(UpdateSubmitted, r)),
        "seats_held": len(federation.events(SeatClaimed, r)),
        "committee_size": federation.committee,
        "own_update": bool(federation.of(federation.events(UpdateSubmitted, r), node)),
        "own_seat": bool(federation.of(federation.events(SeatClaimed, r), node)),
        "voted": bool(federation.of(federation.events(VoteCast, r), node)),
        "balance_wei": funds,
        "round_cost_wei": cost,
        "balance_covers_next_round": funds >= cost,
    }


def check_status(federation: ProcessFederation, node: Node) -> dict[str, Any]:
    """`status --json` agrees with the chain and the node's state, field by field.

    Time left is counted from the later of the last block's time and the clock, so it lies
    between the block-time figure and that figure less the seconds the clock ran ahead.
    """
    began = time.time()
    report = status_of(node)
    ended = time.time()
    facts = chain_facts(federation, node)  # no block was mined since: the same chain state
    by_block = facts.pop("seconds_left")
    assert {k: report[k] for k in facts} == facts
    if by_block is None:
        assert report["seconds_left"] is None
    else:
        block_time = federation.owner.timestamp()
        deadline = by_block + block_time
        low = max(0, deadline - max(block_time, math.ceil(ended)))
        high = max(0, deadline - max(block_time, int(began)))
        assert low <= report["seconds_left"] <= high
    has_state = (node.home / "state").exists()
    steps = recorded(node, report["steps_round"]) if has_state else []
    assert [item["step"] for item in report["steps_done"]] == [step for step, _ in steps]
    if steps and report["steps_round"] != facts["round"]:
        assert not recorded(node, facts["round"])  # only a round the node did nothing in yet
    return report


def assert_time_left(text: str, where: str, left: int) -> None:
    """The text's "Nm SSs left", read at another moment than the JSON's `left` (the clock runs
    on): the same format, and a time within the phase's window."""
    match = re.fullmatch(rf"{where}, (\d+)m (\d\d)s left", text)
    assert match, text
    seconds = int(match[1]) * 60 + int(match[2])
    assert 0 < seconds <= WINDOW
    assert 0 < left <= WINDOW


def test_status_of_an_open_round(federation: ProcessFederation) -> None:
    node = federation.nodes[0]
    report = check_status(federation, node)
    assert (report["round"], report["phase"]) == (1, "TRAINING")
    assert report["seconds_left"] > 0
    assert report["base_model"] == federation.genesis
    assert report["registered"] is True
    assert report["updates_registered"] == report["seats_held"] == 0
    assert report["own_update"] is report["own_seat"] is report["voted"] is False
    assert report["balance_covers_next_round"] is True
    assert report["steps_done"] == report["last_errors"] == []  # the node never ran

    lines = status_text(node)
    assert line(lines, "node") == f"node {node.address}"
    assert (
        line(lines, "contract") == f"contract {federation.contract} (chain {federation.chain_id})"
    )
    assert_time_left(line(lines, "round"), "round 1 TRAINING", report["seconds_left"])
    assert line(lines, "base") == f"base model {federation.genesis}"
    assert line(lines, "updates") == "updates 0 registered; this node: no"
    assert line(lines, "seats") == f"seats 0 of {federation.committee} held; this node: no"
    assert line(lines, "balance") == (
        f"balance {report['balance_wei'] / 10**18:.6f} ETH; covers a round's transactions "
        f"(~{report['round_cost_wei'] / 10**18:.6f} ETH at the current gas price)"
    )
    assert not [entry for entry in lines if entry.startswith(("done ", "error "))]

    # Errors the node noted: the newest first, the last few only.
    with node.state() as state:
        for i in range(LAST_ERRORS + 1):
            state.note_error(f"failure {i}", hint=f"hint {i}" if i % 2 else None)
    errors = check_status(federation, node)["last_errors"]
    newest = range(LAST_ERRORS, 0, -1)
    assert [(e["message"], e["hint"]) for e in errors] == [
        (f"failure {i}", f"hint {i}" if i % 2 else None) for i in newest
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["at"]) for e in errors)
    shown = [entry.split() for entry in status_text(node) if entry.startswith("error ")]
    assert [(words[1], " ".join(words[2:])) for words in shown] == [
        (e["at"], e["message"]) for e in errors
    ]

    # A node with keys and a config but no registration and no money: both said plainly.
    newcomer = federation.add_node(register=False, funds=0)
    report = check_status(federation, newcomer)
    assert report["registered"] is False
    assert report["eligible_from"] is None
    assert report["balance_covers_next_round"] is False
    lines = status_text(newcomer)
    assert line(lines, "node") == f"node {newcomer.address} (NOT registered)"
    assert line(lines, "balance").startswith(
        "balance 0.000000 ETH; does NOT cover a round's transactions"
    )


# ------------------------------------------------------------------------------- a round


@dataclass
class Look:
    """`status` of a node at one moment, and the node's step records then."""

    report: dict[str, Any]
    text: list[str]
    recorded: list[tuple[str, dict[str, Any]]]


@dataclass
class Round:
    """Round 1 driven to each moment by crash points, and what was seen at each."""

    federation: ProcessFederation
    first: Node
    second: Node
    submitted: dict[int, Look] = field(default_factory=dict)  # the first's update only
    reviewing: dict[int, Look] = field(default_factory=dict)  # the first voted, the second not
    finished: dict[int, Look] = field(default_factory=dict)  # round 2 opened
    run: Result | None = None  # the in-process `run --json` that finished the round


def look(federation: ProcessFederation, node: Node) -> Look:
    report = check_status(federation, node)
    has_state = (node.home / "state").exists()
    return Look(report, status_text(node), recorded(node, 1) if has_state else [])


@pytest.fixture(scope="module")
def round_one(node_anvil: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Round]:
    """Round 1 of two nodes, stopped at three moments by the crash hook (never by timing):

    1. the first node registers its update and dies before recording it;
    2. both go on; the first dies once its vote is mined, the second (logging as text) just
       before sending its own;
    3. the second runs in-process (`run --rounds 1 --json`), casts the vote that finalizes the
       round, and stops: round 2 is open.

    Only one node acts at the moments that decide the outcome (a vote, the round's end): two
    votes sent at once can leave the first-estimated one out of gas once the other finalizes,
    and a node another one's vote stops can still take a step into round 2 (both reported).
    """
    federation = ProcessFederation(tmp_path_factory.mktemp("round-one"), node_anvil)
    try:
        first, second = federation.nodes
        seen = Round(federation, first, second)
        federation.start(first, crash_at="submit:sent")
        assert federation.wait(first) == -signal.SIGKILL, first.log()
        seen.submitted = {n.index: look(federation, n) for n in federation.nodes}

        federation.start(first, crash_at="vote:sent")
        federation.start(second, crash_at="vote:before-send", args=["--log-format", "text"])
        assert federation.wait(first) == -signal.SIGKILL, first.log()
        assert federation.wait(second) == -signal.SIGKILL, second.log()
        seen.reviewing = {n.index: look(federation, n) for n in federation.nodes}

        seen.run = invoke_run(second, "--rounds", "1", "--json")
        seen.finished = {n.index: look(federation, n) for n in federation.nodes}
        yield seen
    finally:
        federation.stop_all()
        federation.store.close()


def test_status_once_one_node_registered_its_update(round_one: Round) -> None:
    federation, first, second = round_one.federation, round_one.first, round_one.second
    mine, theirs = round_one.submitted[first.index], round_one.submitted[second.index]
    (update,) = federation.of(federation.events(UpdateSubmitted), first)
    for seen in (mine, theirs):
        assert (seen.report["round"], seen.report["phase"]) == (1, "TRAINING")
        assert seen.report["updates_registered"] == 1
    assert mine.report["own_update"] is True
    assert theirs.report["own_update"] is False
    # The first did everything up to training; the crash came before it recorded the submit.
    steps = [step for step, _ in mine.recorded]
    assert "train" in steps
    assert "submit" not in steps
    (trained,) = [item for item in mine.report["steps_done"] if item["step"] == "train"]
    assert trained["cid"] == encode_cid(update.cid)
    assert theirs.report["steps_done"] == []  # never ran: no state at all

    assert line(mine.text, "updates") == "updates 1 registered; this node: yes"
    assert line(theirs.text, "updates") == "updates 1 registered; this node: no"
    assert line(mine.text, "done") == "done " + ", ".join(steps) + " (round 1)"
    seats = f"{mine.report['seats_held']} of {federation.committee} held"
    own_seat = "yes" if mine.report["own_seat"] else "no"
    assert line(mine.text, "seats") == f"seats {seats}; this node: {own_seat}"


def test_status_in_review_tells_who_voted(round_one: Round) -> None:
    first, second = round_one.first, round_one.second
    voted, waiting = round_one.reviewing[first.index], round_one.reviewing[second.index]
    for seen in (voted, waiting):
        assert (seen.report["round"], seen.report["phase"]) == (1, "REVIEW")
        assert seen.report["seconds_left"] > 0
        assert seen.report["updates_registered"] == seen.report["seats_held"] == 2
        assert seen.report["own_update"] is seen.report["own_seat"] is True
        assert "review" in [item["step"] for item in seen.report["steps_done"]]
    assert voted.report["voted"] is True
    assert waiting.report["voted"] is False
    assert_time_left(line(voted.text, "round"), "round 1 REVIEW", voted.report["seconds_left"])
    assert line(voted.text, "seats") == "seats 2 of 2 held; this node: yes, voted"
    assert line(waiting.text, "seats") == "seats 2 of 2 held; this node: yes"


def test_status_of_the_next_round(round_one: Round) -> None:
    federation = round_one.federation
    (finalized,) = federation.events(RoundFinalized)
    for seen in round_one.finished.values():
        assert (seen.report["round"], seen.report["phase"]) == (2, "TRAINING")
        assert seen.report["base_model"] == encode_cid(finalized.cid) != federation.genesis
        assert seen.report["updates_registered"] == seen.report["seats_held"] == 0
        assert seen.report["own_update"] is seen.report["own_seat"] is False
        assert seen.report["voted"] is False
        # Nothing done in round 2 yet: the steps shown are those of the node's last round.
        assert seen.report["steps_round"] == 1
        assert "adopt" in [item["step"] for item in seen.report["steps_done"]]
        assert line(seen.text, "base") == f"base model {encode_cid(finalized.cid)}"


# ------------------------------------------------------------------------------- run


def test_run_refuses_an_unregistered_node(federation: ProcessFederation) -> None:
    newcomer = federation.add_node(register=False)
    error = refused(invoke_run(newcomer, "--rounds", "1"), 2)
    where = f"the contract at {federation.contract}"
    assert f"Error: {newcomer.address} is not registered with {where}" in error
    assert "hint: run `flare-node register --config ...` first" in error
    assert nonce(federation, newcomer) == 0

    result = invoke_run(federation.nodes[0], "--rounds", "1", "--log-format", "yaml")
    assert result.exit_code == 2
    assert "--log-format is text or json" in result.stderr
    assert nonce(federation, federation.nodes[0]) == federation.nodes[0].registered_nonce


def test_a_second_run_of_one_node_is_refused_while_the_first_lives(
    federation: ProcessFederation,
) -> None:
    """Two processes signing with one key would race for nonces: the second is refused before
    it opens the chain, naming the first; once the first is gone (SIGKILL), a run goes ahead."""
    node = federation.nodes[0]
    federation.start(node)  # it registers its update, then waits out the window for the others
    first = node.runs[-1]
    deadline = time.monotonic() + EXIT_TIMEOUT
    while first.poll() is None and time.monotonic() < deadline:  # bounded: until it is waiting
        if '"step": "submit"' in node.log():
            break
        time.sleep(0.05)
    assert (node.home / "state" / "run.lock").read_text().strip() == str(first.pid)
    assert first.poll() is None, node.log()
    error = refused(invoke_run(node, "--rounds", "1"), 2)
    assert f"another flare-node process (pid {first.pid}) is running this node" in error
    assert f"kill {first.pid}" in error
    first.kill()
    assert federation.wait(node) == -signal.SIGKILL
    with NodeState(node.home / "state") as state:  # the dead one's lock went with it
        assert state.begin_run() == 1
        state.end_run()


def test_run_sums_up_what_the_node_did(round_one: Round) -> None:
    """The `--json` summary of the process that finished round 1 counts the round it took part
    in (begun by an earlier process the crash ended) from the node's records: the chain's."""
    federation, second = round_one.federation, round_one.second
    assert round_one.run is not None
    summary = ok_json(round_one.run)
    mine = [e for e in federation.events(UpdateSubmitted) if e.node == second.address]
    assert summary == {
        "node": second.address,
        "rounds": 1,
        "first_round": 1,
        "last_round": 1,
        "updates": len(mine),
        "seats": len(federation.of(federation.events(SeatClaimed), second)),
        "votes": len(federation.of(federation.events(VoteCast), second)),
        "gas": gas_of(federation, signed(second, 1)),
        "stopped_by_signal": False,
        "wall_seconds": summary["wall_seconds"],
    }
    assert summary["updates"] == summary["seats"] == summary["votes"] == 1
    assert 0 < summary["wall_seconds"] < EXIT_TIMEOUT
    assert federation.owner.current_round() == 2


def acted_in(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("step") not in (None, "start", "stop", "wait", "error")]


def phase_of(step: str) -> str:
    return "TRAINING" if step in TRAINING_STEPS else "REVIEW"


def test_json_logs_have_one_line_per_step_with_round_and_phase(round_one: Round) -> None:
    federation, first, second = round_one.federation, round_one.first, round_one.second
    after_submit = [step for step, _ in round_one.submitted[first.index].recorded]
    in_review = [step for step, _ in round_one.reviewing[first.index].recorded]
    assert in_review[: len(after_submit)] == after_submit
    # Each of the first node's processes logged exactly the steps it recorded, in order.
    for run, steps in ((0, after_submit), (1, in_review[len(after_submit) :])):
        entries = [json.loads(entry) for entry in first.log(run).splitlines()]
        assert all({"time", "level", "message"} <= entry.keys() for entry in entries)
        assert entries[0]["step"] == "start"
        acted = acted_in(entries)
        assert [e["step"] for e in acted] == steps, run
        assert {e["round"] for e in acted} == {1}
        # A registration settled after a restart is logged in whatever phase the chain had
        # reached by then (the other node's update may have closed training meanwhile).
        for e in acted:
            allowed = {"TRAINING", "REVIEW"} if e.get("recovered") else {phase_of(e["step"])}
            assert e["phase"] in allowed, e
    # The train line names the update the chain registered for the node.
    (update,) = federation.of(federation.events(UpdateSubmitted), first)
    entries = [json.loads(entry) for entry in first.log(0).splitlines()]
    (trained,) = [e for e in acted_in(entries) if e["step"] == "train"]
    assert trained["cid"] == encode_cid(update.cid)

    # The in-process run that finished the round logs to stderr: the vote, then its summary.
    assert round_one.run is not None
    entries = [json.loads(entry) for entry in round_one.run.stderr.splitlines()]
    (vote,) = federation.of(federation.events(VoteCast), second)
    (voted,) = acted_in(entries)
    assert voted["step"] == "vote"
    assert (voted["round"], voted["phase"]) == (1, "REVIEW")
    assert (voted["proposal"], voted["approve"]) == (vote.proposal_id, vote.approve)
    assert voted["gas"] == gas_of(federation, signed(second, 1, "vote"))
    assert entries[-1]["step"] == "stop"
    assert {k: entries[-1][k] for k in ("rounds", "updates", "votes", "gas")} == {
        k: v
        for k, v in ok_json(round_one.run).items()
        if k in ("rounds", "updates", "votes", "gas")
    }


def test_text_logs_have_one_line_per_step_with_round_and_phase(round_one: Round) -> None:
    federation, second = round_one.federation, round_one.second
    lines = second.log(0).splitlines()  # `--log-format text` over a config that says json
    parsed = [TEXT_LINE.match(entry) for entry in lines]
    assert all(parsed), [entry for entry, m in zip(lines, parsed, strict=True) if not m]
    matches = [m for m in parsed if m is not None]
    assert matches[0]["round"] is None
    assert matches[0]["message"] == (
        f"node {second.address} on {federation.contract} (chain {federation.chain_id}); rounds 1..1"
    )
    steps = [m for m in matches if m["round"] and not m["message"].startswith("waiting: ")]
    done = round_one.reviewing[second.index].recorded  # all this process recorded
    assert len(steps) == len(done)
    for m, (step, _) in zip(steps, done, strict=True):
        assert (m["round"], m["phase"]) == ("1", phase_of(step)), (step, m[0])
    said = {step: m["message"] for m, (step, _) in zip(steps, done, strict=True)}
    assert said["adopt"] == f"adopted base model {federation.genesis}"
    (update,) = federation.of(federation.events(UpdateSubmitted), second)
    submit_gas = gas_of(federation, signed(second, 1, "submit"))
    assert said["submit"] == f"registered update {encode_cid(update.cid)} (gas {submit_gas:,})"
    claim_gas = gas_of(federation, signed(second, 1, "claim"))
    assert said["claim"] == f"claimed a committee seat (gas {claim_gas:,})"
    (model,) = {outcome["model"] for step, outcome in done if step == "review"}
    assert said["review"].startswith(f"computed {model} from 2 updates, 0 left out; ")
    proposals = federation.of(federation.events(AggregateProposed), second)
    assert ("propose" in said) is bool(proposals)
    waits = [m["message"] for m in matches if m["message"].startswith("waiting: ")]
    assert all(a != b for a, b in itertools.pairwise(waits))  # once per new reason


# ------------------------------------------------------------------------------- metrics


def scrape(url: str) -> dict[str, float]:
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url, timeout=5).text
    return {
        s.name + json.dumps(s.labels, sort_keys=True): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_run_serves_metrics_and_health_while_it_works(federation: ProcessFederation) -> None:
    """A node on port 0 logs where it serves; once its update is registered, the scrape shows
    the steps, the gas (as on-chain) and the balance, and /healthz says it keeps up."""
    import requests

    node = federation.nodes[0]
    federation.start(node, args=["--metrics-addr", "127.0.0.1:0"])
    process = node.runs[-1]
    deadline = time.monotonic() + EXIT_TIMEOUT
    address = None
    while address is None and process.poll() is None and time.monotonic() < deadline:
        for entry in map(json.loads, filter(None, node.log().splitlines())):
            address = address or entry.get("metrics")
        time.sleep(0.05)  # polling a growing log file for a condition, bounded by the deadline
    assert address, node.log()
    url = f"http://{address}"
    submitted = 'flare_steps_total{"step": "submit"}'
    got: dict[str, float] = {}
    while submitted not in got and process.poll() is None and time.monotonic() < deadline:
        got = scrape(f"{url}/metrics")
        time.sleep(0.05)  # a bounded poll of the node's own report, as a monitor would
    assert got.get(submitted) == 1, node.log()
    assert got["flare_round{}"] == 1
    assert got["flare_gas_spent_total{}"] == gas_of(federation, signed(node, 1))
    balance = int(federation.w3.eth.get_balance(node.address))
    assert got["flare_balance_wei{}"] == pytest.approx(balance, rel=1e-15)  # a float sample
    health = requests.get(f"{url}/healthz", timeout=5)
    assert health.status_code == 200, health.text
    assert health.json()["round"] == 1
    process.kill()
    process.wait()
