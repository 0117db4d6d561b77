"""CID computation and embedded put/get throughput, as ratios to hashlib.sha256 in the same run.

    .venv/bin/python bench/cid.py                        # 64 MiB, median of 5
    .venv/bin/python bench/cid.py --sizes 64,256         # several sizes (MiB)
    .venv/bin/python bench/cid.py --dir /dev/shm --json  # store on tmpfs: CPU cost only

Every measurement streams the same input file (kept in the page cache by a first read):

- baseline  hashlib.sha256 over the file in 1 MiB reads: the physical limit, since a CID needs
            every byte hashed once;
- cid       FileHasher over the file (the `store add --only-hash` path);
- put       EmbeddedStore.put_stream into a fresh store (hash + write every block);
- get       EmbeddedStore.get_stream, pieces discarded (read + verify every block);
- copy      the file copied to a new file in 1 MiB writes: what the disk allows `put` at best;
- files     the file written as one new file per 256 KiB chunk (temporary name, then renamed
            into 256 shard directories), nothing hashed: what one file per block costs on this
            filesystem. `put` hashes on one core and writes on the other, so its wall-clock
            time cannot beat the larger of `baseline` and `files`.

Ratios are rate / baseline rate (target >= 0.8 wall-clock); `put_vs_files` shows how close `put`
gets to the filesystem's own cost. Each figure is the median of --repeat runs. CPU-time ratios
(every thread's CPU summed) are printed beside the wall-clock ones: they change less than
wall-clock time when other processes compete for the cores. The files a run writes are emptied
after it, untimed, so the footprint stays near one copy of the input; they are deleted only at
the end, because on some filesystems creating files soon after thousands were deleted is far
slower (ext4 without a journal skips recently freed inodes one by one: up to a millisecond of CPU
per new file), and the runs would measure the previous run's deletions. On a disk the figures
include the filesystem; `--dir /dev/shm` measures the code. They are printed, never asserted.
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
from flare.protocol.unixfs import CHUNK_SIZE, FileHasher

MIB = 1 << 20
FIGURES = ("sha256", "cid", "put", "get", "copy", "files")


def median_seconds(run: Callable[[], Path | None], repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds, each the median of `repeat` runs; CPU sums every thread.

    `run` returns the directory it wrote, if any, whose files are emptied after the clock stops.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        written = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if written is not None:
            for path in written.rglob("*"):
                if path.is_file():
                    os.truncate(path, 0)  # frees the space, keeps the inode (see above)
    return statistics.median(walls), statistics.median(cpus)


def make_input(path: Path, size: int) -> None:
    """`size` random bytes: every 256 KiB chunk distinct, so the store cannot deduplicate."""
    with open(path, "wb") as out:
        left = size
        while left:
            piece = min(left, 64 * MIB)
            out.write(os.urandom(piece))
            left -= piece


def measure(size_mib: int, workdir: Path, repeat: int) -> dict[str, float]:
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

    def files() -> Path:
        root = tempfile.mkdtemp(dir=workdir, prefix="files-")
        os.mkdir(f"{root}/part")
        made: set[str] = set()
        with open(source, "rb") as stream:
            for index, chunk in enumerate(read_chunks(stream, CHUNK_SIZE)):
                name = f"{index:064x}"
                shard = f"{root}/{name[-2:]}"
                if shard not in made:
                    os.mkdir(shard)
                    made.add(shard)
                temporary = f"{root}/part/{name}"
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                os.write(descriptor, chunk)
                os.close(descriptor)
                os.replace(temporary, f"{shard}/{name}")
        return Path(root)

    sha256()  # warm the page cache
    with EmbeddedStore(kept) as store, open(source, "rb") as stream:
        root_cid = store.put_stream(stream)

    runs: dict[str, Callable[[], Path | None]] = {
        "sha256": sha256,
        "cid": cid,
        "put": put,
        "get": get,
        "copy": copy,
        "files": files,
    }
    seconds = {name: median_seconds(runs[name], repeat) for name in FIGURES}
    figures: dict[str, float] = {"size_mib": size_mib}
    for name, (wall, _) in seconds.items():
        figures[f"{name}_mib_s"] = size / MIB / wall
    for name in ("cid", "put", "get", "files"):
        figures[f"{name}_ratio"] = seconds["sha256"][0] / seconds[name][0]
        figures[f"{name}_cpu_ratio"] = seconds["sha256"][1] / seconds[name][1]
    figures["put_vs_copy"] = seconds["copy"][0] / seconds["put"][0]
    figures["put_vs_files"] = seconds["files"][0] / seconds["put"][0]
    for path in (*kept.rglob("*"), source):
        if path.is_file():
            os.truncate(path, 0)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64", help="input sizes in MiB, comma-separated")
    parser.add_argument("--dir", type=Path, default=None, help="where input and stores live")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="flare-bench-cid-") as workdir:
        results = [measure(int(size), Path(workdir), args.repeat) for size in args.sizes.split(",")]

    if args.json:
        print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(), "runs": results}))
        return
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, median of {args.repeat}"
    print(f"CID and embedded store vs hashlib.sha256 ({machine}); rates in MiB/s,")
    print("(wall-clock ratio to sha256, cpu = CPU-time ratio)")
    print(f"{'size':>9} {'sha256':>7} {'cid':>20} {'put':>20} {'get':>20} {'copy':>6}", end="")
    print(f" {'files':>20} put/files")
    for run in results:
        cells = [f"{run['size_mib']:>5.0f} MiB {run['sha256_mib_s']:>5.0f}/s"]
        for name in ("cid", "put", "get"):
            cells.append(
                f"{run[f'{name}_mib_s']:>5.0f}/s ({run[f'{name}_ratio']:.2f} "
                f"cpu {run[f'{name}_cpu_ratio']:.2f})"
            )
        cells.append(f"{run['copy_mib_s']:>4.0f}/s")
        cells.append(
            f"{run['files_mib_s']:>5.0f}/s ({run['files_ratio']:.2f} "
            f"cpu {run['files_cpu_ratio']:.2f})"
        )
        cells.append(f"{run['put_vs_files']:>9.2f}")
        print(" ".join(cells))
    print("put target: wall-clock ratio >= 0.8. put hashes and writes every byte, so its CPU time")
    print(
        "is at least sha256's plus files': its CPU ratio cannot pass f/(1+f), f = files cpu ratio."
    )


if __name__ == "__main__":
    main()
