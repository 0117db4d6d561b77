"""A seat holder's REVIEW: compute the next model under the committed policy, then decide.

`compute` is the heavy half, done once per round: fetch every registered update in parallel
with verified reads (a store re-hashes every block it hands out), fetch the round's policy by
the CID the round opened with, run `flare.protocol.committee.next_model`, pin the result, and
apply the policy's acceptance rule with the node's own held-out evaluation of the candidate
against the base. Which updates are in or out depends on public data only (the chain, the
content, the policy), so honest members compute the same bytes; the evaluation can only
approve or reject a whole proposal.

`decide` is the light half, asked at every step: with one vote per member per round, it
approves a proposal whose CID and updates root equal its own when the acceptance test passed;
proposes its own model when it is the designated proposer (the lowest live seat), when a
proposal that differs from its own exists, or when the first third of review passed with no
proposal; and, in the last third, votes against a proposal it cannot approve. A member that
can still approve its own proposal never spends its vote against another one: a lying first
proposer then costs the round nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flare.protocol.bundle import size_bound
from flare.protocol.cid import decode_cid, encode_cid
from flare.protocol.committee import NotEnoughUpdatesError, Submission, next_model
from flare.protocol.errors import FlareError, UnavailableError
from flare.protocol.events import UpdateSubmitted
from flare.protocol.model import GlobalModel, read_model
from flare.protocol.modelspec import MAX_RANK
from flare.protocol.policy import MAX_POLICY_BYTES, ReviewPolicy, read_policy
from flare.protocol.ports import Trainer
from flare.protocol.rounds import Proposal, RoundInfo
from flare.protocol.store import BlobStore

FETCH_WORKERS = 8


@dataclass(frozen=True)
class Computed:
    """One member's review of a round: its model (None when there is nothing to propose)."""

    model_cid: str | None
    updates_root: bytes = b""
    included: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()  # (node, reason)
    base_loss: float | None = None
    candidate_loss: float | None = None
    accepted: bool = False
    reason: str = ""
    fetched_bytes: int = 0  # update bytes read from the store (metrics only)

    def outcome(self) -> dict[str, Any]:
        """The record the node's state keeps."""
        return {
            "model": self.model_cid,
            "updates_root": "0x" + self.updates_root.hex(),
            "included": list(self.included),
            "rejected": [list(pair) for pair in self.rejected],
            "base_loss": self.base_loss,
            "candidate_loss": self.candidate_loss,
            "accepted": self.accepted,
            "reason": self.reason,
            "fetched_bytes": self.fetched_bytes,
        }

    @classmethod
    def from_outcome(cls, outcome: dict[str, Any]) -> Computed:
        return cls(
            model_cid=outcome["model"],
            updates_root=bytes.fromhex(str(outcome["updates_root"]).removeprefix("0x")),
            included=tuple(outcome["included"]),
            rejected=tuple((str(n), str(r)) for n, r in outcome["rejected"]),
            base_loss=outcome["base_loss"],
            candidate_loss=outcome["candidate_loss"],
            accepted=bool(outcome["accepted"]),
            reason=str(outcome["reason"]),
            fetched_bytes=int(outcome.get("fetched_bytes", 0)),
        )


@dataclass(frozen=True)
class Propose:
    """Send `proposeAggregate` with this member's model."""

    model_cid: str
    updates_root: bytes


@dataclass(frozen=True)
class Vote:
    proposal_id: int
    approve: bool
    reason: str = ""


@dataclass(frozen=True)
class Hold:
    """Nothing to send now; look again at `until` (chain time) or when the chain moves."""

    until: int
    reason: str


Decision = Propose | Vote | Hold


def fetch_policy(store: BlobStore, cid: bytes) -> ReviewPolicy:
    """The round's review policy, fetched by CID (verified) and parsed strictly."""
    return read_policy(store.get(encode_cid(cid), max_bytes=MAX_POLICY_BYTES))


def compute(
    store: BlobStore,
    trainer: Trainer,
    info: RoundInfo,
    base: GlobalModel,
    base_cid: str,
    updates: Sequence[UpdateSubmitted],
) -> Computed:
    """The next model from the round's registered updates, in chain order (see the module)."""
    policy = fetch_policy(store, info.review_policy)
    limit = size_bound(base.spec, MAX_RANK)

    def fetch(event: UpdateSubmitted) -> Submission:
        try:
            data = store.get(encode_cid(event.cid), max_bytes=limit)
        except UnavailableError:
            raise  # the store is down, not the update bad: compute again once it is back
        except FlareError as error:  # not found, too large, or not its CID's bytes
            return Submission(event.node, event.cid, event.num_samples, None, error.message)
        return Submission(event.node, event.cid, event.num_samples, data)

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        submissions = list(pool.map(fetch, updates))
    fetched = sum(len(s.data) for s in submissions if s.data is not None)
    try:
        result = next_model(base, base_cid, info.round, submissions, policy)
    except NotEnoughUpdatesError as error:
        rejected = tuple((r.node, r.reason) for r in error.rejected)
        return Computed(None, rejected=rejected, reason=error.message, fetched_bytes=fetched)
    model_cid = store.put(result.model)
    base_loss = trainer.evaluate(base)
    candidate_loss = trainer.evaluate(read_model(result.model, base.spec))
    accepted = policy.accepts(base_loss, candidate_loss)
    return Computed(
        model_cid=model_cid,
        updates_root=result.meta.updates_root,
        included=result.included,
        rejected=tuple((r.node, r.reason) for r in result.rejected),
        base_loss=base_loss,
        candidate_loss=candidate_loss,
        accepted=accepted,
        reason=""
        if accepted
        else (
            f"held-out loss {candidate_loss:.6g} against the base's {base_loss:.6g} fails the "
            f"policy's acceptance rule (at most {policy.max_loss_increase:.0%} more)"
        ),
        fetched_bytes=fetched,
    )


@dataclass(frozen=True)
class Situation:
    """What `decide` reads off the chain and the node's state."""

    now: int
    info: RoundInfo
    proposals: Sequence[Proposal]
    designated: bool  # the lowest live seat: it proposes first
    proposed: bool
    voted: bool


def deadlines(info: RoundInfo) -> tuple[int, int]:
    """(anyone may propose from, objections from): a third and two thirds into review."""
    window = info.review_end - info.review_start
    return info.review_start + window // 3, info.review_start + 2 * window // 3


def decide(computed: Computed, situation: Situation) -> Decision:
    """What a seat holder does now (see the module docstring)."""
    info, now = situation.info, situation.now
    if situation.voted:
        return Hold(info.review_end, "voted; waiting for the quorum")
    mine = None if computed.model_cid is None else decode_cid(computed.model_cid)
    matching = [
        p
        for p in situation.proposals
        if mine is not None and p.cid == mine and p.updates_root == computed.updates_root
    ]
    if matching and computed.accepted:
        return Vote(matching[0].proposal_id, True, "the same bytes as its own computation")
    propose_from, object_from = deadlines(info)
    can_propose = computed.model_cid is not None and computed.accepted and not situation.proposed
    if can_propose and (situation.designated or situation.proposals or now >= propose_from):
        return Propose(str(computed.model_cid), computed.updates_root)
    if now >= object_from and situation.proposals:
        if matching:
            target, why = matching[0], "the held-out acceptance test failed"
        elif computed.model_cid is None:
            target, why = (
                situation.proposals[0],
                f"its own computation has no model: {computed.reason}",
            )
        else:
            target, why = situation.proposals[0], "it differs from its own computation"
        return Vote(target.proposal_id, False, why)
    if now < propose_from:
        return Hold(propose_from, "waiting for the designated proposer")
    if now < object_from:
        return Hold(object_from, "waiting for a proposal it can approve")
    return Hold(info.review_end, "nothing to approve or object to")
