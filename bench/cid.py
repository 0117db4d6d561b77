"""CID computation and embedded put/get throughput, as ratios to hashlib.sha256 in the same run.

    .venv/bin/python bench/cid.py                        # 64 MiB, median of 5 rounds
    .venv/bin/python bench/cid.py --sizes 64,256         # several sizes (MiB)
    .venv/bin/python bench/cid.py --dir /dev/shm --json  # store on tmpfs: CPU cost only

Every measurement streams the same input file (kept in the page cache by a first read):

- baseline  hashlib.sha256 over the file in 1 MiB reads: the physical limit, since a CID needs
            every byte read and hashed once;
- cid       FileHasher over the file (the `store add --only-hash` path);
- put       EmbeddedStore.put_stream into a fresh store (hash + write every block to a pack);
- get       EmbeddedStore.get_stream, pieces discarded (read + verify every block);
- copy      the file copied to a new file in 1 MiB writes, nothing hashed: what writing the
            bytes once costs on this filesystem. `put` hashes on one core and writes on the
            other, so its wall-clock time cannot beat the larger of `baseline` and `copy`.

Ratios are baseline time / time (target >= 0.8 wall-clock). The figures are measured in rounds,
each running every measurement once, back to back; a ratio is taken within each round and the
median over --repeat rounds is printed, so a machine that slows down or speeds up between rounds
(a shared VM) moves both sides of a ratio alike. CPU-time ratios (every thread's CPU summed) are
printed beside the wall-clock ones: `put` must spend CPU on hashing and on writing, so its CPU
ratio stays near 1/(1 + copy's share) even when its wall-clock ratio is 1. The files a run writes
are emptied after it, untimed, so the footprint stays near one copy of the input; they are
deleted only at the end, because on some filesystems creating files soon after others were
deleted is slower, and the runs would measure the previous run's deletions. On a disk the
figures include the filesystem; `--dir /dev/shm` measures the code. They are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flare.node.store.embedded import EmbeddedStore
from flare.node.store.files import read_chunks
from flare.protocol.unixfs import FileHasher

MIB = 1 << 20
FIGURES = ("sha256", "cid", "put", "get", "copy")


def timed(run: Callable[[], Path | None]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU sums every thread.

    `run` returns the directory it wrote, if any, whose files are emptied after the clock stops.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    written = run()
    seconds = time.perf_counter() - wall, time.process_time() - cpu
    if written is not None:
        for path in written.rglob("*"):
            if path.is_file():
                os.truncate(path, 0)  # frees the space, keeps the inode (see above)
    return seconds


def make_input(path: Path, size: int) -> None:
    """`size` random bytes: every 256 KiB chunk distinct, so the store cannot deduplicate."""
    with open(path, "wb") as out:
        left = size
        while left:
            piece = min(left, 64 * MIB)
            out.write(os.urandom(piece))
            left -= piece


def measure(size_mib: int, workdir: Path, repeat: int, chosen: list[str]) -> dict[str, float]:
    source = workdir / f"input-{size_mib}.bin"
    make_input(source, size_mib * MIB)
    size = size_mib * MIB

    def sha256() -> None:
        digest = hashlib.sha256()
        with open(source, "rb") as stream:
            for piece in read_chunks(stream, MIB):
                digest.update(piece)
        digest.digest()

    def cid() -> None:
        hasher = FileHasher()
        with open(source, "rb") as stream:
            for chunk in read_chunks(stream):
                hasher.update(chunk)
        hasher.finish()

    def put() -> Path:
        root = Path(tempfile.mkdtemp(dir=workdir, prefix="store-"))
        with EmbeddedStore(root) as store, open(source, "rb") as stream:
            store.put_stream(stream)
        return root

    kept = workdir / f"store-{size_mib}"  # what `get` reads, outside the timed runs

    def get() -> None:
        with EmbeddedStore(kept) as store:
            for _ in store.get_stream(root_cid):
                pass

    def copy() -> Path:
        target = Path(tempfile.mkdtemp(dir=workdir, prefix="copy-"))
        with open(source, "rb") as stream, open(target / "copy.bin", "wb") as out:
            for piece in read_chunks(stream, MIB):
                out.write(piece)
        return target

    sha256()  # warm the page cache
    with EmbeddedStore(kept) as store, open(source, "rb") as stream:
        root_cid = store.put_stream(stream)

    runs: dict[str, Callable[[], Path | None]] = {
        "sha256": sha256,
        "cid": cid,
        "put": put,
        "get": get,
        "copy": copy,
    }
    chosen = ["sha256", *chosen]
    rounds = [{name: timed(runs[name]) for name in chosen} for _ in range(repeat)]
    figures: dict[str, float] = {"size_mib": size_mib}
    for name in chosen:
        figures[f"{name}_mib_s"] = statistics.median(size / MIB / r[name][0] for r in rounds)
    for name in chosen[1:]:
        figures[f"{name}_ratio"] = statistics.median(r["sha256"][0] / r[name][0] for r in rounds)
        figures[f"{name}_cpu_ratio"] = statistics.median(
            r["sha256"][1] / r[name][1] for r in rounds
        )
    if "put" in chosen and "copy" in chosen:
        figures["put_vs_copy"] = statistics.median(r["copy"][0] / r["put"][0] for r in rounds)
    for path in (*kept.rglob("*"), source):
        if path.is_file():
            os.truncate(path, 0)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64", help="input sizes in MiB, comma-separated")
    parser.add_argument("--dir", type=Path, default=None, help="where input and stores live")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median kept)")
    parser.add_argument(
        "--figures",
        default=",".join(FIGURES[1:]),
        help="which to measure beside sha256, comma-separated (fewer: less between them)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="flare-bench-cid-") as workdir:
        chosen = [name for name in args.figures.split(",") if name]
        unknown = sorted(set(chosen) - set(FIGURES[1:]))
        if unknown:
            parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {FIGURES[1:]}")
        results = [
            measure(int(size), Path(workdir), args.repeat, chosen) for size in args.sizes.split(",")
        ]

    if args.json:
        print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(), "runs": results}))
        return
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, median of {args.repeat} rounds"
    print(f"CID and embedded store vs hashlib.sha256 ({machine}); rates in MiB/s,")
    print("(wall-clock ratio to sha256 in the same round, cpu = CPU-time ratio)")
    print(f"{'size':>9} {'sha256':>7} " + " ".join(f"{name:>20}" for name in chosen))
    for run in results:
        cells = [f"{run['size_mib']:>5.0f} MiB {run['sha256_mib_s']:>5.0f}/s"]
        for name in chosen:
            cells.append(
                f"{run[f'{name}_mib_s']:>5.0f}/s ({run[f'{name}_ratio']:.2f} "
                f"cpu {run[f'{name}_cpu_ratio']:.2f})"
            )
        print(" ".join(cells))
    print("target: wall-clock ratio >= 0.8 for cid, put and get.")


if __name__ == "__main__":
    main()
