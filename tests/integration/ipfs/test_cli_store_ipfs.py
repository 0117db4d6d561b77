"""`flare-node store --store ipfs://HOST:PORT` against the session's real daemon."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flare.cli.app import app
from flare.protocol.errors import UnavailableError
from flare.protocol.unixfs import CHUNK_SIZE, FileHasher

pytestmark = [
    pytest.mark.ipfs,
    pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning"),
]


@pytest.fixture
def url(ipfs_api: str) -> str:
    host, port = re.fullmatch(r"/ip4/([0-9.]+)/tcp/(\d+)/http", ipfs_api).groups()  # type: ignore[union-attr]
    return f"ipfs://{host}:{port}"


def test_add_get_unpin_through_the_daemon(url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    data = random.randbytes(3 * CHUNK_SIZE + 1)
    (tmp_path / "in.bin").write_bytes(data)
    hasher = FileHasher()
    hasher.update(data)

    added = runner.invoke(app, ["store", "add", str(tmp_path / "in.bin"), "--store", url])
    cid = added.stdout.strip()
    fetched = runner.invoke(
        app, ["store", "get", cid, "-o", str(tmp_path / "out.bin"), "--store", url, "--json"]
    )
    listed = runner.invoke(app, ["store", "ls", "--store", url, "--json"])
    unpinned = runner.invoke(app, ["store", "unpin", cid, "--store", url, "--json"])

    assert added.exit_code == 0, added.output
    assert cid == hasher.finish().text
    assert fetched.exit_code == 0, fetched.output
    assert (tmp_path / "out.bin").read_bytes() == data
    assert cid in json.loads(listed.stdout)["pins"]
    assert json.loads(unpinned.stdout) == {"cid": cid, "unpinned": True}


def test_a_dead_daemon_is_named_with_exit_code_3(tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"x")

    result = CliRunner().invoke(
        app, ["store", "ls", "--store", "ipfs://127.0.0.1:9", "--home", str(tmp_path)]
    )

    assert result.exit_code == UnavailableError.exit_code
    assert "/ip4/127.0.0.1/tcp/9/http" in result.output
