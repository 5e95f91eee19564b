"""`python -m utils.bench rnn`: recurrent vs convolutional vs all-positions-at-once layers,
forward time per batch as the sequence grows (lessons 01 and 02), side by side in one run.

    python -m utils.bench rnn                          # B=32, D=64, T = 16 ... 512
    python -m utils.bench rnn --batch 1 --lengths 64 512 2048

Layers, all of width D, on a (B, T, D) batch:
- `loop RNN`: lesson 01's `SimpleRNN`, a Python loop over `RNNCell` (T dependent steps);
- `nn.GRU`: PyTorch's GRU (T dependent steps inside one call);
- `dilated CNN`: lesson 02's `DilatedConvEncoder`, kernel 3, dilations 1, 2, 4 (3 steps);
- `GRU cell, all T`: the GRU cell's arithmetic (its two (D, 3D) products and its gates) at
  every position at once, the input standing in for the previous state (`gru_all_positions`):
  the same work as `nn.GRU`, with no step waiting for the one before.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from utils.bench import compare
from utils.models.cnn import DilatedConvEncoder
from utils.models.rnn import SimpleRNN


def gru_all_positions(gru: torch.nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """The GRU cell's arithmetic at every position at once, x_t standing in for h_{t-1}:
    (B, T, D) -> (B, T, D), for a one-layer `nn.GRU(D, D)`.

    The same multiply-adds (x W_ih^T and "h" W_hh^T, both (D, 3D)) and gate operations as one
    step of `gru` per position, so a timing against `gru(x)` compares equal arithmetic: what
    differs is only that here no position waits for the one before it.
    """
    if gru.num_layers != 1 or gru.bidirectional or gru.input_size != gru.hidden_size:
        raise ValueError(f"gru_all_positions needs a one-layer, one-direction GRU(D, D), got {gru}")
    width = gru.hidden_size
    gi = F.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)  # (B, T, 3D): gates r, z, n from the input
    gh = F.linear(x, gru.weight_hh_l0, gru.bias_hh_l0)  # (B, T, 3D): the recurrent product, on x_t
    r, z = torch.sigmoid(gi[..., : 2 * width] + gh[..., : 2 * width]).chunk(2, dim=-1)  # (B, T, D) each
    n = torch.tanh(gi[..., 2 * width :] + r * gh[..., 2 * width :])  # (B, T, D): the candidate
    return torch.lerp(n, x, z)  # (1 - z) * n + z * x, as h_t = (1 - z) * n + z * h_{t-1}


def layers(width: int, device: torch.device | str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The compared layers, each a function (B, T, D) -> something computed from every position."""
    rnn = SimpleRNN(width, width).to(device)
    gru = torch.nn.GRU(width, width, batch_first=True).to(device)
    cnn = DilatedConvEncoder(width, kernel_size=3, dilations=(1, 2, 4)).to(device)
    return {"loop RNN": lambda x: rnn(x)[0], "nn.GRU": lambda x: gru(x)[0], "dilated CNN": cnn,
            "GRU cell, all T": lambda x: gru_all_positions(gru, x)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench rnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256, 512])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    fns = layers(args.width, args.device)
    print(f"torch {torch.__version__} | device {args.device} | threads {torch.get_num_threads()} | "
          f"B={args.batch} D={args.width} | best of {args.repeat}, ms per forward pass")
    print(f"{'T':>6} " + " ".join(f"{name:>12}" for name in fns) + f" {'GRU / all T':>12}")
    with torch.no_grad():
        for length in args.lengths:
            x = torch.randn(args.batch, length, args.width, device=args.device)  # (B, T, D)
            timing = compare({name: (lambda fn=fn, x=x: fn(x)) for name, fn in fns.items()},
                             repeat=args.repeat, device=args.device)
            best = {name: t.best * 1e3 for name, t in timing.items()}
            print(f"{length:>6} " + " ".join(f"{best[name]:>12.3f}" for name in fns)
                  + f" {best['nn.GRU'] / best['GRU cell, all T']:>12.2f}")
    return 0
