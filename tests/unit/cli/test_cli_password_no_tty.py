"""Without a terminal on stdin, a command that needs a password says so, and nothing else.

Python's getpass, asked to prompt with no terminal, reads stdin in the clear and prints its own
warnings ("GetPassWarning: Can not control echo on the terminal", "Password input may be
echoed"). flare-node refuses first: stderr holds exactly its message, and the exit is 2.

The children run in a session of their own, so none of them can reach the terminal of
whoever runs the tests.
"""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

import pytest
from console_script import FlareNode

NO_TERMINAL = (
    b"Error: no password given, and stdin is not a terminal to ask for one\n"
    b"  hint: put it in a file of mode 0600 and pass --password-file FILE (in a node config: "
    b"[keys] password_file), or set $FLARE_PASSWORD\n"
)
PASSWORD = "correct horse battery"


def _run(
    flare_node: FlareNode, args: list[str], *, stdin: int | None = None, given: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run to the end, in a session of its own, with `stdin` or `given` as its input."""
    return subprocess.run(
        flare_node.command(*args),
        stdin=stdin,
        input=given,
        capture_output=True,
        env=flare_node.env,
        start_new_session=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("stdin", "given"),
    [(subprocess.DEVNULL, None), (None, f"{PASSWORD}\n".encode())],
    ids=["stdin from /dev/null", "password piped in"],
)
@pytest.mark.parametrize(
    "args", [["keys", "check"], ["init", "--kdf", "light"]], ids=["keys check", "init"]
)
def test_no_terminal_gives_the_projects_message_only(
    flare_node: FlareNode, args: list[str], stdin: int | None, given: bytes | None
) -> None:
    result = _run(flare_node, args, stdin=stdin, given=given)

    assert result.stderr == NO_TERMINAL
    assert result.returncode == 2
    assert result.stdout == b""
    assert not Path(flare_node.env["FLARE_HOME"], "keys").exists()  # init made nothing


def test_a_password_file_still_works_without_a_terminal(
    flare_node: FlareNode, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(f"{PASSWORD}\n")
    secret.chmod(0o600)

    result = _run(
        flare_node,
        ["init", "--kdf", "light", "--password-file", str(secret)],
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stderr
    assert b"Warning" not in result.stderr


def _read_until(fd: int, wanted: bytes, seen: bytearray) -> None:
    """Read the terminal's output into `seen` until `wanted` appears (or 30 s pass)."""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"no {wanted!r} from the command; it wrote {bytes(seen)!r}"
        seen += os.read(fd, 4096)


def _drain(fd: int, seen: bytearray) -> None:
    """Read what is left once the command has exited (the terminal then reads as closed)."""
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: no process holds the terminal any more
            return
        if not chunk:
            return
        seen += chunk


def test_a_terminal_on_stdin_still_gets_the_hidden_prompt(flare_node: FlareNode) -> None:
    controller, terminal = os.openpty()
    child = subprocess.Popen(
        flare_node.command("init", "--kdf", "light"),
        stdin=terminal,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=flare_node.env,
        start_new_session=True,
    )
    os.close(terminal)
    seen = bytearray()
    try:
        # The space after each prompt is getpass's, written once echo is off and pending
        # input flushed: a password typed before it would be thrown away.
        for prompt in (b"New key password: ", b"Repeat for confirmation: "):
            _read_until(controller, prompt, seen)
            os.write(controller, f"{PASSWORD}\n".encode())
        code = child.wait(timeout=60)
        _drain(controller, seen)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(controller)

    assert code == 0, bytes(seen)
    assert PASSWORD.encode() not in seen  # the terminal did not echo it
    assert b"Warning" not in seen
    assert Path(flare_node.env["FLARE_HOME"], "keys").is_dir()
