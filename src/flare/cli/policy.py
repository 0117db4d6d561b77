"""`flare-node policy`: write, read and check review policy documents (flare-policy/1).

A deployment commits to one policy by its CID (`contract deploy --policy FILE`); seat holders
and auditors fetch it from the content store and apply it. `policy new` writes the canonical
document and prints its CID; `policy show` reads a file or fetches a CID, checks it, and prints
what it decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json
from flare.cli.store import DataDirOption, StoreOption, open_store
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from flare.protocol.policy import ReviewPolicy

app = typer.Typer(help="Write and check review policy documents.", no_args_is_help=True)

PolicyFileOption = Annotated[
    Path,
    typer.Option(
        "--policy",
        help="Review policy document (flare-policy/1, written by `flare-node policy new`).",
        dir_okay=False,
        show_default=False,
    ),
]


@app.command()
def new(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the document.", dir_okay=False)
    ] = Path("policy.json"),
    rule: Annotated[
        str,
        typer.Option(
            "--rule",
            help="Aggregation rule: fedavg, clipped-fedavg, median, trimmed-mean, multi-krum.",
        ),
    ] = "fedavg",
    clip_norm: Annotated[float, typer.Option(help="clipped-fedavg: clip L2 norm.")] = 1.0,
    trim: Annotated[int, typer.Option(help="trimmed-mean: values trimmed per side.")] = 1,
    byzantine: Annotated[int, typer.Option(help="multi-krum: tolerated bad updates f.")] = 1,
    select: Annotated[int, typer.Option(help="multi-krum: updates averaged m.")] = 1,
    norm_bound: Annotated[
        float, typer.Option(help="Updates whose L2 norm exceeds it are left out.")
    ] = 1000.0,
    sample_cap: Annotated[
        int, typer.Option(help="Most samples one update may claim (the contract's maxSamples).")
    ] = 100_000,
    server_lr: Annotated[
        float, typer.Option(help="Server learning rate: next = base + lr * aggregate.")
    ] = 1.0,
    copy_threshold: Annotated[
        float, typer.Option(help="Cosine similarity at which an update counts as a copy.")
    ] = 0.9999,
    max_loss_increase: Annotated[
        float,
        typer.Option(help="Approve a proposal whose held-out loss is at most (1 + this) x base."),
    ] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Write a canonical review policy document and print its CID."""
    from flare.node.atomic import write_file_atomically
    from flare.protocol.aggregate import Rule
    from flare.protocol.policy import ReviewPolicy

    if out.exists() and not force:
        raise ConfigError(f"{out} already exists", hint="pass another --out, or --force")
    policy = ReviewPolicy(
        rule=Rule(rule, clip_norm=clip_norm, trim=trim, byzantine=byzantine, select=select),
        norm_bound=norm_bound,
        sample_cap=sample_cap,
        server_learning_rate=server_lr,
        copy_threshold=copy_threshold,
        max_loss_increase=max_loss_increase,
    )
    write_file_atomically(out, policy.to_bytes())
    _report(policy, json_output, file=out)


@app.command()
def show(
    source: Annotated[str, typer.Argument(help="A policy file, or the CID of one in the store.")],
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check a policy (a file, or a CID fetched and verified from the store) and print it."""
    from flare.protocol.policy import MAX_POLICY_BYTES, read_policy

    path = Path(source)
    if path.is_file():
        _report(read_policy_file(path), json_output, file=path)
        return
    backend = open_store(store, data_dir, home)
    try:
        data = backend.get(source, max_bytes=MAX_POLICY_BYTES)
    finally:
        backend.close()
    _report(read_policy(data), json_output, file=None)


def read_policy_file(path: Path) -> ReviewPolicy:
    """The policy in `path`, checked; a missing file says how to make one."""
    from flare.protocol.policy import MAX_POLICY_BYTES, PolicyError, read_policy

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"no review policy at {path}", hint="write one with `flare-node policy new`"
        ) from None
    try:
        return read_policy(data)
    except PolicyError as error:
        raise PolicyError(f"{path}: {error.message}", hint=error.hint) from error


def policy_summary(policy: ReviewPolicy) -> dict[str, Any]:
    """What a policy decides, with its CID, as `--json` prints it."""
    from flare.protocol.unixfs import file_cid

    return {"cid": str(file_cid(policy.to_bytes())), **policy.document()}


def policy_text(policy: ReviewPolicy) -> str:
    """A policy in one line."""
    rule = policy.rule.name
    params = ", ".join(
        f"{k}={v}" for k, v in policy.document()["aggregation"].items() if k != "rule"
    )
    return (
        f"{rule}{f' ({params})' if params else ''}, norm bound {policy.norm_bound:g}, "
        f"sample cap {policy.sample_cap}, server lr {policy.server_learning_rate:g}, "
        f"copies at cosine >= {policy.copy_threshold:g}, approve at held-out loss <= "
        f"(1 + {policy.max_loss_increase:g}) x base"
    )


def _report(policy: ReviewPolicy, json_output: bool, *, file: Path | None) -> None:
    summary = policy_summary(policy)
    if json_output:
        emit_json({**summary, "file": file})
        return
    if file is not None:
        typer.echo(f"Policy file  {file}")
    typer.echo(f"Policy CID   {summary['cid']}")
    typer.echo(f"  {policy_text(policy)}")
