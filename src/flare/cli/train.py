"""`flare-node train`: standalone local training, to check a set-up before joining a federation.

It runs exactly what a round's TRAIN phase runs (same policy loading, data checks, LeRobot
training step and FedProx term) and reports what an operator needs to size the round: steps
per second, peak memory, the loss curve and the held-out loss before and after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flare.cli.common import (
    HomeOption,
    JsonOption,
    emit_json,
    offline_hub,
    progress_bar,
    resolve_home,
)
from flare.cli.hexarg import parse_hex
from flare.protocol.errors import ConfigError

if TYPE_CHECKING:
    from flare.node.train.local import StepReport
    from flare.node.train.policy import LoadedPolicy


class Preset(StrEnum):
    """SmolVLA settings for a fresh policy; auto picks tiny for the tiny backbone."""

    AUTO = "auto"
    TINY = "tiny"
    SMOLVLA = "smolvla"


class Precision(StrEnum):
    """Arithmetic of the forward and backward passes (weights stay fp32)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


def train(
    dataset_root: Annotated[
        Path,
        typer.Option(
            "--dataset-root",
            envvar="FLARE_DATASET_ROOT",
            help="A LeRobot v3 dataset on disk (e.g. from `flare-node data synth`).",
        ),
    ],
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            envvar="FLARE_POLICY",
            help="SmolVLA checkpoint directory to start from (ours, or e.g. a local copy of "
            "smolvla_base). Default: a fresh policy on --backbone.",
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="tiny, smolvlm2-500m, or a SmolVLM directory. For a fresh policy (default "
            "tiny), or where a --policy checkpoint's backbone files live.",
        ),
    ] = None,
    preset: Annotated[
        Preset, typer.Option(help="Settings of a fresh policy (auto: tiny for the tiny backbone).")
    ] = Preset.AUTO,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 100,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per step.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of data order, noise and a fresh policy.")] = 0,
    mu: Annotated[float, typer.Option(min=0.0, help="FedProx strength (0 = FedAvg).")] = 0.0,
    lr: Annotated[
        float | None, typer.Option(min=0.0, help="Peak learning rate. Default: the preset's.")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N. Default: CUDA if present.")
    ] = None,
    precision: Annotated[
        Precision, typer.Option(help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.")
    ] = Precision.AUTO,
    held_out: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Fraction of each task's episodes held out (0: none)."),
    ] = 0.25,
    eval_samples: Annotated[int, typer.Option(min=1, help="Held-out frames evaluated.")] = 256,
    rename_camera: Annotated[
        list[str] | None,
        typer.Option(help="DATASET_KEY=POLICY_KEY to feed a camera under the policy's name."),
    ] = None,
    dataset_stats: Annotated[
        bool,
        typer.Option(
            "--dataset-stats",
            help="Normalize with this dataset's statistics instead of the --policy checkpoint's "
            "(as lerobot-train does; gives a new model spec: for making a base model).",
        ),
    ] = False,
    model_spec: Annotated[
        str | None,
        typer.Option(help="Expected model spec hash (0x...): refuse a policy of another spec."),
    ] = None,
    num_workers: Annotated[int, typer.Option(min=0, help="Data loader worker processes.")] = 0,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads for torch. Default: torch's choice (all cores); fewer leaves room "
            "for a robot controller or other work on the same CPU.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Save the trained checkpoint, delta.safetensors and train.json here."),
    ] = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Train SmolVLA locally on a LeRobot dataset and report speed, memory and loss."""
    offline_hub()
    import torch

    from flare.node.train.dataset import (
        DatasetSource,
        check_metadata,
        open_metadata,
        split_episodes,
    )
    from flare.node.train.evaluate import evaluate
    from flare.node.train.local import TrainOptions, train_local
    from flare.node.train.policy import check_checkpoint_target, load_policy

    if out is not None:
        check_checkpoint_target(out)  # refuse ~/data now, not after the training run
    if threads is not None:
        torch.set_num_threads(threads)
    options = TrainOptions(
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        mu=mu,
        lr=lr,
        num_workers=num_workers,
        precision=precision.value,
    )
    expected = None if model_spec is None else parse_hex(model_spec, length=32, what="--model-spec")
    source = DatasetSource(dataset_root.expanduser(), _parse_renames(rename_camera or []))
    meta = open_metadata(source)
    if policy is not None:
        loaded = load_policy(
            policy,
            device=device,
            backbone=Path(backbone).expanduser() if backbone else None,
            expected_spec=expected,
            dataset_stats=meta.stats if dataset_stats else None,
        )
    else:
        loaded = _fresh_policy(meta, backbone, preset, device, seed, resolve_home(home), expected)
    check_metadata(loaded.config, meta, source)  # before any training
    train_episodes, eval_episodes = split_episodes(meta, held_out)

    def held_out_loss() -> float | None:
        if not eval_episodes:
            return None
        if not json_output:
            typer.echo(f"Evaluating on held-out episodes {eval_episodes}...", err=True)
        return evaluate(
            loaded, source, eval_episodes, seed=seed, batch_size=batch_size,
            max_samples=eval_samples,
        ).loss  # fmt: skip

    before = held_out_loss()
    with training_progress(steps, enabled=not json_output) as on_step:
        result = train_local(loaded, source, options, episodes=train_episodes, on_step=on_step)
    after = held_out_loss()
    spec_hash = loaded.spec.hash
    delta_numel = sum(t.numel() for t in result.delta.values())
    delta_norm = sum(float(t.double().pow(2).sum()) for t in result.delta.values()) ** 0.5
    summary: dict[str, Any] = {
        "model_spec": spec_hash,
        "dataset": source.root,
        "policy": policy,
        "train": result.metrics.summary(),
        "train_episodes": train_episodes,
        "eval": {"episodes": eval_episodes, "loss_before": before, "loss_after": after},
        "delta": {"tensors": len(result.delta), "numel": delta_numel, "norm": delta_norm},
        "out": None,
    }
    if out is not None:
        summary["out"] = _save(loaded, result.delta, summary, out)
    if json_output:
        emit_json(summary)
        return
    _print_summary(summary)


def _fresh_policy(
    meta: Any,
    backbone: str | None,
    preset: Preset,
    device: str | None,
    seed: int,
    home: Path,
    expected: bytes | None,
) -> LoadedPolicy:
    """A new SmolVLA on a built-in backbone (written once under the home) or a directory."""
    from flare.node.train.backbone import TINY, resolve_backbone
    from flare.node.train.policy import check_spec, new_policy

    name = backbone or TINY
    backbone_dir = resolve_backbone(name, home / "backbones")
    chosen = preset.value if preset is not Preset.AUTO else ("tiny" if name == TINY else "smolvla")
    loaded = new_policy(backbone_dir, meta, preset=chosen, device=device, seed=seed)
    if expected is not None:
        check_spec(loaded, expected, what="the new policy")
    return loaded


@contextlib.contextmanager
def training_progress(
    total: int, *, enabled: bool, label: str = "Training"
) -> Iterator[Callable[[StepReport], None] | None]:
    """A progress bar on stderr advanced by each step report, showing the loss."""
    with progress_bar(label, total, enabled=enabled, loss=True) as advance:
        if advance is None:
            yield None
            return
        bar = advance

        def on_step(report: StepReport) -> None:
            bar(report.step, report.loss)

        yield on_step


def _save(loaded: LoadedPolicy, delta: dict[str, Any], summary: dict[str, Any], out: Path) -> Path:
    """The checkpoint, its delta and train.json, written together (all or none)."""
    import json

    from safetensors.torch import save_file

    from flare.node.train.policy import save_policy

    directory = out.expanduser().resolve()
    spec_hex = "0x" + summary["model_spec"].hex()
    record = {**summary, "model_spec": spec_hex, "out": str(directory)}
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in record.items()}

    def extra(staging: Path) -> None:
        save_file(
            {k: v.contiguous() for k, v in delta.items()},
            str(staging / "delta.safetensors"),
            metadata={"format": "flare-delta/1", "model_spec": spec_hex},
        )
        (staging / "train.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")

    return save_policy(loaded, directory, extra=extra)


def _print_summary(summary: dict[str, Any]) -> None:
    metrics = summary["train"]
    memory = metrics["peak_memory_bytes"] / 2**30
    kind = "GPU allocated" if metrics["memory_kind"] == "cuda-allocated" else "process RSS"
    typer.echo(f"Device       {metrics['device']}" + (
        f" (autocast {metrics['autocast']})" if metrics["autocast"] else ""))  # fmt: skip
    typer.echo(f"Steps        {metrics['steps']} in {metrics['seconds']:.1f} s "
               f"({metrics['steps_per_s']:.2f} steps/s, {metrics['samples']} samples)")  # fmt: skip
    typer.echo(f"Memory       {memory:.2f} GiB peak {kind}")
    typer.echo(f"Train loss   {metrics['first_loss']:.4f} -> {metrics['final_loss']:.4f}")
    evaluation = summary["eval"]
    if evaluation["loss_before"] is not None:
        typer.echo(f"Held-out     {evaluation['loss_before']:.4f} -> {evaluation['loss_after']:.4f}"
                   f" on episodes {evaluation['episodes']}")  # fmt: skip
    delta = summary["delta"]
    typer.echo(f"Delta        {delta['tensors']} tensors, {delta['numel']:,} values, "
               f"L2 norm {delta['norm']:.4g}")  # fmt: skip
    typer.echo(f"Model spec   0x{summary['model_spec'].hex()}")
    if summary["out"] is not None:
        typer.echo(f"Saved        {summary['out']}")


def _parse_renames(items: list[str]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise ConfigError(
                f"--rename-camera {item!r} is not DATASET_KEY=POLICY_KEY",
                hint="e.g. --rename-camera observation.images.top=observation.images.camera1",
            )
        renames[source] = target
    return renames
