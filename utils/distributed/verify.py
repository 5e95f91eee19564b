"""Multi-process checks, run under torchrun: `python -m utils.distributed.verify tensor-parallel`.

    torchrun --standalone --nproc-per-node=2 -m utils.distributed.verify tensor-parallel --out DIR

`tensor-parallel`: every rank builds the same `MultiHeadAttention` (same seed), keeps its
H/N heads (`TensorParallelAttention.from_full`), and runs forward and backward on the same
input; rank 0 writes to DIR/metrics.json the largest difference, over all ranks, from the
single-device layer: in the output, the input's gradient, and the weights' gradients.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from utils.distributed.env import init, shutdown
from utils.distributed.tensor_parallel import TensorParallelAttention, head_slice
from utils.models.attention import MultiHeadAttention


def check_tensor_parallel(d_model: int = 32, num_heads: int = 4, batch: int = 2, seq_len: int = 8,
                          seed: int = 0) -> dict[str, Any]:
    """Max |difference| (over all ranks) of the tensor-parallel layer from the full one."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(seed)
    full = MultiHeadAttention(d_model, num_heads).double()
    x = torch.randn(batch, seq_len, d_model, dtype=torch.float64)
    x_full = x.clone().requires_grad_()
    expected, _ = full(x_full, x_full, x_full, is_causal=True, need_weights=False)
    expected.pow(2).sum().backward()

    shard = TensorParallelAttention.from_full(full, rank, world)
    x_tp = x.clone().requires_grad_()
    out = shard(x_tp, is_causal=True)
    out.pow(2).sum().backward()
    cols = head_slice(num_heads, full.head_dim, rank, world)
    diffs = torch.tensor([
        (out - expected).abs().max().item(),
        (x_tp.grad - x_full.grad).abs().max().item(),
        (shard.q_proj.weight.grad - full.q_proj.weight.grad[cols]).abs().max().item(),
        (shard.out_proj.weight.grad - full.out_proj.weight.grad[:, cols]).abs().max().item(),
    ], dtype=torch.float64)
    dist.all_reduce(diffs, op=dist.ReduceOp.MAX)
    names = ("output", "input gradient", "q_proj gradient", "out_proj gradient")
    return {"world_size": world, "heads_per_rank": num_heads // world,
            "max_abs_diff": dict(zip(names, diffs.tolist(), strict=True))}


CHECKS = {"tensor-parallel": check_tensor_parallel}


@record
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="utils.distributed.verify", description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    made = not dist.is_initialized()
    env = init("cpu")
    try:
        result = CHECKS[args.check]()
        if env.is_main:
            print(f"[rank 0] {args.check}: {result}", flush=True)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"rank{env.rank}.json").write_text(json.dumps({"rank": env.rank, "pid": os.getpid()}))
            if env.is_main:
                (out / "metrics.json").write_text(json.dumps(result))
        return result
    finally:
        if made:
            shutdown()


if __name__ == "__main__":
    main()
