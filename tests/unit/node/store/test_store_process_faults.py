"""`flare-node store` as real processes meeting real faults: SIGKILL in the middle of `gc` and
`get`, a file system that runs out of space, and several processes adding at once.

A kill lands at a chosen file-system change of the child (`cli_process`'s FLARE_TEST_KILL_AT), or
while the child is blocked writing to a pipe the test stopped reading: the same state on every
run, on any machine, with no timing involved. Simulated ENOSPC at every write is covered in
test_store_embedded_faults.py (`FullDisk`); here the kernel says it.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cli_process
import pytest
from flare_testing import cid_of
from typer.testing import CliRunner

from flare.cli.app import app
from flare.node.store import packs
from flare.node.store.embedded import EmbeddedStore
from flare.protocol.cid import CODEC_RAW, Cid
from flare.protocol.store import StorageFullError, StorageIntegrityError
from flare.protocol.unixfs import CHUNK_SIZE


def content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def leaf(data: bytes, index: int = 0) -> Cid:
    return Cid.of_block(CODEC_RAW, data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])


def flare_node(*args: str) -> subprocess.CompletedProcess[bytes]:
    return cli_process.run(args, cli_process.environment())


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("FLARE_HOME", "FLARE_STORE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@dataclass
class Scenario:
    """A store with every kind of work for gc, and what must survive it."""

    root: Path
    pinned: dict[str, bytes]  # CID -> content
    dead: list[Cid]  # blocks no pin reaches

    def stored_blocks(self) -> list[bytes]:
        """The digest of every block copy in the store's packs (duplicates repeated)."""
        found = []
        for path in (self.root / "packs").glob("*.pack"):
            found += [entry.digest for entry in packs.read_pack_index(str(path)) or []]
        return found


def scenario(root: Path) -> Scenario:
    """A pinned file, a pack nothing reaches, a pack gc must copy one live block out of, a
    file stored twice whose copy in use has a block found bad, and leftovers of a killed add
    and of a killed pin: every step of gc has work."""
    with EmbeddedStore(root) as store:
        kept = content(3 * CHUNK_SIZE + 7, seed=1)
        store.put(kept)
        unpinned = content(2 * CHUNK_SIZE, seed=2)
        store.put(unpinned, pin=False)
        shared = content(CHUNK_SIZE, seed=3)
        tail = content(5000, seed=4)
        partly = store.put(shared + tail)
        store.pin(leaf(shared).text)
        store.unpin(partly)
        twice = content(2 * CHUNK_SIZE + 1, seed=14)
        stored_twice(store, twice)
    (root / "tmp" / "0000000000000000-deadbeef.pack.part").write_bytes(b"half a pack")
    (root / "pins" / f".{cid_of(tail)}.0123abcd.tmp").write_bytes(b"")
    return Scenario(
        root,
        pinned={cid_of(kept): kept, cid_of(shared): shared, cid_of(twice): twice},
        dead=[leaf(unpinned, 0), leaf(unpinned, 1), Cid.parse(partly), leaf(tail)],
    )


def stored_twice(store: EmbeddedStore, data: bytes) -> None:
    """`data` in two packs (as two adds at once leave it), a block of the copy in use bad."""
    cid = store.put(data)
    located = store.locate(Cid.parse(cid))
    assert located is not None
    older, _, _ = located
    newer = older.with_name(f"{int(older.name[:16], 16) + 1:016x}-c0c0c0c0.pack")
    shutil.copyfile(older, newer)
    located = store.locate(leaf(data, 1))
    assert located is not None
    assert located[0] == older
    with open(older, "r+b") as pack:
        pack.seek(located[1])
        pack.write(bytes(16))
    with pytest.raises(StorageIntegrityError):
        store.get(cid)  # finds the bad block and lists it in `bad`
    assert (store.root / "bad").exists()
    assert store.get(cid) == data  # from the intact copy


def assert_pinned_content_intact(case: Scenario) -> None:
    """The store opens, lists exactly the pins, and every pinned file reads back verified."""
    with EmbeddedStore(case.root) as store:
        assert store.pins() == sorted(case.pinned)
        for cid, data in case.pinned.items():
            assert store.has(cid)
            assert store.get(cid) == data  # every block re-hashed on the way


def assert_collected(case: Scenario) -> None:
    """Nothing dead, nothing half-written and no second copy is left."""
    with EmbeddedStore(case.root) as store:
        assert all(store.locate(block) is None for block in case.dead)
    assert list((case.root / "tmp").iterdir()) == []
    assert sorted(path.name for path in (case.root / "pins").iterdir()) == sorted(case.pinned)
    blocks = case.stored_blocks()
    # kept: 4 leaves and a root; the shared leaf; twice: 3 leaves and a root
    assert len(blocks) == len(set(blocks)) == 10
    assert not (case.root / "bad").exists()  # the bad copy went with its pack


def kill_gc_at(case: Scenario, point: str) -> None:
    killed = cli_process.run(
        ["store", "gc", "--data-dir", str(case.root)],
        cli_process.environment(root=case.root, kill_at=point),
    )
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr.decode())


# Each leaves a different state: nothing done; the dead pack gone; the copies of the live blocks
# half written, or complete but not yet in packs/; live blocks stored twice, in the new pack and
# the old ones; everything done but the list of bad blocks, which names packs now gone.
GC_POINTS = [
    "unlink:packs/*.pack:1",
    "unlink:tmp/*.pack.part:1",
    "write:tmp/*.pack.part:3",
    "rename:packs/*.pack:1",
    "unlink:packs/*.pack:2",
    "unlink:bad:1",
]


@pytest.mark.parametrize("point", GC_POINTS)
def test_gc_killed_midway_loses_nothing_pinned_and_a_rerun_finishes(
    tmp_path: Path, runner: CliRunner, point: str
) -> None:
    case = scenario(tmp_path / "store")

    kill_gc_at(case, point)

    assert_pinned_content_intact(case)
    rerun = runner.invoke(app, ["store", "gc", "--data-dir", str(case.root)])
    assert rerun.exit_code == 0, rerun.output
    assert_pinned_content_intact(case)
    assert_collected(case)


@pytest.mark.slow
def test_gc_killed_at_every_file_system_change_loses_nothing_pinned(
    tmp_path: Path, runner: CliRunner
) -> None:
    """Every point a clean gc passes, not only the ones named above: a new step in gc is
    covered as soon as it exists."""
    template = scenario(tmp_path / "template")
    trace = tmp_path / "trace"
    traced = shutil.copytree(template.root, tmp_path / "traced")
    clean = cli_process.run(
        ["store", "gc", "--data-dir", str(traced)],
        cli_process.environment(root=traced, trace=trace),
    )
    assert clean.returncode == 0, clean.stderr.decode()
    changes = cli_process.trace_points(trace)
    assert len(changes) >= len(GC_POINTS)

    for index, change in enumerate(changes, start=1):
        case = Scenario(
            shutil.copytree(template.root, tmp_path / f"kill-{index}"),
            template.pinned,
            template.dead,
        )
        kill_gc_at(case, f"*:*:{index}")
        assert_pinned_content_intact(case)
        rerun = runner.invoke(app, ["store", "gc", "--data-dir", str(case.root)])
        assert rerun.exit_code == 0, (change, rerun.output)
        assert_pinned_content_intact(case)
        assert_collected(case)


# ------------------------------------------------------------------ get


def test_get_killed_while_streaming_leaves_the_store_whole(
    tmp_path: Path, runner: CliRunner
) -> None:
    """The child blocks writing to a pipe the test stopped reading: killed mid-stream, with
    at least `read` verified bytes out and more than a pipe's worth still to come."""
    case = scenario(tmp_path / "store")
    data = content(16 * CHUNK_SIZE, seed=5)
    with EmbeddedStore(case.root) as store:
        cid = store.put(data)
    case.pinned[cid] = data
    read = 4 * CHUNK_SIZE
    child = subprocess.Popen(
        cli_process.command("store", "get", cid, "-o", "-", "--data-dir", str(case.root)),
        env=cli_process.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        head = b""
        while len(head) < read and (piece := child.stdout.read(read - len(head))):
            head += piece
        assert head == data[:read]
        assert child.poll() is None  # 3 MiB more cannot fit in a pipe that holds 64 KiB
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()  # also when an assertion above failed: never leave it blocked
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()

    assert child.returncode == -signal.SIGKILL
    assert_pinned_content_intact(case)
    rerun = runner.invoke(app, ["store", "get", cid, "-o", "-", "--data-dir", str(case.root)])
    assert rerun.exit_code == 0, rerun.output
    assert rerun.stdout_bytes == data


def test_get_killed_before_its_rename_keeps_the_old_file(tmp_path: Path, runner: CliRunner) -> None:
    """Killed with every verified byte in the temporary file, just before it takes the name:
    the file already there keeps its old content, whole."""
    case = scenario(tmp_path / "store")
    cid, data = max(case.pinned.items(), key=lambda item: len(item[1]))  # several blocks
    out_dir = tmp_path / "fetched"
    out_dir.mkdir()
    target = out_dir / "model.bin"
    target.write_bytes(b"the previous download")
    args = ["store", "get", cid, "-o", str(target), "--data-dir", str(case.root)]

    killed = cli_process.run(
        args, cli_process.environment(root=out_dir, kill_at="rename:model.bin:1")
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert target.read_bytes() == b"the previous download"
    assert [p.name for p in out_dir.iterdir() if not p.name.startswith(".")] == ["model.bin"]
    assert_pinned_content_intact(case)
    rerun = runner.invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    assert target.read_bytes() == data


# ------------------------------------------------------------------ a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted in a private mount namespace that a helper process holds.

    The test reaches it through /proc/<helper>/root; the mount disappears with the helper, so
    a failed test leaves nothing mounted on the machine.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no `unshare` to make a private mount namespace for a 1 MiB tmpfs")
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    script = f"mount -t tmpfs -o size=1m flare-test '{mountpoint}' && echo mounted && exec cat"
    holder = subprocess.Popen(
        [unshare, "--map-root-user", "--mount", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stderr is not None
    try:
        if holder.stdout.readline() != b"mounted\n":
            holder.wait(timeout=60)
            reason = holder.stderr.read().decode().strip()
            pytest.skip(f"cannot mount a 1 MiB tmpfs in a user+mount namespace: {reason}")
        yield Path(f"/proc/{holder.pid}/root") / mountpoint.relative_to("/")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()
        holder.stderr.close()


def test_add_on_a_full_disk_fails_keeps_nothing_and_succeeds_once_space_is_freed(
    small_disk: Path, tmp_path: Path, runner: CliRunner
) -> None:
    root = small_disk / "store"
    earlier = content(200 << 10, seed=6)
    with EmbeddedStore(root) as store:
        earlier_cid = store.put(earlier)
        [earlier_pack] = list((root / "packs").iterdir())
    filler = small_disk / "filler"
    filler.write_bytes(bytes(400 << 10))
    big = tmp_path / "update.bin"
    big.write_bytes(content(600 << 10, seed=7))
    free = os.statvfs(small_disk)
    assert free.f_bavail * free.f_frsize < big.stat().st_size  # the disk really is too small
    add = ["store", "add", str(big), "--data-dir", str(root), "--json"]

    full = flare_node(*add)

    assert full.returncode == StorageFullError.exit_code == 1, full.stderr.decode()
    error = json.loads(full.stdout)["error"]
    assert error["type"] == "StorageFullError"
    assert error["message"].startswith(f"no space left on the device holding {root}")
    assert error["message"].endswith("nothing was kept")
    assert "store gc" in error["hint"]
    assert b"Error: no space left on the device" in full.stderr
    assert [path.name for path in (root / "pins").iterdir()] == [earlier_cid]
    assert list((root / "tmp").iterdir()) == []
    assert list((root / "packs").iterdir()) == [earlier_pack]
    fetched = runner.invoke(app, ["store", "get", earlier_cid, "-o", "-", "--data-dir", str(root)])
    assert fetched.exit_code == 0, fetched.output
    assert fetched.stdout_bytes == earlier

    filler.unlink()
    added = flare_node(*add)

    assert added.returncode == 0, added.stderr.decode()
    predicted = runner.invoke(app, ["store", "add", str(big), "--only-hash"])
    assert json.loads(added.stdout)["cid"] == predicted.stdout.strip() == cid_of(big.read_bytes())
    with EmbeddedStore(root) as store:
        assert store.pins() == sorted([earlier_cid, cid_of(big.read_bytes())])
        assert store.get(cid_of(big.read_bytes())) == big.read_bytes()
        assert store.get(earlier_cid) == earlier


# ------------------------------------------------------------------ several processes at once


def test_concurrent_adds_and_a_gc_keep_every_pin(tmp_path: Path, runner: CliRunner) -> None:
    """Four adds (two of the same file, two sharing their first blocks) and a gc, released
    together from a barrier once all five are imported. Whatever the interleaving, every add
    prints the CID --only-hash predicts and gc takes nothing pinned. One add's file was stored
    unpinned before: gc wants its blocks while the add wants to reuse them."""
    root = tmp_path / "store"
    shared = content(8 * CHUNK_SIZE, seed=8)
    files = {
        "a": content(12 * CHUNK_SIZE + 1, seed=9),
        "b": shared + content(4 * CHUNK_SIZE, seed=10),
        "c": shared + content(6 * CHUNK_SIZE + 3, seed=11),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.bin"
        paths[name].write_bytes(data)
    kept = content(CHUNK_SIZE + 1, seed=12)
    dead = content(3 * CHUNK_SIZE, seed=13)
    with EmbeddedStore(root) as store:
        store.put(kept)
        store.put(files["a"], pin=False)
        store.put(dead, pin=False)
    barrier = tmp_path / "barrier"
    barrier.touch()
    env = cli_process.environment(barrier=barrier)
    jobs = [["store", "add", str(paths[name]), "--data-dir", str(root)] for name in "aabc"]
    jobs.append(["store", "gc", "--data-dir", str(root)])

    gate = os.open(barrier, os.O_RDONLY)
    children: list[subprocess.Popen[bytes]] = []
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        for job in jobs:
            children.append(
                subprocess.Popen(
                    cli_process.command(*job),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        for child in children:
            assert child.stderr is not None
            assert child.stderr.readline() == b"waiting\n"
    finally:
        os.close(gate)  # releases the barrier: all five start at once
        results = [child.communicate(timeout=120) for child in children]

    for child, job, (_, err) in zip(children, jobs, results, strict=True):
        assert child.returncode == 0, (job, err.decode())
    predicted = {}
    for name, path in paths.items():
        hashed = runner.invoke(app, ["store", "add", str(path), "--only-hash"])
        predicted[name] = hashed.stdout.strip()
        assert predicted[name] == cid_of(files[name])
    printed = [out.decode().strip() for out, _ in results[:4]]
    assert printed == [predicted[name] for name in "aabc"]
    expected = {cid_of(kept): kept} | {predicted[name]: files[name] for name in files}
    case = Scenario(root, expected, [leaf(dead, index) for index in range(3)])
    assert_pinned_content_intact(case)
    again = runner.invoke(app, ["store", "gc", "--data-dir", str(root)])
    assert again.exit_code == 0, again.output
    assert_pinned_content_intact(case)
    with EmbeddedStore(root) as store:
        assert all(store.locate(block) is None for block in case.dead)
    blocks = case.stored_blocks()
    assert len(blocks) == len(set(blocks))  # the second gc dropped any block stored twice
