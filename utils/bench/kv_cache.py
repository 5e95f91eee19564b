"""`python -m utils.bench kv_cache`: GPT generation with and without the KV cache (lesson 09).

For each output length: milliseconds per generated token with the cache (each step runs the
new token only) and without it (each step re-reads the whole prefix), timed side by side in
one run, the speed-up, and a check that both give the same tokens. Speed does not depend on
what the weights learned, so the model is freshly initialised.

Two CPU sizes. `--size small` (d_model 64, 2 layers) is lesson 09's model: there a token's
fixed cost (a few dozen small PyTorch calls per layer) dominates, and the cache saves little.
`--size large` (d_model 256, 6 layers, 8 heads, 1,000 tokens, context 520) is a small
real-text GPT at 512 new tokens: re-reading the prefix costs a full forward pass over up to
520 positions per token, and the cache pays off (9.2x once on 2 idle CPU threads). `--kv-heads 8 2 1` adds
grouped- and multi-query variants (MHA, GQA, MQA) of the same model, and the cache's bytes.

    python -m utils.bench kv_cache                      # GPU if there is one, else CPU, small
    python -m utils.bench kv_cache --size large --kv-heads 8 2 1
    python -m utils.bench kv_cache --batch 1 --lengths 64 256 1024
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from utils.bench import compare
from utils.models.gpt import GPT, GPTConfig, kv_cache_bytes_per_token

# size -> (d_model, layers, lengths) on a CPU; the GPU default is its own (below).
CPU_SIZES = {"small": (64, 2, [16, 64, 256]), "large": (256, 6, [512])}


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
                     "speed-up": timings[False].best / timings[True].best, "same tokens": same,
                     "cache KiB/token": batch * kv_cache_bytes_per_token(model.config) / 1024})
    return pd.DataFrame(rows).set_index("new tokens")


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns 1 if cached and uncached tokens ever differ, else 0."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench kv_cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=sorted(CPU_SIZES), default="small",
                        help="the model's size on a CPU (default small); explicit options win")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--kv-heads", type=int, nargs="+", default=None,
                        help="key/value heads per layer, one model each (default: as many as heads)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    cpu_d_model, cpu_layers, cpu_lengths = CPU_SIZES[args.size]
    lengths = args.lengths or ([128, 256, 512, 1024] if gpu else cpu_lengths)
    batch = args.batch or (64 if gpu else 1)
    d_model = args.d_model or (512 if gpu else cpu_d_model)
    layers = args.num_layers or (6 if gpu else cpu_layers)
    heads = 8 if d_model % 8 == 0 else 1
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device} ({name}); GPT d_model={d_model}, {layers} layers, "
          f"{heads} heads, batch {batch}, 8-token prompt, float32, greedy; best of {args.repeat}")
    tables = []
    for kv_heads in args.kv_heads or [heads]:
        torch.manual_seed(0)
        config = GPTConfig(1000, max_len=max(lengths) + 8, d_model=d_model, num_heads=heads,
                           num_layers=layers, d_ff=4 * d_model, num_kv_heads=kv_heads)
        model = GPT(config).to(device).eval()
        table = measure(model, lengths, batch, repeat=args.repeat, device=device)
        tables.append(table.assign(**{"K/V heads": kv_heads}).set_index("K/V heads", append=True))
    table = pd.concat(tables)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0 if table["same tokens"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
