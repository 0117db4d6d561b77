"""The one exception hierarchy of flare-node.

Every error a user can meet derives from `FlareError` and a builtin (ValueError,
ConnectionError, ...) so callers may catch either. Errors carry structured fields and a
message that says what went wrong and what to do; only the CLI turns them into exit codes.
"""

from __future__ import annotations


class FlareError(Exception):
    """Base of every flare-node error.

    `hint` says what the user can do about it; the CLI prints it under the message.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ConfigError(FlareError, ValueError):
    """A setting, option or file the user supplied is invalid."""

    exit_code = 2


class IntegrityError(FlareError, ValueError):
    """Bytes do not match the hash or format that names them."""


class UnavailableError(FlareError, ConnectionError):
    """A service the node needs (RPC endpoint, IPFS daemon, peer) could not be reached."""

    exit_code = 3


def causes(error: BaseException) -> list[BaseException]:
    """`error` and every exception it wraps, outermost first.

    Transport libraries nest the socket error that says what happened (refused, unresolvable,
    timed out) several levels down: in `__cause__`, `__context__`, the arguments or urllib3's
    `reason`. Messages that name the real failure look through all of them.
    """
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        linked = [*current.args, getattr(current, "reason", None)]
        linked += [current.__cause__, current.__context__]
        pending += [item for item in linked if isinstance(item, BaseException)]
    return seen
