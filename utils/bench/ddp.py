"""`python -m utils.bench ddp`: data-parallel throughput and scaling efficiency.

Every row is one `torchrun` launch of `utils.distributed.train` (the course's GPT), timed
by the script itself after its first steps:

- on the CPU: 1 process (no DDP) against 2 (and 4, where the cores allow) gloo processes
  with DDP, each process one core (`OMP_NUM_THREADS=1`), so that the table shows what
  adding processes buys;
- on GPUs: one process without DDP, one process with DDP (DDP's overhead alone: with one
  GPU there is nothing to scale to), and one process per GPU with NCCL where there are
  several.

Scaling is *weak* by default: each rank keeps its batch (`--batch-per-rank`), so N ranks
process an N times larger global batch per step; efficiency = throughput(N) / (N x
throughput(1)). `--strong` keeps the global batch fixed instead (each rank gets B/N).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

CPU_MODEL = {"d_model": 64, "num_heads": 4, "num_layers": 2, "d_ff": 256, "seq_len": 64}
GPU_MODEL = {"d_model": 768, "num_heads": 12, "num_layers": 6, "d_ff": 3072, "seq_len": 512}


def efficiency_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows of {"setup", "ranks", "samples_per_second", "ms_per_step"} -> a table with the speed-up
    over the first row and the scaling efficiency (speed-up / ranks)."""
    if not rows:
        raise ValueError("efficiency_table needs at least one measured row")
    base = rows[0]["samples_per_second"] / rows[0]["ranks"]  # per rank, in the baseline
    frame = pd.DataFrame(rows)
    frame["speed-up"] = frame["samples_per_second"] / rows[0]["samples_per_second"]
    frame["efficiency"] = frame["samples_per_second"] / (frame["ranks"] * base)
    return frame.round({"samples_per_second": 1, "ms_per_step": 2, "speed-up": 2, "efficiency": 2})


def _row(setup: str, ranks: int, run: Any) -> dict[str, Any]:
    m = run.metrics
    return {"setup": setup, "ranks": ranks, "global batch": m["config"]["global_batch"],
            "samples_per_second": m["samples_per_second"], "ms_per_step": m["ms_per_step"]}


def measure(device: str, ranks: Sequence[int], steps: int, batch_per_rank: int, strong: bool,
            echo: bool = False) -> list[dict[str, Any]]:
    """Launch one run per setup and return the measured rows (baseline first)."""
    from utils.distributed import launch

    model = GPU_MODEL if device == "cuda" else CPU_MODEL
    common = {**model, "steps": steps, "timing_warmup": min(5, steps // 3), "log_every": 10**6,
              "num_samples": batch_per_rank * max(ranks) * 64, "vocab_size": 256}
    threads = 1 if device == "cpu" else None

    def launch_one(n: int, strategy: str) -> Any:
        batch = batch_per_rank * max(ranks) if strong else batch_per_rank * n
        settings = {**common, "strategy": strategy, "global_batch": batch, "device": device}
        return launch.run("utils.distributed.train", settings, nproc=n, device=device, threads=threads,
                          echo=echo, timeout=600)

    rows = [_row("1 process, no DDP", 1, launch_one(1, "none"))]
    if device == "cuda":
        rows.append(_row("1 process, DDP", 1, launch_one(1, "ddp")))
    for n in ranks:
        if n > 1:
            rows.append(_row(f"{n} processes, DDP", n, launch_one(n, "ddp")))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the throughput table; returns 0."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(prog="python -m utils.bench ddp", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if gpus else "cpu")
    parser.add_argument("--ranks", default=None, help="comma-separated process counts, e.g. 1,2,4")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-per-rank", type=int, default=None)
    parser.add_argument("--strong", action="store_true", help="fixed global batch instead of per-rank")
    parser.add_argument("--echo", action="store_true", help="show the runs' output")
    args = parser.parse_args(argv)

    if args.ranks:
        ranks = [int(n) for n in args.ranks.split(",")]
    elif args.device == "cuda":
        ranks = sorted({1, gpus})
    else:
        ranks = [1, 2] + ([4] if cores >= 4 else [])
    steps = args.steps or (30 if args.device == "cuda" else 20)
    batch = args.batch_per_rank or (16 if args.device == "cuda" else 8)
    rows = measure(args.device, ranks, steps, batch, args.strong, echo=args.echo)
    scaling = "strong (fixed global batch)" if args.strong else f"weak ({batch} sequences per rank)"
    size = GPU_MODEL if args.device == "cuda" else CPU_MODEL
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)} x {gpus})" if args.device == "cuda" else f" ({cores} cores)")
          + f"; GPT {size}; {steps} steps; {scaling} scaling")
    print(efficiency_table(rows).to_string(index=False))
    if args.device == "cuda" and gpus == 1:
        print("one GPU: the DDP row shows DDP's overhead only (its all-reduce has no one to talk to); "
              "scaling needs several GPUs")
    if args.device == "cpu":
        print(f"each process uses one core; with {cores} cores, more than {cores} processes compete for them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
