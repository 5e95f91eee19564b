"""`python -m utils.bench mha`: the course's MultiHeadAttention against nn.MultiheadAttention.

Forward + backward of self-attention, both modules holding the same weights, timed
side by side in one run (interleaved rounds, so that machine noise hits both alike).
Two pairs are compared: with the attention weights returned (our explicit path of
lesson 05 vs PyTorch's `need_weights=True`), and without them (our fast path through
`F.scaled_dot_product_attention` vs PyTorch's `need_weights=False`).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn

from utils.bench import time_it
from utils.models.attention import MultiHeadAttention


def _step(
    module: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    x: torch.Tensor,
    **kwargs: object,
) -> Callable[[], None]:
    """A forward + backward of self-attention on x (B, T, D)."""

    def run() -> None:
        out, _ = module(x, x, x, **kwargs)
        out.sum().backward()

    return run


def main(argv: list[str] | None = None) -> int:
    """Print the time of each module and the ratio ours / PyTorch's; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench mha", description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of timings")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(args.d_model, args.heads, batch_first=True).to(device)
    ours = MultiHeadAttention.from_torch(theirs)
    x = torch.randn(args.batch, args.seq_len, args.d_model, device=device, requires_grad=True)
    cases = {
        ("weights", "ours"): _step(ours, x, need_weights=True),
        ("weights", "torch"): _step(theirs, x, need_weights=True, average_attn_weights=False),
        ("fast", "ours"): _step(ours, x, need_weights=False),
        ("fast", "torch"): _step(theirs, x, need_weights=False),
    }
    medians: dict[tuple[str, str], list[float]] = {key: [] for key in cases}
    for _ in range(args.rounds):
        for key, fn in cases.items():
            medians[key].append(time_it(fn, repeat=args.repeat, device=device).median)

    print(
        f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads); "
        f"B={args.batch} T={args.seq_len} D={args.d_model} H={args.heads}, forward+backward"
    )
    print(f"{'path':<34}{'ours ms':>10}{'torch ms':>10}{'ours/torch':>12}")
    labels = {"weights": "weights returned (explicit)", "fast": "need_weights=False (fused SDPA)"}
    for path, label in labels.items():
        ours_t = statistics.median(medians[(path, "ours")])
        torch_t = statistics.median(medians[(path, "torch")])
        print(f"{label:<34}{ours_t * 1e3:>10.2f}{torch_t * 1e3:>10.2f}{ours_t / torch_t:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
