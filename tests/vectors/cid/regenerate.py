"""Regenerate cid-vectors.json from a real IPFS daemon.

    .venv/bin/python tests/vectors/cid/regenerate.py            # starts tools/ipfs-daemon itself
    .venv/bin/python tests/vectors/cid/regenerate.py --api /ip4/127.0.0.1/tcp/5001/http  # Kubo

Each vector's content is SHAKE-128 of the UTF-8 text "flare-cid-vector/<name>", truncated to
`size` bytes, so any language can rebuild it. The CID is what the daemon prints for
`ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` of that content; nothing here uses
flare-node's own CID code. The `kubo` entries (from the UnixFS spec appendix and Kubo's own
fixtures) are left as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import ipfshttpclient

# ipfshttpclient 0.7 passes urllib3 2.x a deprecated argument on every connection pool.
warnings.filterwarnings("ignore", "The 'strict' parameter", FutureWarning)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CHUNK = 262_144
SIZES = {
    "empty": 0,
    "one-byte": 1,
    "chunk-minus-1": CHUNK - 1,
    "one-chunk": CHUNK,
    "chunk-plus-1": CHUNK + 1,
    "three-mib-plus-7": 3 * 1024 * 1024 + 7,
    "full-first-level": 174 * CHUNK,
    "two-level-minimal": 174 * CHUNK + 1,
    "two-level-176-leaves": 175 * CHUNK + 12_345,
}


def content(name: str, size: int) -> bytes:
    return hashlib.shake_128(f"flare-cid-vector/{name}".encode()).digest(size)


def start_daemon(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [str(ROOT / "tools" / "ipfs-daemon"), str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    for line in proc.stdout or ():
        if b"Daemon is ready" in line:
            return proc, (workdir / "repo" / "api").read_text().strip()
    raise SystemExit("the IPFS daemon exited before it was ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="RPC multiaddr of a running daemon (default: start one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = None
        api = args.api
        if api is None:
            proc, api = start_daemon(Path(tmp))
        try:
            client = ipfshttpclient.Client(api)
            version = client.version()
            vectors = []
            for name, size in SIZES.items():
                started = time.perf_counter()
                added = client.add(
                    io.BytesIO(content(name, size)),
                    cid_version=1,
                    raw_leaves=True,
                    chunker=f"size-{CHUNK}",
                    pin=False,
                    opts={"cid-base": "base32", "hash": "sha2-256"},
                )
                vectors.append({"name": name, "size": size, "cid": added["Hash"]})
                print(f"{name:22} {size:>10} {added['Hash']}  {time.perf_counter() - started:.1f}s")
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    document = json.loads((HERE / "cid-vectors.json").read_text())
    document["daemon"] = (
        f"{version.get('Version')} ({'js-ipfs' if 'ipfs-core' in version else 'kubo'})"
    )
    document["files"] = vectors
    (HERE / "cid-vectors.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
