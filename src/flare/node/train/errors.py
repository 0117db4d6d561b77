"""Errors of local training: each says what is wrong with the model or data and how to fix it."""

from __future__ import annotations

from flare.protocol.errors import ConfigError, IntegrityError


class PolicyNotFoundError(ConfigError, FileNotFoundError):
    """A policy or backbone directory is missing or lacks the files LeRobot needs."""


class DatasetMismatchError(ConfigError):
    """A dataset whose features do not fit the policy (cameras, state or action size, tasks)."""

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = problems
        super().__init__(
            "the dataset does not fit the policy: " + "; ".join(problems),
            hint=hint
            or "record or convert the dataset with the policy's features, map camera names "
            "with --rename-camera, or build a new policy for this dataset",
        )


class SpecMismatchError(IntegrityError):
    """A model whose spec hash is not the one the deployment expects."""

    def __init__(self, expected: bytes, actual: bytes, *, what: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{what} has model spec 0x{actual.hex()}, the deployment expects 0x{expected.hex()}",
            hint="use the base model the deployment published (same backbone, frozen weights "
            "and trainable layout), or deploy a round contract for this model's spec",
        )
