"""What every seat holder computes in review: the checked updates, the aggregate, the next model.

A seat holder fetches the update each node registered, parses it as a `flare-update/1` bundle
for the deployment's model spec, keeps it only if it was trained for this round from this
round's base model and names the node that registered it, and then applies the deployment's
committed review policy (`flare.protocol.policy`), never settings of its own: the norm bound,
the sample cap on weights, copy detection in registration order, the aggregation rule, and the
server learning rate with which the aggregate moves the base (`flare.protocol.model.apply_delta`).
Every step is ordered float64 arithmetic that IEEE 754 fixes to the bit (no BLAS, no SIMD-order
sums: decompression adds rank terms in order, deciding norms use `math.fsum`), so honest seat
holders compute the same model bytes, the same CID and the same `updatesRoot`: a seat holder
votes for a proposal when both match its own. (multi-Krum's distance sums are the exception: numpy's
vectorized sums, whose order may differ between CPUs, so a near-tie may split the committee.)
Nothing here raises for a bad update: each is left out with the reason, for the log. That
includes one that would push a weight past what the model's dtype holds, alone or in the sum
(`flare.protocol.overflow`): the model is then the rule applied to the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from flare.protocol.aggregate import RULES, Rejection, Update, find_copies, overflowing, screen
from flare.protocol.bundle import InvalidBundleError, read_bundle, size_bound
from flare.protocol.errors import FlareError
from flare.protocol.model import GlobalModel, ModelMeta, apply_delta, write_model
from flare.protocol.modelspec import MAX_RANK
from flare.protocol.overflow import ModelStep
from flare.protocol.policy import ReviewPolicy
from flare.protocol.rounds import updates_root

__all__ = ["NextModel", "NotEnoughUpdatesError", "Submission", "next_model"]


class NotEnoughUpdatesError(FlareError):
    """Too few updates survived the checks for the rule: there is nothing to propose."""

    rejected: tuple[Rejection, ...] = ()  # the updates left out, with why


@dataclass(frozen=True)
class Submission:
    """An update as the chain registered it, with its bytes (None: they could not be fetched).

    `data` must be what the store returned for `cid`: stores re-hash every block they hand
    out, so the bytes are the ones the node registered.
    """

    node: str
    cid: bytes  # binary CID, as UpdateSubmitted carries it
    num_samples: int  # as registered on-chain: the bundle must claim the same
    data: bytes | None
    missing: str = "its update could not be fetched"  # why `data` is None, for the log


@dataclass(frozen=True)
class NextModel:
    """The proposal a seat holder makes (or checks): model bytes, metadata, who is in and out."""

    model: bytes
    meta: ModelMeta
    included: tuple[str, ...]
    rejected: tuple[Rejection, ...]


def next_model(
    base: GlobalModel,
    base_cid: str,
    round_number: int,
    submissions: Sequence[Submission],
    policy: ReviewPolicy,
    *,
    max_rank: int = MAX_RANK,
) -> NextModel:
    """The next global model from this round's submissions (see the module docstring).

    `submissions` come in the order the chain registered them (`UpdateSubmitted` events):
    copy detection keeps the first of near-identical updates.
    """
    spec = base.spec
    rule = policy.rule
    limit = size_bound(spec, max_rank)
    updates: list[Update] = []
    rejected: list[Rejection] = []
    cids: dict[str, bytes] = {}
    for submission in submissions:
        if submission.data is None:
            rejected.append(Rejection(submission.node, submission.missing))
            continue
        try:
            bundle = read_bundle(submission.data, spec, max_bytes=limit)
        except InvalidBundleError as error:
            rejected.append(Rejection(submission.node, error.message))
            continue
        except Exception as error:  # peer bytes must never stop the review
            rejected.append(Rejection(submission.node, f"the update does not parse: {error!r}"))
            continue
        reason = _mismatch(bundle.meta.round, bundle.meta.base_model, bundle.meta.node,
                           round_number, base_cid, submission.node)  # fmt: skip
        if reason is None and bundle.meta.num_samples != submission.num_samples:
            reason = (
                f"the update claims {bundle.meta.num_samples} samples, the chain registered "
                f"{submission.num_samples}"
            )
        if reason is not None:
            rejected.append(Rejection(submission.node, reason))
            continue
        node = bundle.meta.node  # checksummed, and the registering node's (checked above)
        weight = min(bundle.meta.num_samples, policy.sample_cap)
        updates.append(Update(node, weight, bundle.delta()))
        cids[node] = submission.cid
    step = ModelStep(base.weights, policy.server_learning_rate)
    accepted, screened_out = screen(updates, spec, norm_bound=policy.norm_bound, step=step)
    rejected.extend(screened_out)
    arrival = {id(update): index for index, update in enumerate(updates)}
    accepted, copies = find_copies(
        sorted(accepted, key=lambda update: arrival[id(update)]),
        spec,
        threshold=policy.copy_threshold,
    )
    rejected.extend(copies)
    while True:  # each pass that overflows leaves one update out (see flare.protocol.overflow)
        if len(accepted) < max(1, rule.minimum_updates):
            raise _shortfall(len(accepted), policy, rejected)
        result = RULES[rule.name](accepted, spec, rule)
        culprit = overflowing(result, accepted, spec, step)
        if culprit is None:
            break
        rejected.append(culprit)
        accepted = [update for update in accepted if update.node != culprit.node]
    rejected.extend(result.rejected)
    root = updates_root([(node, cids[node]) for node in result.included])
    meta = ModelMeta(round=round_number, parent=base_cid, updates_root=root, model_spec=spec.hash)
    moves = {name: step.scaled(tensor) for name, tensor in result.delta.items()}
    model = write_model(meta, spec, apply_delta(base, moves))
    return NextModel(model, meta, result.included, tuple(rejected))


def _shortfall(
    passed: int, policy: ReviewPolicy, rejected: Sequence[Rejection]
) -> NotEnoughUpdatesError:
    needed = max(1, policy.rule.minimum_updates)
    shortfall = NotEnoughUpdatesError(
        f"{passed} update(s) passed the checks; rule {policy.rule.name} needs {needed}",
        hint="the round fails when review ends without a proposal; the next keeps its base",
    )
    shortfall.rejected = tuple(rejected)
    return shortfall


def _mismatch(
    bundle_round: int,
    bundle_base: str,
    bundle_node: str,
    round_number: int,
    base_cid: str,
    node: str,
) -> str | None:
    if bundle_round != round_number:
        return f"the update was built for round {bundle_round}, not {round_number}"
    if bundle_base != base_cid:
        return f"the update was trained from {bundle_base}, not this round's base {base_cid}"
    try:
        same = to_checksum_address(node) == bundle_node
    except ValueError:
        return "the node is not an Ethereum address"
    if not same:
        return f"the update names node {bundle_node}, not the node that registered it"
    return None
