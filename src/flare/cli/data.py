"""`flare-node data`: write and inspect the LeRobot datasets a node trains on."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flare.cli.common import JsonOption, emit_json, offline_hub, progress_bar

if TYPE_CHECKING:
    from flare.node.train.synth import SynthOptions, SynthSummary

app = typer.Typer(help="Write and inspect LeRobot datasets.", no_args_is_help=True)


class SkewKind(StrEnum):
    """How one node's share of a synthetic federation differs from the others'."""

    NONE = "none"
    TASKS = "tasks"
    REGION = "region"


def record_synth(out: Path, options: SynthOptions, *, label: str, enabled: bool) -> SynthSummary:
    """Write a synthetic dataset with a progress bar of the episodes recorded."""
    import datasets

    from flare.node.train.synth import write_synth_dataset

    datasets.disable_progress_bars()  # again each time: LeRobot turns them back on after use
    with progress_bar(label, options.episodes, enabled=enabled) as advance:
        on_episode = None if advance is None else (lambda done: advance(done + 1, None))
        return write_synth_dataset(out, options, on_episode=on_episode)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to create (must not exist or be empty).")],
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to record.")] = 12,
    frames: Annotated[int, typer.Option(min=2, help="Frames per episode (30 fps).")] = 60,
    cameras: Annotated[int, typer.Option(min=1, max=2, help="1 (top) or 2 (top, wrist).")] = 1,
    size: Annotated[int, typer.Option(min=16, help="Image height and width in pixels.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed (combined with the node index).")] = 0,
    skew: Annotated[
        SkewKind,
        typer.Option(help="Non-IID split: none, tasks (a task subset) or region (a table stripe)."),
    ] = SkewKind.NONE,
    node_index: Annotated[int, typer.Option(min=0, help="This node's index in the split.")] = 0,
    num_nodes: Annotated[int, typer.Option(min=1, help="Nodes the world is split between.")] = 1,
    videos: Annotated[
        bool, typer.Option("--videos/--images", help="Store cameras as AV1 video or PNG frames.")
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Write a synthetic SO-100 dataset (6 joints, 1-2 cameras, a task per frame, 30 fps).

    Actions follow a learnable rule of state, task and image, so a policy's loss falls quickly;
    --skew with --node-index/--num-nodes gives each node of a federation different data.
    """
    offline_hub()
    from flare.node.train.synth import SynthOptions

    options = SynthOptions(
        episodes=episodes,
        frames=frames,
        cameras=cameras,
        height=size,
        width=size,
        seed=seed,
        skew=skew.value,
        node_index=node_index,
        num_nodes=num_nodes,
        use_videos=videos,
    )
    summary = record_synth(out, options, label="Recording episodes", enabled=not json_output)
    if json_output:
        emit_json(
            {
                "root": summary.root,
                "episodes": summary.episodes,
                "frames": summary.frames,
                "fps": 30,
                "tasks": list(summary.tasks),
                "cameras": list(summary.cameras),
                "u_range": list(summary.u_range),
            }
        )
        return
    typer.echo(f"Dataset   {summary.root}")
    typer.echo(f"Episodes  {summary.episodes} ({summary.frames} frames at 30 fps)")
    typer.echo(f"Cameras   {', '.join(summary.cameras)}")
    typer.echo(f"Tasks     {'; '.join(summary.tasks)}")
    low, high = summary.u_range
    typer.echo(f"Table     cubes in u = {low:.2f}..{high:.2f}")
