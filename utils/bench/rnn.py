"""`python -m utils.bench rnn`: recurrent vs convolutional vs all-positions-at-once layers,
forward time per batch as the sequence grows (lessons 01 and 02), side by side in one run.

    python -m utils.bench rnn                          # B=32, D=64, T = 16 ... 512
    python -m utils.bench rnn --batch 1 --lengths 64 512 2048

Layers, all of width D, on a (B, T, D) batch:
- `loop RNN`: lesson 01's `SimpleRNN`, a Python loop over `RNNCell` (T dependent steps);
- `nn.GRU`: PyTorch's GRU (T dependent steps inside one call);
- `dilated CNN`: lesson 02's `DilatedConvEncoder`, kernel 3, dilations 1, 2, 4 (3 steps);
- `x @ W`: one matrix product over every position at once, W of shape (D, 3D).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from utils.bench import compare
from utils.models.cnn import DilatedConvEncoder
from utils.models.rnn import SimpleRNN


def layers(width: int, device: torch.device | str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The compared layers, each a function (B, T, D) -> something computed from every position."""
    rnn = SimpleRNN(width, width).to(device)
    gru = torch.nn.GRU(width, width, batch_first=True).to(device)
    cnn = DilatedConvEncoder(width, kernel_size=3, dilations=(1, 2, 4)).to(device)
    weight = torch.randn(width, 3 * width, device=device)
    return {"loop RNN": lambda x: rnn(x)[0], "nn.GRU": lambda x: gru(x)[0], "dilated CNN": cnn,
            "x @ W": lambda x: x @ weight}


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
    print(f"{'T':>6} " + " ".join(f"{name:>12}" for name in fns) + f" {'GRU / x@W':>10}")
    with torch.no_grad():
        for length in args.lengths:
            x = torch.randn(args.batch, length, args.width, device=args.device)  # (B, T, D)
            timing = compare({name: (lambda fn=fn, x=x: fn(x)) for name, fn in fns.items()},
                             repeat=args.repeat, device=args.device)
            best = {name: t.best * 1e3 for name, t in timing.items()}
            print(f"{length:>6} " + " ".join(f"{best[name]:>12.3f}" for name in fns)
                  + f" {best['nn.GRU'] / best['x @ W']:>10.1f}")
    return 0
