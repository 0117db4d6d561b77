"""Update compression on full-size SmolVLA's trainable tensors, next to PyTorch's own PowerSGD.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/compression.py [--rank 4] [--repeat 3] [--json]

The shapes are those of a full-size SmolVLA (SmolVLM2-500M architecture, random weights, built
offline by flare.node.train): 99,880,992 trainable parameters in 155 tensors. The deltas come
from real optimizer steps: a few rounds of LeRobot training steps on that full-size policy
(random frozen features, CPU batch 1) and on the tiny policy, on a synthetic SO-100 dataset.

Figures, each measured in this run:
- bundle bytes (canonical flare-update/1 file) against the dense float32 delta: the ratio;
- relative reconstruction error |approx - M| / |M| per round (M = delta + carried residual),
  the same for torch's powerSGD_hook on the same M, and the cumulative gap of error feedback
  |sum sent - sum deltas| / |sum deltas|;
- seconds to compress and decompress, next to torch's powerSGD_hook (world size 1, warm start,
  error feedback) on the same 155 matrices: ratio = ours / torch, lower is better;
- the cost of bfloat16 and float16 factors (bytes, error, seconds).
Printed, never asserted. Compare ratios across runs, not seconds across machines.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as torch_powersgd

from flare.node.compress import (
    CompressorState,
    PowerSGDConfig,
    bundle_bytes,
    compress,
    decompress,
)
from flare.node.delta import spec_from_parameters
from flare.protocol.bundle import read_bundle
from flare.protocol.modelspec import DTYPES, ModelSpec

Delta = dict[str, torch.Tensor]
NODE = "0x" + "11" * 20
BASE = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trained_deltas(
    workdir: Path, backbone: str, rounds: int, steps: int
) -> tuple[ModelSpec, list[Delta]]:
    """Build a SmolVLA on a built-in backbone and train it `rounds` x `steps` steps."""
    from flare.node.train.backbone import write_backbone
    from flare.node.train.dataset import DatasetSource, open_metadata
    from flare.node.train.local import TrainOptions, train_local
    from flare.node.train.policy import new_policy
    from flare.node.train.synth import SynthOptions, write_synth_dataset

    data = workdir / "data"
    if not data.exists():
        write_synth_dataset(data, SynthOptions(episodes=3, frames=20, use_videos=False))
    source = DatasetSource(data)
    preset = "tiny" if backbone == "tiny" else "smolvla"
    loaded = new_policy(
        write_backbone(backbone, workdir / backbone), open_metadata(source), preset=preset
    )
    spec = spec_from_parameters(loaded.policy.named_parameters())
    deltas = []
    for r in range(rounds):
        began = time.perf_counter()
        options = TrainOptions(steps=steps, batch_size=1 if backbone != "tiny" else 8, seed=r)
        deltas.append(train_local(loaded, source, options).delta)
        seconds = time.perf_counter() - began
        log(f"  {backbone}: round {r + 1}/{rounds}, {steps} steps in {seconds:.1f} s")
    del loaded
    gc.collect()
    return spec, deltas


def cached_deltas(
    cache: Path | None, workdir: Path, backbone: str, rounds: int, steps: int
) -> tuple[ModelSpec, list[Delta]]:
    """`trained_deltas`, kept under `cache` (safetensors + spec JSON) to re-run the figures
    without re-training; a cache made with other rounds or steps is not reused."""
    if cache is None:
        return trained_deltas(workdir, backbone, rounds, steps)
    folder = cache / f"{backbone}-{rounds}x{steps}"
    if (folder / "spec.json").is_file():
        spec = ModelSpec.from_json((folder / "spec.json").read_bytes())
        deltas = [load_file(folder / f"round-{r}.safetensors") for r in range(rounds)]
        log(f"  {backbone}: {rounds} cached deltas from {folder}")
        return spec, [{p.name: d[p.name] for p in spec.params} for d in deltas]
    spec, deltas = trained_deltas(workdir, backbone, rounds, steps)
    folder.mkdir(parents=True, exist_ok=True)
    for r, delta in enumerate(deltas):
        save_file({k: v.contiguous() for k, v in delta.items()}, folder / f"round-{r}.safetensors")
    (folder / "spec.json").write_bytes(spec.canonical_json())
    return spec, deltas


def norm(tensors: Mapping[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors.values()))


def gap(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    return norm({k: a[k].double() - b[k].double() for k in a}) / norm(b)


def ours_rounds(spec: ModelSpec, deltas: list[Delta], config: PowerSGDConfig) -> dict[str, Any]:
    """Compress consecutive rounds with error feedback; errors per round and cumulative."""
    state: CompressorState | None = None
    errors, sent_sum, delta_sum = [], {}, {}
    for i, delta in enumerate(deltas):
        carried = {
            k: v + state.residual[k] if state and k in state.residual else v
            for k, v in delta.items()
        }
        compressed, state = compress(delta, spec, config, state, seed=b"round-%d" % i)
        approx = decompress(compressed, spec)
        errors.append(gap(approx, carried))
        for k in delta:
            sent_sum[k] = sent_sum.get(k, 0) + approx[k].double()
            delta_sum[k] = delta_sum.get(k, 0) + delta[k].double()
    return {"relative_error_per_round": errors, "cumulative_gap": gap(sent_sum, delta_sum)}


class Bucket:
    """The four methods powerSGD_hook calls on a DDP GradBucket, over one flat buffer."""

    def __init__(self, delta: Delta) -> None:
        self.source = torch.cat([t.reshape(-1) for t in delta.values()])
        self.flat = self.source.clone()
        self.views, offset = [], 0
        for t in delta.values():
            self.views.append(self.flat[offset : offset + t.numel()].view(t.shape))
            offset += t.numel()

    def reset(self) -> None:
        self.flat.copy_(self.source)

    def buffer(self) -> torch.Tensor:
        return self.flat

    def gradients(self) -> list[torch.Tensor]:
        return self.views

    def index(self) -> int:
        return 0

    def is_last(self) -> bool:
        return True


def seconds(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


class Ours:
    """Our compressor kept warm across calls, as a node is from round to round."""

    def __init__(self, spec: ModelSpec, delta: Delta, config: PowerSGDConfig) -> None:
        self.spec, self.delta, self.config = spec, delta, config
        self.compressed, self.state = compress(delta, spec, config, None, seed=b"warm")
        self.out: dict[str, torch.Tensor] | None = None

    def compress(self) -> None:
        self.compressed, self.state = compress(
            self.delta, self.spec, self.config, self.state, seed=b"t"
        )

    def decompress(self) -> None:
        # like the hook writing into the gradient bucket: into memory held across calls
        if self.out is None:
            self.out = {name: torch.empty_like(t) for name, t in self.delta.items()}
        decompress(self.compressed, self.spec, out=self.out)


def timings(spec: ModelSpec, delta: Delta, rank: int, repeat: int) -> dict[str, Any]:
    """Warm-started seconds, ours and torch's hook, on the same matrices.

    Each repetition runs every contender back to back, in alternating order, so load from other
    processes hits all of them alike; a ratio is the median of the per-repetition ratios.
    """
    ours = {d: Ours(spec, delta, PowerSGDConfig(rank=rank, factor_dtype=d)) for d in DTYPES}
    bucket = Bucket(delta)
    hook_state = torch_powersgd.PowerSGDState(
        process_group=None, matrix_approximation_rank=rank, start_powerSGD_iter=2,
        min_compression_rate=2, use_error_feedback=True, warm_start=True,
    )  # fmt: skip
    hook_state.iter = 2  # skip the hook's vanilla-allreduce warm-up iterations
    bucket.reset()
    torch_powersgd.powerSGD_hook(hook_state, bucket).wait()  # allocates its P, Q and error
    matrices = [
        t.reshape(1, t.shape[0], -1)
        for t in delta.values()
        if t.dim() >= 2 and torch_powersgd._should_compress(t.shape[0], t[0].numel(), rank, 2)[0]
    ]
    # torch's decompress step on its own: bmm(P, Qᵀ, out=matrix) per compressed matrix
    factors = [
        (torch.randn(1, m.shape[1], rank), torch.randn(1, m.shape[2], rank)) for m in matrices
    ]
    out = [torch.empty_like(m) for m in matrices]

    def torch_decompress() -> None:
        for (p, q), o in zip(factors, out, strict=True):
            torch.bmm(p, q.transpose(1, 2), out=o)

    ours["float32"].decompress()  # allocates the memory it decompresses into

    def hook() -> None:
        torch_powersgd.powerSGD_hook(hook_state, bucket).wait()

    jobs: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        *((f"compress_{d}", o.compress, lambda: None) for d, o in ours.items()),
        ("decompress", ours["float32"].decompress, lambda: None),
        ("torch_hook", hook, bucket.reset),
        ("torch_decompress", torch_decompress, lambda: None),
    ]
    rows = []
    for i in range(repeat):
        row = {}
        for key, run, prepare in jobs if i % 2 == 0 else jobs[::-1]:  # alternate who goes first
            prepare()
            row[key] = seconds(run)
        rows.append(row)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def ratio(num: Callable[[dict[str, float]], float], den: str) -> float:
        return statistics.median(num(r) / r[den] for r in rows)

    return {
        "repetitions": rows,
        "ours_compress_float32_s": median("compress_float32"),
        "ours_compress_bfloat16_s": median("compress_bfloat16"),
        "ours_compress_float16_s": median("compress_float16"),
        "ours_decompress_s": median("decompress"),
        "torch_hook_s": median("torch_hook"),
        "torch_decompress_s": median("torch_decompress"),
        "ratio_compress_vs_torch_hook": ratio(lambda r: r["compress_float32"], "torch_hook"),
        "ratio_compress_plus_decompress_vs_torch_hook": ratio(
            lambda r: r["compress_float32"] + r["decompress"], "torch_hook"
        ),
        "ratio_decompress_vs_torch_decompress": ratio(
            lambda r: r["decompress"], "torch_decompress"
        ),
        "ratio_bfloat16_vs_float32_compress": ratio(
            lambda r: r["compress_bfloat16"], "compress_float32"
        ),
        "ratio_float16_vs_float32_compress": ratio(
            lambda r: r["compress_float16"], "compress_float32"
        ),
        "tensors_factored_ours": len([p for p in spec.params if p.factored(rank)]),
        "tensors_compressed_by_torch": len(matrices),
    }


def sizes(spec: ModelSpec, delta: Delta, rank: int) -> dict[str, Any]:
    """Bundle bytes and bundle handling seconds for each factor dtype."""
    dense = spec.numel * 4
    result: dict[str, Any] = {"dense_fp32_bytes": dense}
    for dtype in DTYPES:
        config = PowerSGDConfig(rank=rank, factor_dtype=dtype)
        compressed, _ = compress(delta, spec, config, None, seed=b"size")
        began = time.perf_counter()
        data = bundle_bytes(
            compressed, spec, round_number=1, node=NODE, base_model=BASE, num_samples=1
        )
        write_s = time.perf_counter() - began
        read_s = statistics.median(
            seconds(lambda data=data: read_bundle(data, spec)) for _ in range(3)
        )
        lazy = read_bundle(data, spec).delta()

        def committee_pass(lazy: Mapping[str, Any] = lazy) -> None:
            for name in spec.names:  # what a committee member does: one tensor at a time
                lazy[name]

        committee_s = statistics.median(seconds(committee_pass) for _ in range(3))
        squares = sum(
            float(((torch.from_numpy(lazy[n]) - delta[n].double()) ** 2).sum()) for n in spec.names
        )
        result[dtype] = {
            "bundle_bytes": len(data),
            "ratio_dense_over_bundle": dense / len(data),
            "relative_error": math.sqrt(squares) / norm(delta),
            "write_bundle_s": write_s,
            "read_bundle_s": read_s,
            "committee_decompress_float64_s": committee_s,
        }
    return result


def rank_sweep(spec: ModelSpec, delta: Delta, ranks: tuple[int, ...]) -> dict[str, Any]:
    """Size ratio and one-round relative error at other ranks (float32 factors, 1 iteration)."""
    result = {}
    for rank in ranks:
        compressed, _ = compress(delta, spec, PowerSGDConfig(rank=rank), None, seed=b"sweep")
        result[str(rank)] = {
            "ratio_dense_over_tensors": spec.numel * 4 / spec.wire_bytes(rank),
            "relative_error": gap(decompress(compressed, spec), delta),
        }
    return result


def print_report(report: dict[str, Any]) -> None:
    """The human-readable summary of the JSON report."""
    model, timing = report["model"], report["timing"]
    print(f"{model['parameters']:,} trainable parameters in {model['tensors']} tensors")
    print(f"  ({model['source']}); rank {report['rank']}")
    print("bundle size against the dense float32 delta (round 1 delta):")
    for dtype in ("float32", "bfloat16", "float16"):
        s = report["sizes"][dtype]
        smaller, error = s["ratio_dense_over_bundle"], s["relative_error"]
        print(
            f"  {dtype:8} factors: {s['bundle_bytes']:>11,} B = {smaller:6.1f}x smaller, ", end=""
        )
        print(
            f"rel. error {error:.4f}, compress {timing[f'ours_compress_{dtype}_s']:.2f} s, ", end=""
        )
        print(f"read {s['read_bundle_s']:.3f} s, ", end="")
        print(f"committee float64 decompress {s['committee_decompress_float64_s']:.2f} s")
    sweep = ", ".join(
        f"r={r}: {v['ratio_dense_over_tensors']:.0f}x / {v['relative_error']:.3f}"
        for r, v in report["rank_sweep"].items()
    )
    print(f"rank sweep (size ratio / rel. error, round 1): {sweep}")
    labels = {
        "error_full": "full, 1 iteration",
        "error_full_3_iterations": "full, 3 iterations",
        "error_tiny": "tiny policy",
    }
    for key, label in labels.items():
        e = report[key]
        rounds = ", ".join(f"{x:.4f}" for x in e["relative_error_per_round"])
        print(f"relative error per round ({label}): {rounds}; ", end="")
        print(f"error-feedback cumulative gap {e['cumulative_gap']:.4f}")
    print(f"torch powerSGD_hook, round 1 relative error: {report['torch_hook_round_1_error']:.4f}")
    ours_c, ours_d = timing["ours_compress_float32_s"], timing["ours_decompress_s"]
    print(f"compress {ours_c:.2f} s, decompress {ours_d:.2f} s; ", end="")
    print(f"torch hook {timing['torch_hook_s']:.2f} s, ", end="")
    print(f"its decompress step {timing['torch_decompress_s']:.2f} s")
    print(f"ratios (ours / torch): compress {timing['ratio_compress_vs_torch_hook']:.2f}, ", end="")
    print(
        f"compress + decompress {timing['ratio_compress_plus_decompress_vs_torch_hook']:.2f}, ",
        end="",
    )
    print(f"decompress {timing['ratio_decompress_vs_torch_decompress']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions (median)")
    parser.add_argument("--full-rounds", type=int, default=2)
    parser.add_argument("--full-steps", type=int, default=2, help="optimizer steps per round")
    parser.add_argument("--tiny-rounds", type=int, default=3)
    parser.add_argument("--tiny-steps", type=int, default=10)
    parser.add_argument(
        "--cache", type=Path, help="keep the trained deltas here and reuse them on the next run"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    report: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "rank": args.rank,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="flare-bench-") as workdir:
        log("training the tiny policy ...")
        work = Path(workdir)
        tiny_spec, tiny = cached_deltas(args.cache, work, "tiny", args.tiny_rounds, args.tiny_steps)
        log("building and training the full-size policy (random frozen features) ...")
        spec, full = cached_deltas(
            args.cache, work, "smolvlm2-500m", args.full_rounds, args.full_steps
        )
    report["model"] = {
        "parameters": spec.numel,
        "tensors": len(spec.params),
        "two_d": sum(len(p.shape) == 2 for p in spec.params),
        "source": "flare.node.train, SmolVLM2-500M architecture with random weights",
    }
    config = PowerSGDConfig(rank=args.rank)
    log("sizes and factor dtypes ...")
    report["sizes"] = sizes(spec, full[0], args.rank)
    report["rank_sweep"] = rank_sweep(spec, full[0], (1, 2, 4, 8, 16, 32))
    log("reconstruction error over rounds ...")
    report["error_full"] = ours_rounds(spec, full, config)
    report["error_full_3_iterations"] = ours_rounds(
        spec, full, PowerSGDConfig(rank=args.rank, power_iterations=3)
    )
    report["error_tiny"] = ours_rounds(tiny_spec, tiny, config) | {"parameters": tiny_spec.numel}
    bucket = Bucket(full[0])
    hook_state = torch_powersgd.PowerSGDState(None, args.rank, 2, 2, True, True)
    hook_state.iter = 2
    torch_powersgd.powerSGD_hook(hook_state, bucket).wait()
    report["torch_hook_round_1_error"] = gap(
        dict(zip(full[0], [v.clone() for v in bucket.views], strict=True)), full[0]
    )
    del bucket, hook_state
    log("timing against torch's powerSGD_hook ...")
    report["timing"] = timings(spec, full[0], args.rank, args.repeat)
    dist.destroy_process_group()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_report(report)


if __name__ == "__main__":
    main()
