"""Training speed of `flare-node train` next to `lerobot-train`, same policy, data and settings.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train.py [--backbone tiny] [--repeats 2] [--json]

Both commands start from the same saved SmolVLA checkpoint on the same synthetic SO-100 dataset,
with the same batch size, seed, optimizer preset, data loading (no workers, pyav) and
precision. Each command runs as a subprocess, at --short and at --long steps; the difference
of the two wall times cancels start-up, dataset loading and checkpoint loading, so

    steps/s = (long - short) / (t_long - t_short)

is the steady-state rate an operator gets per round. Runs are interleaved (flare, lerobot,
flare, lerobot, ...) so both see the same machine load, and the median over --repeats is
reported. Figures are printed, never asserted; the target is flare / lerobot >= 0.95.

On a GPU host, `--precision fp32` compares like with like (lerobot-train runs SmolVLA in fp32:
its config has no bf16 setting); `--precision bf16` shows what flare-node's default bf16
autocast buys. Full size: `--backbone smolvlm2-500m --batch-size 8 --short 5 --long 25`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(workdir: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The dataset and the starting checkpoint both commands train from."""
    from flare.node.train.backbone import resolve_backbone
    from flare.node.train.dataset import DatasetSource, open_metadata
    from flare.node.train.policy import new_policy, save_policy
    from flare.node.train.synth import SynthOptions, write_synth_dataset

    data = workdir / "data"
    options = SynthOptions(
        episodes=args.episodes, frames=args.frames, cameras=args.cameras,
        height=args.size, width=args.size,
    )  # fmt: skip
    write_synth_dataset(data, options)
    backbone = resolve_backbone(args.backbone, workdir / "backbones")
    preset = "tiny" if args.backbone == "tiny" else "smolvla"
    loaded = new_policy(backbone, open_metadata(DatasetSource(data)), preset=preset, device="cpu")
    checkpoint = save_policy(loaded, workdir / "start")
    return data, checkpoint


def flare_command(data: Path, checkpoint: Path, steps: int, args: argparse.Namespace) -> list[str]:
    return [
        str(BIN / "flare-node"), "train", "--dataset-root", str(data), "--policy", str(checkpoint),
        "--steps", str(steps), "--batch-size", str(args.batch_size), "--seed", "0",
        "--held-out", "0", "--device", args.device, "--precision", args.precision, "--json",
    ]  # fmt: skip


def lerobot_command(
    data: Path, checkpoint: Path, steps: int, args: argparse.Namespace, out: Path
) -> list[str]:
    command = [
        str(BIN / "lerobot-train"), "--dataset.repo_id=local/bench", f"--dataset.root={data}",
        "--dataset.video_backend=pyav", f"--policy.path={checkpoint}",
        f"--policy.device={args.device}", "--policy.push_to_hub=false",
        f"--batch_size={args.batch_size}", f"--steps={steps}", "--num_workers=0", "--seed=0",
        "--save_checkpoint=false", "--wandb.enable=false", f"--log_freq={max(steps, 1)}",
        f"--output_dir={out}",
    ]  # fmt: skip
    if args.precision == "bf16":
        command.append("--policy.use_amp=true")  # the nearest lerobot-train has (fp16 on CUDA)
    return command


def timed(command: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        log(done.stderr[-4000:])
        raise SystemExit(f"{Path(command[0]).name} failed with exit code {done.returncode}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tiny", help="tiny or smolvlm2-500m")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--short", type=int, default=10, help="steps of the short runs")
    parser.add_argument("--long", type=int, default=60, help="steps of the long runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="camera image size in pixels")
    parser.add_argument("--device", default="cuda" if _has_cuda() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for both commands (1 is steadier on a busy CPU)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="kept if given")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by both commands

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flare-bench-train-"))
    try:
        log(f"preparing {args.backbone} policy and dataset in {workdir}")
        data, checkpoint = prepare(workdir, args)
        rates: dict[str, list[float]] = {"flare": [], "lerobot": []}
        inner: list[float] = []
        for repeat in range(args.repeats):
            for tool in ("flare", "lerobot"):
                seconds = {}
                for steps in (args.short, args.long):
                    out = workdir / f"lerobot-{repeat}-{steps}"
                    if tool == "flare":
                        seconds[steps], stdout = timed(flare_command(data, checkpoint, steps, args))
                        if steps == args.long:
                            inner.append(json.loads(stdout)["train"]["steps_per_s"])
                    else:
                        command = lerobot_command(data, checkpoint, steps, args, out)
                        seconds[steps], _ = timed(command)
                        shutil.rmtree(out, ignore_errors=True)
                rate = (args.long - args.short) / (seconds[args.long] - seconds[args.short])
                rates[tool].append(rate)
                log(f"repeat {repeat + 1}: {tool:8s} {rate:7.3f} steps/s "
                    f"({args.short} steps {seconds[args.short]:.1f} s, "
                    f"{args.long} steps {seconds[args.long]:.1f} s)")  # fmt: skip
        report = _report(args, rates, inner)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    print(f"training speed, {args.backbone} SmolVLA, batch {args.batch_size}, {args.device} "
          f"{args.precision}, {args.cameras} camera(s) {args.size}px")  # fmt: skip
    print(f"  flare-node train   {report['flare_steps_per_s']:8.3f} steps/s (median)")
    print(f"  lerobot-train      {report['lerobot_steps_per_s']:8.3f} steps/s (median)")
    print(f"  ratio flare/lerobot {report['ratio']:7.3f}   (target >= 0.95)")
    print(f"  flare-node's own loop timer: {report['flare_loop_steps_per_s']:.3f} steps/s")


def _report(
    args: argparse.Namespace, rates: dict[str, list[float]], inner: list[float]
) -> dict[str, Any]:
    flare, lerobot = statistics.median(rates["flare"]), statistics.median(rates["lerobot"])
    return {
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "steps": [args.short, args.long],
        "repeats": args.repeats,
        "flare_steps_per_s": flare,
        "lerobot_steps_per_s": lerobot,
        "ratio": flare / lerobot,
        "flare_runs": rates["flare"],
        "lerobot_runs": rates["lerobot"],
        "flare_loop_steps_per_s": statistics.median(inner),
        "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


if __name__ == "__main__":
    main()
