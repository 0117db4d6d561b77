"""`flare-node ... | head` ends quietly: nothing on stderr, exit status 141 (128 + SIGPIPE).

The reader of stdout goes away before the command is done. The command must not report it as
a disk or I/O error, and Python must not print "Exception ignored ... BrokenPipeError" when it
flushes stdout at exit. These run the real console script with stdout on a real pipe.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import typer
from console_script import FlareNode
from typer.testing import CliRunner

from flare.cli.app import EXIT_BROKEN_PIPE, FlareGroup


def _into_closed_pipe(flare_node: FlareNode, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout on a pipe whose reader is gone before the command starts, so that its
    first write fails, whatever the machine's speed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            flare_node.command(*args),
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=flare_node.env,
            timeout=60,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["contract", "--help"],
        ["--version"],
        ["vrf", "threshold", "--committee-size", "5", "--eligible", "10", "--json"],
    ],
    ids=["help", "group help", "version", "json document"],
)
def test_output_into_a_closed_pipe_ends_quietly(flare_node: FlareNode, args: list[str]) -> None:
    result = _into_closed_pipe(flare_node, *args)

    assert result.stderr == b""
    assert result.returncode == EXIT_BROKEN_PIPE == 141


def test_a_reader_that_stops_early_ends_the_fetch_quietly(
    flare_node: FlareNode, tmp_path: Path
) -> None:
    # Arrange: content far larger than a pipe holds, so the writer is still writing when
    # the reader leaves (`flare-node store get -o - CID | head -c 10`).
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(4 * 1024 * 1024))
    added = subprocess.run(
        flare_node.command("store", "add", str(blob)),
        capture_output=True,
        env=flare_node.env,
        check=True,
        timeout=60,
    )
    cid = added.stdout.decode().strip()

    # Act
    with subprocess.Popen(
        flare_node.command("store", "get", "-o", "-", cid),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=flare_node.env,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        head = child.stdout.read(10)
        child.stdout.close()
        stderr = child.stderr.read()
        code = child.wait(timeout=60)

    # Assert
    assert head == blob.read_bytes()[:10]
    assert stderr == b""
    assert code == EXIT_BROKEN_PIPE


def test_output_that_fits_is_not_affected(flare_node: FlareNode) -> None:
    result = subprocess.run(
        flare_node.command("--version"), capture_output=True, env=flare_node.env, timeout=60
    )

    assert result.returncode == 0
    assert result.stdout.startswith(b"flare-node ")
    assert result.stderr == b""


def test_a_broken_pipe_elsewhere_is_reported_without_blaming_the_disk() -> None:
    # A child process or socket that closed early: stdout is fine, so this is a failure.
    app = typer.Typer(cls=FlareGroup)

    @app.command()
    def fail() -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    @app.command()
    def other() -> None:
        """A second command, so typer keeps `fail` as a subcommand."""

    result = CliRunner().invoke(app, ["fail"])

    assert result.exit_code == 1
    assert "Error: Broken pipe" in result.stderr
    assert "closed early" in result.stderr
    assert "free space" not in result.stderr
