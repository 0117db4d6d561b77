"""`flare-node model`: the genesis model a deployment starts from, and what a stored model holds.

A deployment commits to two values about its model: the model spec hash (the frozen backbone,
the normalization statistics and the layout of the trainable parameters) and the CID of the
genesis model (the trainable weights round 1 trains from). `model genesis` computes both from
the base checkpoint every node will load as its `[model] policy`, pins the genesis model in the
content store and prints what `flare-node contract deploy` takes. `model info` reads the
metadata of a model (or an update bundle) in the store without the policy.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import HomeOption, JsonOption, emit_json, offline_hub, resolve_home
from flare.cli.store import DataDirOption, StoreOption, open_store
from flare.protocol.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from flare.node.train.policy import LoadedPolicy
    from flare.protocol.modelspec import ModelSpec

app = typer.Typer(
    help="Make the genesis model of a deployment, and inspect models in the store.",
    no_args_is_help=True,
)

# Built-in fresh policies: preset name -> (backbone, SmolVLA settings). Both build a policy
# with a random frozen VLM: fine for trying a federation out, not for a useful robot policy.
PRESETS: dict[str, tuple[str, str]] = {
    "tiny": ("tiny", "tiny"),
    "smolvlm2-500m": ("smolvlm2-500m", "smolvla"),
}
MAX_HEADER = 16 << 20  # a model header larger than this is not one flare-node wrote


class NotAModelError(IntegrityError):
    """Content that is not a flare tensor file (a global model or an update bundle)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint
            or "check the CID (the deployment's genesis model, or a global model "
            "from `flare-node contract info`); `flare-node store get CID -o FILE` fetches any "
            "content as it is",
        )


def _is_preset(policy: str) -> bool:
    # A preset is named by its bare name; a directory that happens to share it is `./tiny`.
    return policy in PRESETS


@app.command()
def genesis(
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="The deployment's base SmolVLA checkpoint directory (from `flare-node train "
            "--out`, lerobot-train's pretrained_model/, or a local copy of smolvla_base), or a "
            f"preset for a fresh policy: {', '.join(PRESETS)} (needs --dataset and --out; "
            "a directory of that name is ./NAME).",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="A LeRobot v3 dataset: a preset takes its features and normalization "
            "statistics from it; a checkpoint is checked to fit it.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Save the base checkpoint here, self-contained (backbone files bundled): "
            "the model.policy of every node's node.toml. Required with a preset.",
            show_default=False,
        ),
    ] = None,
    backbone: Annotated[
        Path | None,
        typer.Option(
            "--backbone",
            help="Backbone directory of a checkpoint that does not bundle one. "
            "Default: <policy>/backbone, then the path the checkpoint records.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of a preset's initial weights.")] = 0,
    spec_out: Annotated[
        Path | None,
        typer.Option(
            "--spec-out",
            help="Also write the model spec (JSON; its keccak256 is the spec hash) for "
            "auditors and for training.twin_spec in node.toml.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing checkpoint at --out.")
    ] = False,
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write the round-0 model of a base checkpoint, pin it, print its CID and model spec hash.

    Both go to `flare-node contract deploy --genesis-model CID --model-spec-hash 0x...`.
    Every node of the deployment loads the checkpoint (--policy, or --out) as its base policy.
    """
    offline_hub()
    if _is_preset(policy):
        if dataset is None or out is None:
            raise ConfigError(
                f"a fresh {policy} policy needs --dataset (its features and normalization "
                "statistics) and --out (where its checkpoint goes)",
                hint="e.g. `flare-node data synth reference` then "
                f"--policy {policy} --dataset reference --out base-model",
            )
    elif not Path(policy).expanduser().is_dir():
        raise ConfigError(
            f"--policy {policy!r} is neither a checkpoint directory nor a preset",
            hint=f"pass a SmolVLA checkpoint directory, or one of {', '.join(PRESETS)}",
        )
    if out is not None:
        _check_out(out.expanduser(), force=force)

    # A malformed --store fails here, before a policy takes seconds to load.
    backend = open_store(store, data_dir, home)
    try:
        loaded, source = _base_policy(policy, dataset, out, backbone, seed, resolve_home(home))
        from flare.node.federation import genesis_model

        data = genesis_model(loaded)
        spec = loaded.spec
        cid = backend.put(data)
        where = backend.location
    finally:
        backend.close()
    if spec_out is not None:
        from flare.node.atomic import write_file_atomically

        write_file_atomically(spec_out.expanduser(), spec.canonical_json())
    checkpoint = out.expanduser().resolve() if out is not None else Path(policy).resolve()
    summary: dict[str, Any] = {
        "cid": cid,
        "model_spec": spec.hash,
        "round": 0,
        "bytes": len(data),
        "tensors": len(spec.params),
        "parameters": spec.numel,
        "dtypes": sorted({p.dtype for p in spec.params}),
        "backbone": spec.backbone,
        "store": where,
        "pinned": True,
        "policy": checkpoint,
        "preset": policy if _is_preset(policy) else None,
        "source": source,
        "dataset": dataset.expanduser().resolve() if dataset is not None else None,
        "spec_file": spec_out.expanduser().resolve() if spec_out is not None else None,
    }
    if json_output:
        emit_json(summary)
        return
    _print_genesis(summary)


def _check_out(out: Path, *, force: bool) -> None:
    """Refuse, before building anything, an --out that is not new (or a checkpoint, with --force).

    Every node loads the base checkpoint, its frozen weights included: replacing one a
    deployment was made from changes the model spec and locks every node out.
    """
    from flare.node.train.policy import check_checkpoint_target

    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ConfigError(
            f"--out {out} already exists",
            hint="name a new directory; --force replaces a checkpoint (never another directory)",
        )
    check_checkpoint_target(out)


def _base_policy(
    policy: str,
    dataset: Path | None,
    out: Path | None,
    backbone: Path | None,
    seed: int,
    home: Path,
) -> tuple[LoadedPolicy, str]:
    """The base policy as every node will load it, and where it came from.

    A fresh preset, or a checkpoint copied to --out, is saved first and loaded back from
    there: the genesis model is made from exactly the files the nodes get.
    """
    from flare.node.train.dataset import DatasetSource, check_metadata, open_metadata
    from flare.node.train.policy import load_policy, new_policy, save_policy

    source = DatasetSource(dataset.expanduser()) if dataset is not None else None
    meta = open_metadata(source) if source is not None else None
    if _is_preset(policy):
        from flare.node.train.backbone import resolve_backbone

        if meta is None or out is None:  # the caller checked; kept for type narrowing
            raise ConfigError(f"a fresh {policy} policy needs --dataset and --out")
        backbone_name, preset = PRESETS[policy]
        backbone_dir = resolve_backbone(backbone_name, home / "backbones")
        fresh = new_policy(backbone_dir, meta, preset=preset, device="cpu", seed=seed)
        save_policy(fresh, out.expanduser())
        loaded = load_policy(out.expanduser(), device="cpu")
        _same_spec(fresh.spec, loaded.spec, out)
        return loaded, f"a fresh {policy} policy, seed {seed}"
    directory = Path(policy).expanduser()
    loaded = load_policy(directory, device="cpu", backbone=backbone)
    _check_manifest(directory, loaded.spec)
    if meta is not None and source is not None:
        check_metadata(loaded.config, meta, source)
    if out is None:
        return loaded, "the checkpoint as given"
    save_policy(loaded, out.expanduser())
    copy = load_policy(out.expanduser(), device="cpu")
    _same_spec(loaded.spec, copy.spec, out)
    return copy, f"a copy of {directory.resolve()}"


def _same_spec(expected: ModelSpec, actual: ModelSpec, out: Path) -> None:
    if actual.hash != expected.hash:
        raise IntegrityError(
            f"the checkpoint saved at {out} loads with model spec 0x{actual.hash.hex()}, "
            f"not 0x{expected.hash.hex()}",
            hint="nothing was deployed; report this as a bug with both hashes",
        )


def _check_manifest(directory: Path, spec: ModelSpec) -> None:
    """Warn when a flare checkpoint loads with another spec than the one it was saved with.

    That happens when --backbone points elsewhere than the files the checkpoint bundles: nodes
    loading the checkpoint as is would compute the other spec and be refused.
    """
    from flare.node.train.policy import MANIFEST, is_checkpoint

    if not is_checkpoint(directory):
        return
    recorded = json.loads((directory / MANIFEST).read_text()).get("model_spec")
    if recorded != "0x" + spec.hash.hex():
        typer.echo(
            f"Warning: {directory / MANIFEST} records model spec {recorded}; loaded here it is "
            f"0x{spec.hash.hex()}. Nodes must load the checkpoint exactly as done here "
            "(same [model] backbone), or pass --out to bundle this backbone with it.",
            err=True,
        )


def _print_genesis(summary: dict[str, Any]) -> None:
    echo = typer.echo
    kib = summary["bytes"] / 1024
    echo(f"Genesis model  {summary['cid']}")
    echo(f"Model spec     0x{summary['model_spec'].hex()}")
    echo(f"Parameters     {summary['parameters']:,} trainable in {summary['tensors']} tensors "
         f"({', '.join(summary['dtypes'])}), {kib:,.0f} KiB")  # fmt: skip
    echo(f"Pinned in      {summary['store']}")
    echo(f"Base policy    {summary['policy']}: {summary['source']}")
    if summary["spec_file"] is not None:
        echo(f"Spec file      {summary['spec_file']}")
    echo("")
    echo("Deploy with:")
    echo(f"  flare-node contract deploy --model-spec-hash 0x{summary['model_spec'].hex()} \\")
    echo(f"    --genesis-model {summary['cid']} --policy policy.json ...")
    echo(f"Hand {summary['policy']} to every node operator: it is their [model] policy.")


@app.command()
def info(
    cid: Annotated[str, typer.Argument(help="CID of a global model.", show_default=False)],
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="A model spec file (`model genesis --spec-out`): read every weight and check "
            "the model against it.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="A base checkpoint directory: check the model against its spec (loads the "
            "policy: seconds).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    store: StoreOption = "embedded",
    data_dir: DataDirOption = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show what a model in the store says about itself: round, parent, updates root, spec.

    Reads only the model's header unless --spec or --policy is given; then every weight is
    fetched, verified and checked against that spec. Update bundles are shown too.
    """
    from flare.protocol.cid import Cid

    if spec is not None and policy is not None:
        raise ConfigError("pass --spec or --policy, not both")
    text = Cid.parse(cid).text  # refuse a malformed CID before opening anything
    expected = None
    if spec is not None:
        from flare.protocol.modelspec import ModelSpec

        try:
            expected = ModelSpec.from_json(spec.expanduser().read_bytes())
        except OSError as error:
            raise ConfigError(f"cannot read the model spec {spec}: {error.strerror}") from error
    elif policy is not None:
        offline_hub()
        from flare.node.train.policy import load_policy

        expected = load_policy(policy, device="cpu").spec

    backend = open_store(store, data_dir, home)
    try:
        size = backend.size(text)
        with contextlib.closing(backend.get_stream(text)) as pieces:
            metadata, tensors = _read_header(pieces, text)
        report: dict[str, Any] = {
            "cid": text,
            "bytes": size,
            "store": backend.location,
            "format": metadata.get("format"),
            "metadata": metadata,
            "tensors": len(tensors),
            "parameters": sum(_numel(entry) for entry in tensors.values()),
            "dtypes": sorted({_dtype(entry) for entry in tensors.values()}),
            "checked": None,
        }
        if expected is not None:
            report["checked"] = _check_model(backend.get(text), expected)
    finally:
        backend.close()
    if json_output:
        emit_json(report)
        return
    _print_info(report)


def _read_header(pieces: Iterator[bytes], cid: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The safetensors header of a tensor file, reading only as many blocks as it spans."""
    buffer = bytearray()
    need = 8
    for piece in pieces:
        buffer += piece
        if need == 8 and len(buffer) >= 8:
            (length,) = struct.unpack_from("<Q", buffer)
            if length > MAX_HEADER:
                raise NotAModelError(f"{cid} is not a flare model: its first bytes are no header")
            need = 8 + length
        if len(buffer) >= need > 8:
            break
    if need == 8 or len(buffer) < need:
        raise NotAModelError(f"{cid} is not a flare model: it ends before its header does")
    try:
        header = json.loads(bytes(buffer[8:need]).decode("ascii"))
    except (UnicodeDecodeError, ValueError) as error:
        raise NotAModelError(f"{cid} is not a flare model: its header is not JSON") from error
    metadata = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not str(metadata.get("format", "")).startswith("flare-"):
        raise NotAModelError(f"{cid} is not a flare model: no flare format in its metadata")
    tensors = {k: v for k, v in header.items() if isinstance(v, dict)}
    return {str(k): str(v) for k, v in metadata.items()}, tensors


def _dtype(entry: dict[str, Any]) -> str:
    """The dtype as model specs name it (safetensors writes F32, BF16, F16)."""
    from flare.protocol.tensorfile import ST_DTYPE

    names = {code: name for name, code in ST_DTYPE.items()}
    return names.get(str(entry.get("dtype")), str(entry.get("dtype")))


def _numel(entry: dict[str, Any]) -> int:
    count = 1
    for dim in entry.get("shape", []):
        count *= int(dim)
    return count


def _check_model(data: bytes, spec: ModelSpec) -> dict[str, Any]:
    """Every check a node makes before using the model; its weights' L2 norm."""
    import numpy as np

    from flare.protocol.model import read_model

    model = read_model(data, spec)
    norm = float(np.sqrt(sum(float(np.square(w, dtype=np.float64).sum())
                             for w in model.weights.values())))  # fmt: skip
    return {"model_spec": spec.hash, "valid": True, "norm": norm}


def _print_info(report: dict[str, Any]) -> None:
    echo = typer.echo
    meta = report["metadata"]
    echo(f"CID            {report['cid']}")
    echo(f"Format         {report['format']}")
    if report["format"] == "flare-model/1":
        genesis = meta.get("round") == "0"
        echo(f"Round          {meta.get('round')}" + (" (genesis)" if genesis else ""))
        echo(f"Parent         {meta.get('parent') or '(none)'}")
        echo(f"Updates root   {meta.get('updates_root')}")
        echo(f"Model spec     {meta.get('model_spec')}")
    else:
        for key in sorted(k for k in meta if k != "format"):
            echo(f"{key:<14} {meta[key]}")
    echo(f"Tensors        {report['tensors']} ({', '.join(report['dtypes'])}), "
         f"{report['parameters']:,} values, {report['bytes']:,} bytes")  # fmt: skip
    echo(f"Store          {report['store']}")
    checked = report["checked"]
    if checked is None:
        echo("Weights        not read (pass --spec or --policy to check them)")
    else:
        echo(f"Weights        valid for spec 0x{checked['model_spec'].hex()}, "
             f"L2 norm {checked['norm']:.6g}")  # fmt: skip
