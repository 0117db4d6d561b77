"""The node loop: a node takes part in round after round by itself.

`NodeLoop.step()` does at most one thing (adopt the round's base model, claim a seat, train,
submit, review, propose or vote, close a failed round) and otherwise says what it waits for.
What to do is derived each time from the chain and the node's local state
(`flare.node.state`), never from a counter kept in memory: a restarted node picks up where it
stopped, and a step that reached the chain before the node could record it is recognised from
the chain rather than done twice. `run` is the loop a node process runs; `flare.node.cohort`
steps several loops on one in-process chain for the demo and the tests.

Within a round the sections run in this order: adopt first, since everything starts from the
round's base model; claim before training, since the VRF proof needs only the round's seed and
a claim sent early is in before the last update can close training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from eth_utils.crypto import keccak

from flare.node.chatter import Chatter
from flare.node.review import Computed, Hold, Propose, Situation, compute, decide
from flare.node.state import NodeState, StateStoreError
from flare.protocol import sortition, vrf
from flare.protocol.bundle import size_bound
from flare.protocol.cid import decode_cid, encode_cid
from flare.protocol.errors import ConfigError, FlareError, UnavailableError
from flare.protocol.events import AggregateProposed, ChainEvent, SeatClaimed, UpdateSubmitted
from flare.protocol.ledger import ContractError, NotClosableError
from flare.protocol.model import GlobalModel, read_model
from flare.protocol.modelspec import MAX_RANK
from flare.protocol.ports import Clock, NodeLedger, Trainer
from flare.protocol.rounds import Phase, RoundInfo, address_bytes
from flare.protocol.store import BlobStore

Log = Callable[[str], None]
Checkpoint = Callable[[str], None]
"""Called with a point's name (`CHECKPOINTS`) as the loop passes it: the crash tests' hook."""

# Where a process can die with something half done; the SIGKILL tests kill a node at each.
CHECKPOINTS = (
    "train:trained",  # trained, before the update is pinned
    "train:pinned",  # pinned, before the step is recorded
    "submit:before-send",  # recorded, before the submit transaction is signed
    "submit:sent",  # receipt in hand, before the step is recorded
    "claim:sent",
    "propose:sent",
    "vote:before-send",  # reviewed and recorded, before the vote is signed
    "vote:sent",
)
# How far back the event log re-reads on each refresh, so events of blocks a reorg replaced are
# dropped and the new ones read: deeper reorgs are what `confirmations` guards against.
REORG_WINDOW = 64
REREAD_SECONDS = 30.0  # the longest the event log trusts an unchanged tip without reading
NOTE_GOSSIP_EVERY = 5.0  # seconds between gossip views kept for `flare-node status`


class NodeStateError(StateStoreError):
    """The local state lacks a record the loop wrote itself."""


@dataclass(frozen=True)
class Acted:
    """A step that did something: `what` names it, `details` go to the log and metrics.

    `round` and `phase` say where the chain was when the step ran (None before rounds start).
    """

    what: str
    details: dict[str, Any] = field(default_factory=dict)
    round: int | None = None
    phase: str | None = None


@dataclass(frozen=True)
class Wait:
    """Nothing to do now: look again at chain time `until`, or whenever the chain moves."""

    until: int | None
    reason: str
    round: int | None = None
    phase: str | None = None


@dataclass(frozen=True)
class Retention:
    """What a node keeps pinned: the last `keep_globals` global models and the updates of the
    last `keep_update_rounds` rounds. The current base and the live round's content are never
    unpinned; `gc` runs the store's garbage collection after unpinning (an own store only).
    """

    keep_globals: int = 5
    keep_update_rounds: int = 2
    gc: bool = False


@dataclass(frozen=True)
class Identity:
    """What the loop signs with besides the ledger's account: the node's BLS key."""

    address: str
    bls_secret: bytes

    @property
    def bls_key(self) -> bytes:
        return vrf.public_key(self.bls_secret)


class EventLog:
    """The contract's events from the deployment block on, fetched incrementally.

    A refresh while the chain's tip is the block (number and hash) the last one read is free:
    the same tip has the same history. When the tip moved on, the block the last refresh ended
    at is looked up again: a hash commits to every block before it, so if it is unchanged only
    the new blocks are read. Otherwise a reorg replaced some of what was read, and the last
    `REORG_WINDOW` blocks are read again, so a claim or proposal that vanished is seen to have
    vanished. Every `REREAD_SECONDS` the window is read anyway, in case an endpoint's log
    index answered late.
    """

    def __init__(
        self, ledger: NodeLedger, from_block: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._read_at = float("-inf")
        self._from = from_block
        self._next = from_block
        self.events: list[ChainEvent] = []
        self._head: tuple[int, bytes] | None = None

    def refresh(self) -> None:
        head = self._ledger.head()
        now = self._clock()
        due = now - self._read_at >= REREAD_SECONDS
        if head == self._head and not due:
            return
        last = head[0]
        window = due or not self._extends(head)
        start = self._next
        if window:
            start = max(self._from, min(self._next, last + 1) - REORG_WINDOW)
        kept = [e for e in self.events if e.block < start]
        if last >= start:
            kept.extend(self._ledger.events(start, last))
        self.events = kept
        self._next = last + 1
        self._head = head
        if window:
            self._read_at = now

    def _extends(self, head: tuple[int, bytes]) -> bool:
        """Whether `head` is a descendant of the tip the last refresh read to."""
        if self._head is None or head[0] <= self._head[0]:
            return False
        return self._ledger.block_hash(self._head[0]) == self._head[1]

    def updates(self, round_number: int) -> list[UpdateSubmitted]:
        """The round's registered updates, in the order the chain registered them."""
        self.refresh()
        return [
            e for e in self.events if isinstance(e, UpdateSubmitted) and e.round == round_number
        ]

    def by(self, kind: type[ChainEvent], round_number: int, node: str) -> list[Any]:
        self.refresh()
        return [
            e
            for e in self.events
            if isinstance(e, kind)
            and getattr(e, "round", None) == round_number
            and (getattr(e, "node", None) == node or getattr(e, "proposer", None) == node)
        ]


class NodeLoop:
    """One node's part in the federation, one step at a time (see the module docstring)."""

    def __init__(
        self,
        ledger: NodeLedger,
        store: BlobStore,
        trainer: Trainer,
        identity: Identity,
        state: NodeState,
        *,
        from_block: int = 0,
        log: Log | None = None,
        max_miss: float = sortition.DEFAULT_MISS_PROBABILITY,
        retention: Retention | None = None,
        checkpoint: Checkpoint | None = None,
        last_round: int | None = None,
        chatter: Chatter | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.trainer = trainer
        self.identity = identity
        self.state = state
        self.log_events = EventLog(ledger, from_block)
        self.log = log or (lambda message: None)
        self._max_miss = max_miss
        self.retention = retention
        self.checkpoint = checkpoint or (lambda point: None)
        self.last_round = last_round
        self.chatter = chatter
        self._tried: dict[int, set[str]] = {}  # per round: nodes whose update prefetch tried
        self._gossip_noted = float("-inf")
        self._seatless: int | None = None  # a round in which this node holds no seat
        self._eligible: int | None = None  # a round in which this node was seen eligible
        self._reviewing: tuple[int, bool] | None = None  # (round, holds a seat) in Review
        self._bases: dict[str, GlobalModel] = {}
        self._where: tuple[int | None, str | None] = (None, None)

    @property
    def address(self) -> str:
        return self.identity.address

    def step(self) -> Acted | Wait:
        """Do the next thing this node owes the current round, or say what it waits for."""
        self._where = (None, None)
        try:
            result = self._step()
        except ContractError as error:
            # The chain moved between reading and sending (a round closed, a seat was taken):
            # nothing is recorded, so the next step derives what to do from the new state.
            self.log(f"the contract refused: {error.message}")
            result = Wait(None, f"refused: {error.error_name}")
        r, phase = self._where
        return replace(result, round=r, phase=phase)

    def _step(self) -> Acted | Wait:
        r = self.ledger.current_round()
        if r == 0:
            return Wait(None, "rounds have not started")
        if self.last_round is not None and r > self.last_round:
            # A run told to stop after `last_round` must not adopt or act in the next round,
            # even when the round finalized between its caller's check and this step.
            return Wait(None, f"round {self.last_round} was this run's last")
        info = self.ledger.get_round(r)
        self._where = (r, info.phase.name)
        if self.chatter is not None:
            self.chatter.tick(r, info.phase.name)
            self._note_gossip()

        # A crash between sending an update and recording it, noticed once its round moved on:
        # settle it from the chain first, so the trainer's carried state is the right one.
        trained = self.state.latest("train")
        if (
            trained is not None
            and not self.state.done(trained, "submit")
            and (trained != r or info.phase is not Phase.TRAINING)
        ):
            return self._settle(trained)

        # --- ADOPT --- the round's base model, fetched, verified and pinned before any use
        if not self.state.done(r, "adopt"):
            return self._adopt(r)

        # --- RETAIN --- unpin what older rounds left, now that this round's base is pinned
        if self.retention is not None and not self.state.done(r, "retain"):
            return self._retain(r, self.retention)

        if info.phase is Phase.TRAINING:
            if self._eligible != r:
                node = self.ledger.get_node(self.address)
                if not (node.registered and node.eligible_from <= r):
                    return Wait(info.review_start, f"not eligible in round {r}")
                # Read once a round: only this node's own deregistration could end it, and
                # then the contract refuses what the node sends.
                self._eligible = r
            self._recheck_training(r)
            # --- CLAIM --- a seat if this node's VRF rank can win one
            if not self.state.done(r, "claim"):
                return self._claim(r, info)
            # --- TRAIN --- from the base, on the node's own data
            if not self.state.done(r, "train"):
                return self._train(r, info)
            # --- SUBMIT --- register the pinned update's CID
            if not self.state.done(r, "submit"):
                return self._submit(r, self._recorded(r, "train"), info)
            # --- PREFETCH --- updates others announced, verified and pinned before Review
            prefetched = self._prefetch(r)
            if prefetched is not None:
                return prefetched
            return Wait(info.review_start, "training: waiting for the others")

        if info.phase is Phase.REVIEW:
            # --- REVIEW --- recompute the model, then propose or vote
            if self._reviewing is None or self._reviewing[0] != r:
                # Seats are settled when Training closes: read once a round. (Were this node
                # deregistered during Review, the contract would refuse what it sends.)
                self._reviewing = (r, self.ledger.is_seat_holder(r, self.address))
            if self._reviewing[1]:
                self._recheck_review(r)
                return self._review(r, info)
            return Wait(info.review_end, "review: not on the committee")

        # A finalized round opens the next one in the same transaction, so the current round
        # can only be one that failed: anyone may close it.
        return self._close(r)

    # ---------------------------------------------------------------- reorg re-checks

    def _recheck_training(self, r: int) -> None:
        """Forget a claim or registration whose transaction a reorg removed, to redo it.

        A recorded transaction is only as final as the chain's confirmations: if its effect is
        gone from the chain while the round still trains, the step is done again.
        """
        self._recheck(
            r, "submit", lambda o: bool(o.get("tx") or o.get("recovered")),
            lambda: any(self.ledger.update_of(r, self.address)), "the update registration",
        )  # fmt: skip
        self._recheck(
            r, "claim", lambda o: bool(o.get("claimed")),
            lambda: bool(self.log_events.by(SeatClaimed, r, self.address)), "the seat claim",
        )  # fmt: skip

    def _recheck_review(self, r: int) -> None:
        """As `_recheck_training`, for a proposal or vote of this round that a reorg removed."""
        self._recheck(
            r, "vote", lambda o: True, lambda: self.ledger.has_voted(r, self.address), "the vote"
        )  # fmt: skip
        self._recheck(
            r, "propose", lambda o: True,
            lambda: bool(self.log_events.by(AggregateProposed, r, self.address)), "the proposal",
        )  # fmt: skip

    def _recheck(
        self,
        r: int,
        step: str,
        landed: Callable[[dict[str, Any]], bool],
        on_chain: Callable[[], bool],
        what: str,
    ) -> None:
        """Forget `step`'s record if it says a transaction landed but the chain lacks its effect."""
        outcome = self.state.get(r, step)
        if outcome is None or not landed(outcome) or on_chain():
            return
        self.log(f"round {r}: {what} is no longer on-chain (a reorg); doing it again")
        self.state.forget(r, step)

    # ---------------------------------------------------------------- sections

    def _adopt(self, r: int) -> Acted:
        cid = encode_cid(self.ledger.base_model(r))
        model = self._base(cid)
        self.store.pin(cid)
        self.state.put(r, "adopt", {"model": cid, "round": model.meta.round})
        return Acted("adopt", {"round": r, "model": cid})

    def _retain(self, r: int, keep: Retention) -> Acted:
        """Unpin the global models and own updates older rounds left behind.

        Kept: the last `keep_globals` adopted models (the current base among them), the own
        updates of the last `keep_update_rounds` finished rounds, and everything of round `r`.
        A model computed in review that did not become a base goes once its round is over.
        """
        history = [(q, step, o) for q, step, o in self.state.outcomes() if q <= r]
        adopted = sorted((q, o["model"]) for q, step, o in history if step == "adopt")
        bases = list(dict.fromkeys(cid for _, cid in adopted))  # a failed round keeps its base
        kept = set(bases[-keep.keep_globals :])
        old: list[str] = []
        for q, step, record in history:
            if q == r:
                continue
            if step in ("adopt", "review") and record.get("model"):
                old.append(record["model"])
            elif step == "train" and q <= r - 1 - keep.keep_update_rounds:
                old.append(record["cid"])
            elif step == "prefetch" and q <= r - 1 - keep.keep_update_rounds:
                old.extend(record["cids"])
        unpinned = sorted({cid for cid in old if cid not in kept and self.store.unpin(cid)})
        outcome: dict[str, Any] = {"unpinned": unpinned}
        if keep.gc and unpinned:
            outcome["freed_bytes"] = self.store.gc().freed_bytes
        self.state.put(r, "retain", outcome)
        return Acted("retain", {"round": r, **outcome})

    def _claim(self, r: int, info: RoundInfo) -> Acted:
        if self.log_events.by(SeatClaimed, r, self.address):  # sent before a crash
            self.state.put(r, "claim", {"claimed": True, "recovered": True})
            return Acted("claim", {"round": r, "recovered": True})
        proof = vrf.prove(self.identity.bls_secret, sortition.alpha_for(info.seed, r))
        threshold = sortition.claim_threshold(
            info.committee_size, info.eligible_nodes, max_miss=self._max_miss
        )
        decision = sortition.decide_claim(
            vrf.proof_to_output(proof),
            address_bytes(self.address),
            threshold=threshold,
            k=info.committee_size,
            held=[seat.word for seat in self.ledger.seats(r)],
        )
        outcome: dict[str, Any] = {"claimed": False, "rank": decision.rank}
        if decision.claim:
            try:
                with self.state.step(r, "claim"):
                    receipt = self.ledger.claim_seat(r, proof, self.identity.bls_key)
                self.checkpoint("claim:sent")
            except ContractError as error:
                # A seat taken meanwhile, or a key the contract does not accept: either way
                # the node trains and submits without a seat rather than retrying forever.
                self.log(f"round {r}: no seat, the contract refused the claim: {error.message}")
                outcome |= {"reason": f"refused: {error.message}"}
            else:
                outcome |= {"claimed": True, "gas": receipt.gas_used}
        else:
            outcome["reason"] = decision.reason
        self.state.put(r, "claim", outcome)
        return Acted("claim", {"round": r, **outcome})

    def _train(self, r: int, info: RoundInfo) -> Acted:
        base_cid = self._recorded(r, "adopt")["model"]
        trained = self.trainer.train(self._base(base_cid), base_cid, r, info.seed, self.address)
        self.checkpoint("train:trained")
        cid = self.store.put(trained.bundle)
        self.checkpoint("train:pinned")
        outcome = {
            "cid": cid,
            "bytes": len(trained.bundle),
            "num_samples": trained.num_samples,
            "metrics": dict(trained.metrics),
        }
        self.state.put(r, "train", outcome)
        return Acted("train", {"round": r, **outcome})

    def _submit(self, r: int, trained: dict[str, Any], info: RoundInfo) -> Acted:
        if any(self.ledger.update_of(r, self.address)):  # it reached the chain before a crash
            return self._settle(r)
        if trained["num_samples"] > info.max_samples:
            reason = (
                f"the update was trained on {trained['num_samples']} samples; the deployment "
                f"registers at most {info.max_samples}"
            )
            self.log(f"round {r}: not submitted: {reason} (train fewer steps or smaller batches)")
            self.state.put(r, "submit", {"skipped": reason})
            return Acted("submit", {"round": r, "skipped": reason})
        cid = decode_cid(trained["cid"])
        if not self.store.has(trained["cid"]):  # the pin is the update's only copy: never lose it
            raise NodeStateError(
                f"round {r}: the trained update {trained['cid']} is not in the store",
                hint="the store was cleaned from outside; move the state aside to retrain",
            )
        self.checkpoint("submit:before-send")
        with self.state.step(r, "submit"):
            receipt = self.ledger.submit_update(r, cid, trained["num_samples"])
        self.checkpoint("submit:sent")
        self.trainer.commit(r)  # the update is registered: its state is the next round's start
        self.state.put(r, "submit", {"gas": receipt.gas_used, "tx": "0x" + receipt.tx_hash.hex()})
        if self.chatter is not None:  # only now: nobody can register a copy before ours
            self.chatter.announce_update(r, trained["cid"])
        return Acted("submit", {"round": r, "cid": trained["cid"], "gas": receipt.gas_used})

    def _settle(self, r: int) -> Acted:
        """Record what became of round `r`'s trained update, from the chain.

        Ours on-chain: the trainer's pending state becomes the next round's start (commit is
        idempotent). Another one: a conflict, for the operator. None, and the round has moved
        on: the update was never registered, and the trainer keeps its last committed state.
        """
        cid = decode_cid(self._recorded(r, "train")["cid"])
        registered = self.ledger.update_of(r, self.address)
        if registered == keccak(cid):
            self.trainer.commit(r)
            outcome: dict[str, Any] = {"recovered": True, "conflict": False}
        elif any(registered):
            self.log(f"round {r}: the chain holds another update for this node than ours")
            outcome = {"recovered": False, "conflict": True}
        else:
            outcome = {"missed": "training closed before the update was registered"}
        self.state.put(r, "submit", outcome)
        return Acted("submit", {"round": r, **outcome})

    def _review(self, r: int, info: RoundInfo) -> Acted | Wait:
        recorded = self.state.get(r, "review")
        if recorded is None:
            base_cid = self._recorded(r, "adopt")["model"]
            computed = compute(
                self.store,
                self.trainer,
                info,
                self._base(base_cid),
                base_cid,
                self.log_events.updates(r),
            )
            self.state.put(r, "review", computed.outcome())
            return Acted("review", {"round": r, **computed.outcome()})
        computed = Computed.from_outcome(recorded)
        proposed_before = self.log_events.by(AggregateProposed, r, self.address)
        if proposed_before and not self.state.done(r, "propose"):
            self.state.put(r, "propose", {"recovered": True})
        if not self.state.done(r, "vote") and self.ledger.has_voted(r, self.address):
            self.state.put(r, "vote", {"recovered": True})
        situation = Situation(
            now=self.ledger.timestamp(),
            info=info,
            proposals=[self.ledger.get_proposal(r, i) for i in range(1, info.proposal_count + 1)],
            designated=self._designated(r),
            proposed=self.state.done(r, "propose"),
            voted=self.state.done(r, "vote"),
        )
        decision = decide(computed, situation)
        if isinstance(decision, Hold):
            return Wait(decision.until, decision.reason)
        if isinstance(decision, Propose):
            with self.state.step(r, "propose"):
                receipt = self.ledger.propose_aggregate(
                    r, decode_cid(decision.model_cid), decision.updates_root
                )
            self.checkpoint("propose:sent")
            proposed: dict[str, Any] = {"proposal": receipt.proposal_id, "gas": receipt.gas_used}
            self.state.put(r, "propose", proposed)
            if self.chatter is not None:
                self.chatter.announce_proposal(r, receipt.proposal_id, decision.model_cid)
            return Acted("propose", {"round": r, "model": decision.model_cid, **proposed})
        self.checkpoint("vote:before-send")
        with self.state.step(r, "vote"):
            voted = self.ledger.vote(r, decision.proposal_id, decision.approve)
        self.checkpoint("vote:sent")
        outcome: dict[str, Any] = {
            "proposal": decision.proposal_id,
            "approve": decision.approve,
            "reason": decision.reason,
            "gas": voted.gas_used,
        }
        self.state.put(r, "vote", outcome)
        return Acted("vote", {"round": r, **outcome})

    def _note_gossip(self) -> None:
        """Keep the gossip view in the state for `status`, at most every `NOTE_GOSSIP_EVERY`."""
        assert self.chatter is not None
        now = time.monotonic()
        if now - self._gossip_noted >= NOTE_GOSSIP_EVERY:
            self._gossip_noted = now
            self.state.note_gossip(self.chatter.view())

    def _prefetch(self, r: int) -> Acted | None:
        """Fetch, verify and pin one update another node announced, if this node holds a seat.

        An announcement is only a hint: its CID is fetched once the chain's events show that
        node registered exactly that CID (a lie costs nothing), the store re-hashes every
        block, and each update gets one try, one per step, so the loop sees the phase between
        two fetches and a peer that never serves its update cannot hold it up. Whatever is not
        prefetched, Review fetches by the events' CIDs anyway.
        """
        if self.chatter is None or self._seatless == r or not self.chatter.updates.get(r):
            return None
        self._tried = {r: self._tried.get(r, set())}  # older rounds are over: forget them
        tried = self._tried[r]
        record = self.state.get(r, "prefetch") or {"cids": [], "bytes": 0}
        pending = [
            (node, cid)
            for node, cid in sorted(self.chatter.updates[r].items())
            if cid not in record["cids"] and node not in tried
        ]
        if not pending:
            return None
        if not self.ledger.is_seat_holder(r, self.address):
            self._seatless = r  # its claim is behind it: no seat comes later in this round
            return None
        registered = {e.node.lower(): encode_cid(e.cid) for e in self.log_events.updates(r)}
        for node, cid in pending:
            if node not in registered:
                continue  # announced before this node's view of the chain has it: later
            tried.add(node)  # one try per update
            if registered[node] != cid:
                self.chatter.rejected["not-registered"] += 1
                continue
            record = {"cids": [*record["cids"], cid], "bytes": record["bytes"]}
            self.state.put(r, "prefetch", record)  # first: a crash leaves no pin unaccounted for
            try:
                data = self.store.get(cid, max_bytes=size_bound(self.trainer.spec, MAX_RANK))
                self.store.pin(cid)
            except FlareError as error:
                self.log(f"round {r}: prefetch of {cid} failed, Review will fetch it: {error}")
                return Acted(
                    "prefetch", {"round": r, "node": node, "cid": cid, "failed": str(error)}
                )
            self.state.put(r, "prefetch", record | {"bytes": record["bytes"] + len(data)})
            return Acted("prefetch", {"round": r, "node": node, "cid": cid, "bytes": len(data)})
        return None

    def _close(self, r: int) -> Acted:
        try:
            with self.state.step(r, "close"):
                receipt = self.ledger.close_round(r)
        except NotClosableError:
            return Acted("close", {"round": r, "closed_by": "another node"})
        self.state.put(r, "close", {"gas": receipt.gas_used})
        return Acted("close", {"round": r, "gas": receipt.gas_used})

    # ---------------------------------------------------------------- helpers

    def _recorded(self, r: int, step: str) -> dict[str, Any]:
        """The outcome of a step the loop already did this round (it runs steps in order)."""
        outcome = self.state.get(r, step)
        if outcome is None:
            raise NodeStateError(
                f"round {r}: the node state has no record of its {step} step",
                hint="the state database was changed from outside; move it away to rebuild",
            )
        return outcome

    def _base(self, cid: str) -> GlobalModel:
        """The global model `cid`, fetched and verified once (a reader re-hashes every block)."""
        model = self._bases.get(cid)
        if model is None:
            model = read_model(self.store.get(cid), self.trainer.spec)
            self._bases = {cid: model}  # only the current base is needed again
        return model

    def _designated(self, r: int) -> bool:
        """Whether this node holds the lowest live seat, whose holder proposes first."""
        live = [s for s in self.ledger.seats(r) if self.ledger.is_seat_holder(r, s.holder)]
        return bool(live) and min(live, key=lambda seat: seat.word).holder == self.address


def run(
    loop: NodeLoop,
    clock: Clock,
    *,
    should_stop: Callable[[], bool],
    poll_seconds: float = 2.0,
    max_backoff: float = 60.0,
    on_step: Callable[[Acted | Wait], None] | None = None,
    on_error: Callable[[FlareError, float], None] | None = None,
) -> None:
    """Step `loop` until `should_stop()`: act, or sleep until there may be something to do.

    An unreachable chain or store, a transaction the node refused, content not found: each is
    logged with its hint and retried with exponential backoff (1, 2, 4, ... seconds, at most
    `max_backoff`), and the loop resumes where it was, since nothing was recorded for a step
    that did not complete. A `ConfigError` (the node's own keys, state or settings) stops it.
    `on_error(error, delay)` reports each failure (the node's status shows the last ones);
    without it, the loop's own log does.
    """
    failures = 0
    while not should_stop():
        try:
            result = loop.step()
            now = loop.ledger.timestamp() if isinstance(result, Wait) else 0
        except ConfigError:
            raise  # the node's own setup or state: the operator must act
        except FlareError as error:  # unreachable, refused, content missing: all may pass
            failures += 1
            delay = min(max_backoff, 2.0 ** (failures - 1))
            if on_error is not None:
                on_error(error, delay)
            else:
                kind = "unavailable" if isinstance(error, UnavailableError) else "failed"
                hint = f" ({error.hint})" if error.hint else ""
                loop.log(f"{kind}: {error.message}{hint}; retrying in {delay:g}s")
            clock.sleep(delay)
            continue
        failures = 0
        if on_step is not None:
            on_step(result)
        if isinstance(result, Wait):
            left = poll_seconds if result.until is None else result.until - now
            clock.sleep(max(0.0, min(poll_seconds, left)))
