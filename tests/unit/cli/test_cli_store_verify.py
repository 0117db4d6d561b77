"""`flare-node store verify`, and what `store get` and `store gc` say about a damaged store,
through the real command tree (CliRunner) on an embedded store whose packs are damaged on disk."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from flare_testing import cid_of
from typer.testing import CliRunner, Result

from flare.cli.app import app
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.cid import Cid
from flare.protocol.unixfs import CHUNK_SIZE


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("FLARE_HOME", "FLARE_STORE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def store(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(app, ["store", *args, "--home", str(home)])


def added(runner: CliRunner, home: Path, tmp_path: Path, size: int, seed: int) -> tuple[Path, str]:
    path = tmp_path / f"file-{seed}.bin"
    path.write_bytes(random.Random(seed).randbytes(size))
    result = store(runner, home, "add", str(path))
    assert result.exit_code == 0, result.output
    return path, result.stdout.strip()


def test_verify_of_a_sound_store_exits_0(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    _, cid = added(runner, home, tmp_path, 2 * CHUNK_SIZE + 1, seed=1)

    text = store(runner, home, "verify")
    document = store(runner, home, "verify", "--json")

    assert text.exit_code == 0, text.output
    assert text.stdout.endswith("Every pinned block is intact.\n")
    assert f"Read 1 pinned file(s) in {home / 'store'}: 4 block(s)" in text.stdout
    assert document.exit_code == 0, document.output
    report = json.loads(document.stdout)
    assert report["clean"] is True
    assert (report["pins_checked"], report["blocks_checked"]) == (1, 4)
    assert report["damaged_pins"] == report["damaged_packs"] == []
    assert cid not in document.stdout  # nothing to name


def test_a_damaged_pack_is_named_by_get_verify_and_gc_and_a_re_add_repairs_it(
    runner: CliRunner, home: Path, tmp_path: Path
) -> None:
    path, cid = added(runner, home, tmp_path, 3 * CHUNK_SIZE, seed=2)
    _, other = added(runner, home, tmp_path, CHUNK_SIZE + 5, seed=3)
    found = EmbeddedStore(home / "store").locate(Cid.parse(cid))
    assert found is not None
    pack = found[0]
    with open(pack, "r+b") as file:
        file.write(bytes(4096))  # a bad sector: the pack's header and its first block
    first = cid_of(path.read_bytes()[:CHUNK_SIZE])

    got = store(runner, home, "get", cid, "-o", str(tmp_path / "out"))
    verified = store(runner, home, "verify")
    collected = store(runner, home, "gc", "--json")

    assert got.exit_code == 1
    assert f"block {first} of {cid} is corrupt in the store at {home / 'store'}" in got.stderr
    assert f"its bytes in pack {pack} do not hash to it" in got.stderr
    assert "hint: add the file again (`flare-node store add FILE`)" in got.stderr
    assert not (tmp_path / "out").exists()
    assert verified.exit_code == 1, verified.output
    assert f"DAMAGED {cid}\n  block {first}: its bytes in pack {pack}" in verified.stdout
    assert f"damaged pack {pack}: its header is damaged" in verified.stdout
    assert f"(breaks {cid})" in verified.stdout
    assert "To repair each damaged file: add the file again" in verified.stderr
    assert other not in verified.stdout
    assert collected.exit_code == 1
    error = json.loads(collected.stdout)["error"]
    assert error["type"] == "StoreDamagedError"
    assert f"are damaged: {cid} (block {first}" in error["message"]

    assert store(runner, home, "add", str(path)).exit_code == 0
    readded = store(runner, home, "verify")
    assert readded.exit_code == 1  # every pin reads whole, but the damaged pack is still there
    assert "DAMAGED" not in readded.stdout
    assert f"damaged pack {pack}: its header is damaged" in readded.stdout
    assert "(no pinned file is affected)" in readded.stdout
    assert store(runner, home, "gc").exit_code == 0  # nothing pinned is damaged: pack rewritten
    after = store(runner, home, "verify", "--json")

    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout)["clean"] is True
    assert not pack.exists()
    assert store(runner, home, "get", cid, "-o", str(tmp_path / "out")).exit_code == 0
    assert (tmp_path / "out").read_bytes() == path.read_bytes()


def test_verify_json_on_damage_is_its_own_report_with_exit_1(
    runner: CliRunner, home: Path, tmp_path: Path
) -> None:
    _, cid = added(runner, home, tmp_path, 2 * CHUNK_SIZE, seed=4)
    found = EmbeddedStore(home / "store").locate(Cid.parse(cid))
    assert found is not None
    found[0].unlink()  # the whole pack is gone

    result = store(runner, home, "verify", "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert report["clean"] is False
    [pin] = report["damaged_pins"]
    assert pin["cid"] == cid
    [block] = pin["blocks"]
    assert block["cid"] == cid
    assert block["pack"] is None
    assert "a pack file was deleted, moved or lost" in block["problem"]
    assert report["damaged_packs"] == []


def test_verifying_a_large_store_shows_progress_on_stderr(
    runner: CliRunner, home: Path, tmp_path: Path
) -> None:
    added(runner, home, tmp_path, 9 << 20, seed=5)

    result = store(runner, home, "verify")

    assert result.exit_code == 0, result.output
    assert "Verifying" in result.stderr
    assert "Verifying" not in result.stdout
