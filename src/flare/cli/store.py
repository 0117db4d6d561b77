"""`flare-node store`: add, fetch, pin and collect content by CID, embedded or on an IPFS daemon.

`--store embedded` (the default) keeps blocks under `--data-dir` (default `<home>/store`);
`--store ipfs://HOST:PORT` talks to a daemon's RPC API. Both print the CIDs Kubo prints for
`ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`, and both verify every byte read.
Other command groups open a store the same way through `open_store`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, network_limits, resolve_home
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from flare.protocol.limits import NetworkLimits
    from flare.protocol.store import BlobStore, Progress

app = typer.Typer(help="Add, fetch, pin and garbage-collect content by CID.", no_args_is_help=True)

PROGRESS_FROM = 8 << 20  # show a progress bar for transfers of 8 MiB and more

StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="FLARE_STORE",
        help="Content store: 'embedded' (blocks on disk, no daemon) or ipfs://HOST:PORT "
        "(an IPFS daemon's RPC API).",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory of the embedded store. Default: <home>/store.",
        show_default=False,
    ),
]


def open_store(
    store: str, data_dir: Path | None, home: Path | None, limits: NetworkLimits | None = None
) -> BlobStore:
    """The BlobStore that `--store`, `--data-dir` and `--home` name; a daemon's calls run
    under `limits` (the config's) with `--timeout` as the deadline."""
    if store == "embedded":
        from flare.node.store.embedded import EmbeddedStore

        return EmbeddedStore(data_dir if data_dir is not None else resolve_home(home) / "store")
    if store.startswith(("ipfs://", "http://")):  # http:// as Kubo prints its API address
        parts = urlsplit(store)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ConfigError(
                f"--store {store!r} is not ipfs://HOST:PORT (or http://HOST:PORT)",
                hint="name the daemon's RPC API, e.g. ipfs://127.0.0.1:5001",
            )
        from flare.node.store.ipfs import IpfsStore, api_multiaddr

        return IpfsStore(api_multiaddr(parts.hostname, port), limits=network_limits(limits))
    raise ConfigError(
        f"--store {store!r} is not a store",
        hint="use 'embedded' or ipfs://HOST:PORT",
    )


@contextlib.contextmanager
def _opened(store: str, data_dir: Path | None, home: Path | None) -> Iterator[BlobStore]:
    backend = open_store(store, data_dir, home)
    try:
        yield backend
    finally:
        backend.close()


@contextlib.contextmanager
def _progress(label: str, total: int, quiet: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr for large transfers; None (no bar) for small ones or --json."""
    if quiet or total < PROGRESS_FROM:
        yield None
        return
    with typer.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="File to add.", show_default=False)],
    only_hash: Annotated[
        bool, typer.Option("--only-hash", help="Print the CID without storing anything.")
    ] = False,
    pin: Annotated[
        bool, typer.Option("--pin/--no-pin", help="Keep the content through `store gc`.")
    ] = True,
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a file and print its CID (on stdout, alone, so scripts can capture it)."""
    from flare.node.store.files import read_chunks
    from flare.protocol.unixfs import FileHasher

    with contextlib.ExitStack() as stack:
        try:
            size = path.stat().st_size
            source = stack.enter_context(open(path, "rb"))
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from error
        backend = None if only_hash else stack.enter_context(_opened(store, data_dir, home))
        label = "Adding" if backend is not None else "Hashing"
        progress = stack.enter_context(_progress(label, size, json_output))
        if backend is not None:
            cid = backend.put_stream(source, pin=pin, progress=progress)
            where: str | None = backend.location
        else:
            hasher = FileHasher()
            for chunk in read_chunks(source):
                hasher.update(chunk)
                if progress is not None:
                    progress(len(chunk))
            cid, where = hasher.finish().text, None
    if json_output:
        emit_json(
            {"cid": cid, "size": size, "stored": not only_hash, "pinned": pin and not only_hash}
            | ({"store": where} if where else {})
        )
        return
    typer.echo(cid)
    if where is not None:
        state = "pinned" if pin else "not pinned: `store gc` may remove it"
        typer.echo(f"Added {path.name} ({_size_text(size)}) to {where}, {state}.", err=True)


@app.command()
def get(
    cid: Annotated[str, typer.Argument(help="CID of the content.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="Where to write it ('-' for stdout).", show_default=False
        ),
    ],
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Fetch content by CID, verifying every block, and write it to a file all or nothing."""
    from flare.node.store.files import write_file_atomically

    with _opened(store, data_dir, home) as backend:
        size = backend.size(cid)
        with (
            _progress("Fetching", size, json_output or str(output) == "-") as progress,
            contextlib.closing(backend.get_stream(cid, progress=progress)) as pieces,
        ):
            if str(output) == "-":
                for piece in pieces:
                    sys.stdout.buffer.write(piece)
                sys.stdout.buffer.flush()
                return
            written = write_file_atomically(output, pieces)
        where = backend.location
    if json_output:
        emit_json({"cid": cid, "size": written, "path": output, "store": where, "verified": True})
        return
    typer.echo(f"Wrote {_size_text(written)} of {cid} to {output} (every block verified).")


@app.command("pin")
def pin_command(
    cid: Annotated[str, typer.Argument(help="CID to keep.", show_default=False)],
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Pin content (and every block under it) so `store gc` keeps it."""
    with _opened(store, data_dir, home) as backend:
        backend.pin(cid)
    if json_output:
        emit_json({"cid": cid, "pinned": True})
        return
    typer.echo(f"Pinned {cid}.")


@app.command()
def unpin(
    cid: Annotated[str, typer.Argument(help="CID to release.", show_default=False)],
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove a pin; the blocks stay until `store gc`."""
    with _opened(store, data_dir, home) as backend:
        removed = backend.unpin(cid)
    if json_output:
        emit_json({"cid": cid, "unpinned": removed})
        return
    typer.echo(f"Unpinned {cid}." if removed else f"{cid} was not pinned; nothing to do.")


@app.command("ls")
def list_pins(
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """List pinned CIDs, one per line."""
    with _opened(store, data_dir, home) as backend:
        pins = backend.pins()
    if json_output:
        emit_json({"pins": pins})
        return
    for cid in pins:
        typer.echo(cid)
    if not pins:
        typer.echo("No pins.", err=True)


@app.command()
def gc(
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete every block that no pin reaches."""
    with _opened(store, data_dir, home) as backend:
        report = backend.gc()
    if json_output:
        emit_json({"removed_blocks": report.removed_blocks, "freed_bytes": report.freed_bytes})
        return
    freed = "" if report.freed_bytes is None else f", {_size_text(report.freed_bytes)} freed"
    typer.echo(f"Removed {report.removed_blocks} unpinned block(s){freed}.")


@app.command()
def verify(
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Read back every pinned block and report damage; exit 1 if any is found.

    On the embedded store, names each damaged block, the pack file that held it and the pins
    it breaks, and every damaged pack. On an IPFS daemon, reads each pinned file through the
    daemon (which may fetch blocks it lacks from peers; `ipfs repo verify` checks its own disk).
    """
    from dataclasses import asdict

    from flare.node.store.verify import pinned_bytes
    from flare.node.store.verify import verify as scrub
    from flare.protocol.store import REPAIR_HINT

    with (
        _opened(store, data_dir, home) as backend,
        _progress("Verifying", pinned_bytes(backend), json_output) as progress,
    ):
        report = scrub(backend, progress=progress)
    if json_output:
        emit_json(asdict(report) | {"clean": report.clean})
    else:
        blocks = "" if report.blocks_checked is None else f"{report.blocks_checked} block(s), "
        typer.echo(
            f"Read {report.pins_checked} pinned file(s) in {report.location}: "
            f"{blocks}{_size_text(report.bytes_checked)}."
        )
        for pin in report.damaged_pins:
            typer.echo(f"DAMAGED {pin.cid}")
            for block in pin.blocks:
                typer.echo(f"  block {block.cid}: {block.problem}")
        for pack in report.damaged_packs:
            pins = f"breaks {', '.join(pack.pins)}" if pack.pins else "no pinned file is affected"
            typer.echo(f"damaged pack {pack.path}: {pack.problem} ({pins})")
        if report.damaged_pins:
            typer.echo(f"To repair each damaged file: {REPAIR_HINT}.", err=True)
        if report.damaged_packs:
            typer.echo(
                "Once no pinned file is damaged, `flare-node store gc` rewrites the damaged "
                "packs' intact blocks and deletes the packs.",
                err=True,
            )
        if report.clean:
            typer.echo("Every pinned block is intact.")
    if not report.clean:
        raise typer.Exit(1)
