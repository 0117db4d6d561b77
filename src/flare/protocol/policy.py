"""The review policy: everything that decides the next model, committed on-chain by its CID.

A deployment names one `flare-policy/1` document in its config (`reviewPolicy`, a CID), so
every seat holder and auditor applies the same rule and bounds, and anyone can see which:

    {"acceptance":{"max_loss_increase":0.0,"rule":"held-out-loss"},
     "aggregation":{"rule":"fedavg"},
     "copy_threshold":0.9999,
     "format":"flare-policy/1",
     "norm_bound":1000.0,
     "sample_cap":100000,
     "server_optimizer":{"learning_rate":1.0,"name":"sgd"}}

- aggregation: the rule and its parameters (`clip_norm` for clipped-fedavg, `trim` for
  trimmed-mean, `byzantine` and `select` for multi-krum; none for fedavg and median);
- norm_bound: an update whose L2 norm exceeds it is left out;
- sample_cap: the most samples one update may weigh (the contract's maxSamples must equal it);
- server_optimizer: how the aggregate moves the model (`sgd`: base + learning_rate * delta);
- copy_threshold: an update whose cosine similarity with an update registered earlier in the
  round reaches it is left out as a copy;
- acceptance: what a seat holder's own held-out evaluation of a proposal must show before it
  approves (`held-out-loss`: the candidate's loss at most (1 + max_loss_increase) times the
  base's). It approves or rejects whole proposals and never chooses updates, so honest members
  still compute identical bytes.

The document is canonical JSON (keys sorted, no whitespace, numbers as Python writes them), so
one policy has one encoding and one CID; `read_policy` refuses anything else, including a
format it does not know, unknown or missing keys and out-of-range values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from flare.protocol.aggregate import RULES, Rule
from flare.protocol.errors import IntegrityError

POLICY_FORMAT = "flare-policy/1"
MAX_POLICY_BYTES = 4096

_RULE_PARAMS: dict[str, tuple[str, ...]] = {
    "fedavg": (),
    "clipped-fedavg": ("clip_norm",),
    "median": (),
    "trimmed-mean": ("trim",),
    "multi-krum": ("byzantine", "select"),
}
_SERVER_OPTIMIZERS = ("sgd",)
_ACCEPTANCE_RULES = ("held-out-loss",)


class PolicyError(IntegrityError):
    """A review policy document that cannot be used: malformed, unknown, or not canonical."""


@dataclass(frozen=True)
class ReviewPolicy:
    """A parsed `flare-policy/1` document (see the module docstring)."""

    rule: Rule
    norm_bound: float
    sample_cap: int
    server_learning_rate: float = 1.0
    copy_threshold: float = 0.9999
    max_loss_increase: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.rule.name not in _RULE_PARAMS:
            problems.append(f"aggregation rule {self.rule.name!r} is not one of {list(RULES)}")
        if not _positive(self.norm_bound):
            problems.append(f"norm_bound {self.norm_bound!r} must be a positive number")
        if not 1 <= self.sample_cap < 2**64:
            problems.append(f"sample_cap {self.sample_cap} must be in 1..2^64-1")
        if not _positive(self.server_learning_rate):
            problems.append(f"learning_rate {self.server_learning_rate!r} must be positive")
        if not (math.isfinite(self.copy_threshold) and 0.0 < self.copy_threshold <= 1.0):
            problems.append(f"copy_threshold {self.copy_threshold!r} must be in (0, 1]")
        if not (math.isfinite(self.max_loss_increase) and self.max_loss_increase >= 0.0):
            problems.append(f"max_loss_increase {self.max_loss_increase!r} must be >= 0")
        if self.rule.name == "clipped-fedavg" and not _positive(self.rule.clip_norm):
            problems.append(f"clip_norm {self.rule.clip_norm!r} must be positive")
        if self.rule.name == "trimmed-mean" and self.rule.trim < 0:
            problems.append(f"trim {self.rule.trim} must be >= 0")
        if self.rule.name == "multi-krum" and (self.rule.byzantine < 0 or self.rule.select < 1):
            problems.append("multi-krum needs byzantine >= 0 and select >= 1")
        if problems:
            raise PolicyError(
                "invalid review policy: " + "; ".join(problems),
                hint="see docs/deployer.md, 'The review policy'",
            )

    def document(self) -> dict[str, Any]:
        """The policy as the JSON object its canonical bytes encode."""
        aggregation: dict[str, Any] = {"rule": self.rule.name}
        for name in _RULE_PARAMS[self.rule.name]:
            value = getattr(self.rule, name)
            aggregation[name] = float(value) if name == "clip_norm" else int(value)
        return {
            "format": POLICY_FORMAT,
            "aggregation": aggregation,
            "norm_bound": float(self.norm_bound),
            "sample_cap": self.sample_cap,
            "server_optimizer": {"name": "sgd", "learning_rate": float(self.server_learning_rate)},
            "copy_threshold": float(self.copy_threshold),
            "acceptance": {
                "rule": "held-out-loss",
                "max_loss_increase": float(self.max_loss_increase),
            },
        }

    def to_bytes(self) -> bytes:
        """The canonical encoding: what the store holds and the CID commits to."""
        return canonical_json(self.document())

    def accepts(self, base_loss: float, candidate_loss: float) -> bool:
        """The acceptance rule: approve when the candidate's held-out loss is at most
        (1 + max_loss_increase) times the base's (a non-finite loss never passes)."""
        if not (math.isfinite(base_loss) and math.isfinite(candidate_loss)):
            return False
        return candidate_loss <= base_loss * (1.0 + self.max_loss_increase)


def canonical_json(document: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8, finite numbers only."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def read_policy(data: bytes) -> ReviewPolicy:
    """Parse and check a `flare-policy/1` document; refuses anything not canonical."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"a review policy is at most {MAX_POLICY_BYTES} bytes, got {len(data)}")
    try:
        document = json.loads(data, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise PolicyError(
            f"the review policy is not JSON: {error}", hint="write it with `flare-node policy new`"
        ) from error
    if not isinstance(document, dict):
        raise PolicyError("the review policy is not a JSON object")
    if document.get("format") != POLICY_FORMAT:
        raise PolicyError(
            f"review policy format {document.get('format')!r} is not {POLICY_FORMAT}",
            hint="this node reads flare-policy/1 only; upgrade flare-node to read newer ones",
        )
    policy = _parse(document)
    if policy.to_bytes() != data:
        raise PolicyError(
            "the review policy is not in canonical form (sorted keys, no whitespace)",
            hint="one policy must have one CID: write it with `flare-node policy new`",
        )
    return policy


def _known(value: Any, known: Collection[str], what: str) -> str:
    """`value` if it names one of `known` (a newer node's name is refused, not guessed)."""
    if value not in known:
        raise PolicyError(
            f"{what} {value!r} is not one this node knows", hint=f"use one of {', '.join(known)}"
        )
    return str(value)


def _parse(document: dict[str, Any]) -> ReviewPolicy:
    _exact_keys(
        document,
        {
            "format",
            "aggregation",
            "norm_bound",
            "sample_cap",
            "server_optimizer",
            "copy_threshold",
            "acceptance",
        },
        "the policy",
    )
    aggregation = _object(document["aggregation"], "aggregation")
    name = _known(aggregation.get("rule"), _RULE_PARAMS, "aggregation rule")
    _exact_keys(aggregation, {"rule", *_RULE_PARAMS[name]}, f"aggregation {name}")
    params: dict[str, Any] = {}
    for param in _RULE_PARAMS[name]:
        value = aggregation[param]
        params[param] = _number(value, param) if param == "clip_norm" else _integer(value, param)
    optimizer = _object(document["server_optimizer"], "server_optimizer")
    _known(optimizer.get("name"), _SERVER_OPTIMIZERS, "server optimizer")
    _exact_keys(optimizer, {"name", "learning_rate"}, "server_optimizer")
    acceptance = _object(document["acceptance"], "acceptance")
    _known(acceptance.get("rule"), _ACCEPTANCE_RULES, "acceptance rule")
    _exact_keys(acceptance, {"rule", "max_loss_increase"}, "acceptance")
    return ReviewPolicy(
        rule=Rule(name, **params),
        norm_bound=_number(document["norm_bound"], "norm_bound"),
        sample_cap=_integer(document["sample_cap"], "sample_cap"),
        server_learning_rate=_number(optimizer["learning_rate"], "learning_rate"),
        copy_threshold=_number(document["copy_threshold"], "copy_threshold"),
        max_loss_increase=_number(acceptance["max_loss_increase"], "max_loss_increase"),
    )


def _exact_keys(obj: dict[str, Any], expected: set[str], where: str) -> None:
    missing, unknown = expected - set(obj), set(obj) - expected
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {sorted(missing)}")
        if unknown:
            parts.append(f"unknown {sorted(unknown)}")
        raise PolicyError(f"{where} has {' and '.join(parts)}")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"{what} must be a JSON object")
    return value


def _number(value: Any, what: str) -> float:
    """A JSON float (written with a decimal point or exponent, as canonical form has it)."""
    if not isinstance(value, float):
        raise PolicyError(f"{what} must be a number written as a float (e.g. 1.0), got {value!r}")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{what} must be an integer, got {value!r}")
    return value


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0.0


def _refuse_constant(name: str) -> Any:
    raise PolicyError(f"the review policy holds {name}, which is not a number")
