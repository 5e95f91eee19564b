"""`python -m utils.bench kv_cache`: GPT generation with and without the KV cache (lesson 09).

For each output length: milliseconds per generated token with the cache (each step runs the
new token only) and without it (each step re-reads the whole prefix), timed side by side in
one run, the speed-up, and a check that both give the same tokens. Speed does not depend on
what the weights learned, so the model is freshly initialised.

    python -m utils.bench kv_cache                      # GPU if there is one, else CPU
    python -m utils.bench kv_cache --batch 1 --lengths 64 256 1024
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from utils.bench import compare
from utils.models.gpt import GPT, GPTConfig


def measure(model: GPT, lengths: list[int], batch: int, prompt_len: int = 8, repeat: int = 3,
            device: torch.device | str = "cpu") -> pd.DataFrame:
    """One row per output length: ms/token with and without the cache, speed-up, same tokens."""
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(4, model.config.vocab_size, (batch, prompt_len), generator=gen).to(device)
    rows = []
    for n in lengths:
        timings = compare({cache: (lambda cache=cache, n=n: model.generate(prompt, n, use_cache=cache))
                           for cache in (True, False)}, repeat=repeat, device=device)
        same = torch.equal(model.generate(prompt, n, use_cache=True),
                           model.generate(prompt, n, use_cache=False))
        rows.append({"new tokens": n, "ms/token, cache": 1e3 * timings[True].best / n,
                     "ms/token, no cache": 1e3 * timings[False].best / n,
                     "speed-up": timings[False].best / timings[True].best, "same tokens": same})
    return pd.DataFrame(rows).set_index("new tokens")


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns 1 if cached and uncached tokens ever differ, else 0."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench kv_cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    lengths = args.lengths or ([128, 256, 512, 1024] if gpu else [16, 64, 256])
    batch = args.batch or (64 if gpu else 1)
    d_model = args.d_model or (512 if gpu else 64)
    layers = args.num_layers or (6 if gpu else 2)
    torch.manual_seed(0)
    heads = 8 if d_model % 8 == 0 else 1
    config = GPTConfig(1000, max_len=max(lengths) + 8, d_model=d_model, num_heads=heads, num_layers=layers,
                       d_ff=4 * d_model)
    model = GPT(config).to(device).eval()
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device} ({name}); GPT d_model={d_model}, {layers} layers, "
          f"batch {batch}, 8-token prompt, float32, greedy; best of {args.repeat}")
    table = measure(model, lengths, batch, repeat=args.repeat, device=device)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0 if table["same tokens"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
