"""`flare-node` in a child process, with hooks that make a fault land at a chosen point.

`python -m cli_process ARGS...` is `flare-node ARGS...` (the console script's own
`flare.cli.app:main`), after installing what the environment asks for:

- `FLARE_TEST_KILL_AT=OP:GLOB:N` with `FLARE_TEST_FS_ROOT=DIR`: the process kills itself with
  SIGKILL just before its N-th file-system change of kind OP (`*`: any) on a path under DIR that
  matches GLOB (relative to DIR). The changes counted: `create` (a new file, or one opened for
  truncation), `write` (os.write/os.writev on a descriptor opened under DIR), `mkdir`, `link`,
  `rename` (os.rename/os.replace, by target), `unlink`, `rmdir` and `truncate`. A kill between two
  of them leaves exactly what a SIGKILL there leaves, whatever the machine's speed: no timing.
  Writes through file objects are not seen (their `create` is), nor is syncing, which changes
  nothing a killed process's successor can see.
- `FLARE_TEST_TRACE=FILE` with `FLARE_TEST_FS_ROOT`: each such change is appended to FILE as
  `OP PATH`, so a test learns the points a command passes.
- `FLARE_TEST_BARRIER=FILE`: once everything is imported, the process writes `waiting` on stderr
  and takes a shared flock on FILE, which the test holds exclusively until every child waits:
  children start their work together, with no sleep.

The points are the operating system's, so each can be reached without a hook in the code under
test (the store's own modules stay free of test switches) and a sweep can visit all of them.
"""

from __future__ import annotations

import builtins
import fcntl
import fnmatch
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

KILL_ENV = "FLARE_TEST_KILL_AT"
ROOT_ENV = "FLARE_TEST_FS_ROOT"
TRACE_ENV = "FLARE_TEST_TRACE"
BARRIER_ENV = "FLARE_TEST_BARRIER"
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# ------------------------------------------------------------------ the test's side


def command(*args: str) -> list[str]:
    """The argv that runs `flare-node ARGS...` through this module."""
    return [sys.executable, "-m", "cli_process", *args]


def environment(
    *,
    root: Path | None = None,
    kill_at: str | None = None,
    trace: Path | None = None,
    barrier: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """A child's environment: this directory importable, no FLARE_* setting inherited."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLARE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    for name, value in ((ROOT_ENV, root), (KILL_ENV, kill_at), (TRACE_ENV, trace)):
        if value is not None:
            env[name] = str(value)
    if barrier is not None:
        env[BARRIER_ENV] = str(barrier)
    env.update(extra)
    return env


def run(
    args: Sequence[str], env: dict[str, str], *, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run `flare-node ARGS...` to its end (or its kill); the timeout only guards a hang."""
    return subprocess.run(command(*args), env=env, capture_output=True, timeout=timeout)


def trace_points(trace: Path) -> list[tuple[str, str]]:
    """The (OP, PATH) changes a traced run made, in order."""
    if not trace.exists():
        return []
    return [
        (op, path)
        for op, _, path in (line.partition(" ") for line in trace.read_text().splitlines())
    ]


# ------------------------------------------------------------------ the child's side


class _Points:
    """Counts the file-system changes under one directory and kills the process at one."""

    def __init__(self, root: str, target: str | None, trace: str | None) -> None:
        self.root = os.path.realpath(root)
        self.trace = trace
        self.seen = 0
        self.kill: tuple[str, str, int] | None = None
        if target:
            op, glob, n = target.split(":")
            self.kill = (op, glob, int(n))
        self.descriptors: dict[int, str] = {}

    def relative(self, path: Any) -> str | None:
        """`path` relative to the root, or None when it is elsewhere (or not a path)."""
        if isinstance(path, int) or path is None:
            return None
        try:
            text = os.fsdecode(path)
        except TypeError:
            return None
        absolute = os.path.join(
            os.path.realpath(os.path.dirname(os.path.abspath(text))), os.path.basename(text)
        )
        if absolute == self.root or absolute.startswith(self.root + os.sep):
            return os.path.relpath(absolute, self.root)
        return None

    def change(self, op: str, where: str | None) -> None:
        """Called just before a change: trace it, and die here if it is the chosen one."""
        if where is None:
            return
        if self.trace:
            with _REAL["io.open"](self.trace, "a") as log:
                log.write(f"{op} {where}\n")
        if self.kill is None:
            return
        kind, glob, n = self.kill
        if fnmatch.fnmatchcase(op, kind) and fnmatch.fnmatchcase(where, glob):
            self.seen += 1
            if self.seen == n:
                os.kill(os.getpid(), signal.SIGKILL)


_REAL: dict[str, Callable[..., Any]] = {}


def _install(points: _Points) -> None:
    """Wrap the `os` and `open` calls through which the store and the key files change."""
    real = {name: getattr(os, name) for name in ("open", "write", "writev", "close")}
    real |= {
        name: getattr(os, name)
        for name in ("mkdir", "link", "rename", "replace", "unlink", "remove", "rmdir")
    }
    real |= {"truncate": os.truncate, "ftruncate": os.ftruncate, "io.open": io.open}
    _REAL.update(real)

    def exists(path: Any) -> bool:
        return os.path.lexists(path)

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        where = points.relative(path) if dir_fd is None else None
        if where is not None and (flags & os.O_TRUNC or (flags & os.O_CREAT and not exists(path))):
            points.change("create", where)
        descriptor: int = real["open"](path, flags, mode, dir_fd=dir_fd)
        if where is not None and flags & _WRITING:
            points.descriptors[descriptor] = where
        else:
            points.descriptors.pop(descriptor, None)
        return descriptor

    def os_close(fd: int) -> None:
        points.descriptors.pop(fd, None)
        real["close"](fd)

    def writing(name: str) -> Callable[..., Any]:
        def wrapper(descriptor: int, *args: Any) -> Any:
            points.change("write", points.descriptors.get(descriptor))
            return real[name](descriptor, *args)

        return wrapper

    def by_path(op: str, name: str, *, changes_if: bool = True) -> Callable[..., Any]:
        """A call that changes something only when `path` exists (or, `changes_if=False`, not)."""

        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            if exists(path) == changes_if:
                points.change(op, points.relative(path))
            return real[name](path, *args, **kwargs)

        return wrapper

    def by_target(op: str, name: str) -> Callable[..., Any]:
        def wrapper(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            points.change(op, points.relative(target) or points.relative(source))
            return real[name](source, target, *args, **kwargs)

        return wrapper

    def opened(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        where = points.relative(file)
        if where is not None and ("w" in mode or (set(mode) & set("ax+") and not exists(file))):
            points.change("create", where)
        return real["io.open"](file, mode, *args, **kwargs)

    def ftruncate(descriptor: int, length: int) -> None:
        points.change("truncate", points.descriptors.get(descriptor))
        real["ftruncate"](descriptor, length)

    os.open = os_open
    os.close = os_close
    os.write = writing("write")
    os.writev = writing("writev")
    os.mkdir = by_path("mkdir", "mkdir", changes_if=False)
    os.unlink = by_path("unlink", "unlink")
    os.remove = by_path("unlink", "remove")
    os.rmdir = by_path("rmdir", "rmdir")
    os.truncate = by_path("truncate", "truncate")
    os.ftruncate = ftruncate
    os.link = by_target("link", "link")
    os.rename = by_target("rename", "rename")
    os.replace = by_target("rename", "replace")
    builtins.open = io.open = opened


def _wait_at_barrier(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sys.stderr.write("waiting\n")
        sys.stderr.flush()
        fcntl.flock(descriptor, fcntl.LOCK_SH)
    finally:
        os.close(descriptor)


def main() -> None:
    root = os.environ.get(ROOT_ENV)
    if root is not None:
        _install(_Points(root, os.environ.get(KILL_ENV), os.environ.get(TRACE_ENV)))
    from flare.cli.app import main as flare_node

    if BARRIER_ENV in os.environ:
        _wait_at_barrier(os.environ[BARRIER_ENV])
    sys.argv = ["flare-node", *sys.argv[1:]]
    flare_node()


if __name__ == "__main__":
    main()
