"""`flare-node store` on the embedded store, through the real command tree (CliRunner)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from flare_testing import cid_of
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.cid import CODEC_RAW, Cid
from flare.protocol.errors import ConfigError, FlareError
from flare.protocol.unixfs import CHUNK_SIZE


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("FLARE_HOME", raising=False)
    monkeypatch.delenv("FLARE_STORE", raising=False)
    return CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def store(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(app, ["store", *args, "--home", str(home)])


def source(tmp_path: Path, size: int, seed: int = 0) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / f"input-{seed}.bin"
    path.write_bytes(data)
    return path, data


def assert_fails(result: Result, error: type[FlareError], text: str) -> None:
    assert result.exit_code == error.exit_code, result.output
    assert "Error" in result.output
    assert text in result.output


def test_add_prints_only_the_cid_on_stdout(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path, data = source(tmp_path, 2 * CHUNK_SIZE + 5)

    result = store(runner, home, "add", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout == cid_of(data) + "\n"
    assert "pinned" in result.stderr
    assert (home / "store" / "pins" / cid_of(data)).exists()


def test_only_hash_stores_nothing(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path, data = source(tmp_path, CHUNK_SIZE + 1, seed=1)

    result = store(runner, home, "add", str(path), "--only-hash", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "cid": cid_of(data),
        "size": len(data),
        "stored": False,
        "pinned": False,
    }
    assert not (home / "store").exists()


def test_get_writes_the_verified_file(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path, data = source(tmp_path, 3 * CHUNK_SIZE, seed=2)
    cid = store(runner, home, "add", str(path)).stdout.strip()
    target = tmp_path / "fetched.bin"

    result = store(runner, home, "get", cid, "-o", str(target), "--json")

    assert result.exit_code == 0, result.output
    assert target.read_bytes() == data
    report = json.loads(result.stdout)
    assert (report["cid"], report["size"], report["verified"]) == (cid, len(data), True)


def test_get_to_stdout(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path, data = source(tmp_path, 1000, seed=3)
    cid = store(runner, home, "add", str(path)).stdout.strip()

    result = runner.invoke(app, ["store", "get", cid, "-o", "-", "--home", str(home)])

    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == data


def test_pin_lifecycle_with_a_custom_data_dir(
    runner: CliRunner, home: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "elsewhere"
    path, data = source(tmp_path, CHUNK_SIZE + 9, seed=4)
    cid = store(runner, home, "add", str(path), "--no-pin", "--data-dir", str(data_dir)).stdout

    def run(*args: str) -> dict[str, object]:
        result = store(runner, home, *args, "--data-dir", str(data_dir), "--json")
        assert result.exit_code == 0, result.output
        loaded: dict[str, object] = json.loads(result.stdout)
        return loaded

    cid = cid.strip()
    assert run("ls") == {"pins": []}
    assert run("pin", cid) == {"cid": cid, "pinned": True}
    assert run("ls") == {"pins": [cid]}
    assert run("gc")["removed_blocks"] == 0
    assert run("unpin", cid) == {"cid": cid, "unpinned": True}
    assert run("unpin", cid) == {"cid": cid, "unpinned": False}
    collected = run("gc")
    assert collected["removed_blocks"] == 3  # two leaves and their parent
    assert isinstance(collected["freed_bytes"], int)
    assert collected["freed_bytes"] > len(data)
    assert not (home / "store").exists()


def test_text_output_summarises(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path, _ = source(tmp_path, 10, seed=5)
    cid = store(runner, home, "add", str(path)).stdout.strip()

    assert store(runner, home, "ls").stdout == cid + "\n"
    assert "Unpinned" in store(runner, home, "unpin", cid).stdout
    summary = store(runner, home, "gc").stdout
    freed = re.fullmatch(r"Removed 1 unpinned block\(s\), (\d+) bytes freed\.\n", summary)
    assert freed is not None, summary
    assert int(freed.group(1)) >= 10  # the block, and its pack's index


def test_a_bad_cid_is_a_usage_error(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    result = store(runner, home, "get", "not-a-cid", "-o", str(tmp_path / "out"))

    assert_fails(result, ConfigError, "not CID text")
    assert not (tmp_path / "out").exists()


def test_missing_content_names_the_cid(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    missing = Cid.of_block(CODEC_RAW, b"absent").text

    result = store(runner, home, "get", missing, "-o", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert missing in result.output
    assert not (tmp_path / "out").exists()


def test_corrupt_content_leaves_no_output_file(
    runner: CliRunner, home: Path, tmp_path: Path
) -> None:
    path, data = source(tmp_path, 2 * CHUNK_SIZE + 1, seed=6)
    cid = store(runner, home, "add", str(path)).stdout.strip()
    leaf = Cid.of_block(CODEC_RAW, data[CHUNK_SIZE : 2 * CHUNK_SIZE])
    found = EmbeddedStore(home / "store").locate(leaf)
    assert found is not None
    pack, offset, length = found
    with open(pack, "r+b") as stored:
        stored.seek(offset)
        stored.write(bytes(length))

    result = store(runner, home, "get", cid, "-o", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert leaf.text in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", path.name]


@pytest.mark.parametrize(
    "value", ["s3://bucket", "ipfs://", "ipfs://host:notaport", "ipfs://h:1/x"]
)
def test_an_unknown_store_is_a_usage_error(
    runner: CliRunner, home: Path, tmp_path: Path, value: str
) -> None:
    path, _ = source(tmp_path, 10, seed=7)

    result = store(runner, home, "add", str(path), "--store", value)

    assert_fails(result, ConfigError, "--store")


def test_an_unreadable_input_is_a_usage_error(runner: CliRunner, home: Path) -> None:
    result = store(runner, home, "add", "/nonexistent/input.bin")

    assert_fails(result, ConfigError, "cannot read")
    assert not home.exists()


def test_large_transfers_show_progress_on_stderr(
    runner: CliRunner, home: Path, tmp_path: Path
) -> None:
    path, data = source(tmp_path, 9 << 20, seed=8)

    added = store(runner, home, "add", str(path))
    fetched = store(runner, home, "get", added.stdout.strip(), "-o", str(tmp_path / "out"))

    assert added.exit_code == 0, added.output
    assert "Adding" in added.stderr
    assert "Fetching" in fetched.stderr
    assert (tmp_path / "out").read_bytes() == data
