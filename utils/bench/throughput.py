"""`python -m utils.bench throughput`: training throughput of the Transformer (lesson 08) and
the GRU encoder–decoder with attention (lesson 04) as the sequence length grows.

The course's central claim: a recurrent model reads a sentence one step after another, so the
time of a training step grows with the length however wide the hardware is; the Transformer
processes every position at once, and pays instead with attention that grows as L². Each
row is one forward + backward pass on a batch of a fixed number of tokens (B = tokens / L, so
that every length does the same amount of token work), source and target of length L, both
models of about the same width, timed side by side in one run.

    python -m utils.bench throughput                 # GPU: L = 64 .. 2048, bf16 autocast
    python -m utils.bench throughput --device cpu    # CPU: L = 16 .. 256, float32
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from utils.bench import compare
from utils.models.seq2seq import Seq2SeqConfig, build_seq2seq
from utils.models.translation_transformer import Transformer, TransformerConfig, label_smoothed_loss
from utils.runtime import half_dtype
from utils.training import count_parameters

MODELS = ("Transformer", "GRU + attention")


@dataclass(frozen=True)
class Sizes:
    """Model widths and the batch, in tokens, of one throughput measurement."""

    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2  # per stack for the Transformer (encoder and decoder)
    vocab_size: int = 1000
    tokens_per_batch: int = 4096  # B = tokens_per_batch // seq_len sentences per batch


CPU_SIZES = Sizes()
GPU_SIZES = Sizes(d_model=512, num_heads=8, num_layers=3, vocab_size=8000, tokens_per_batch=32768)
CPU_LENGTHS = (16, 32, 64, 128, 256)
GPU_LENGTHS = (64, 128, 256, 512, 1024, 2048)


def build_models(sizes: Sizes, max_len: int) -> dict[str, nn.Module]:
    """The two rivals at about the same width: a Transformer of d_model D, and a GRU
    encoder–decoder (lesson 04, dot-product attention) with hidden size D."""
    D, V = sizes.d_model, sizes.vocab_size
    transformer = Transformer(TransformerConfig(
        V, V, d_model=D, num_heads=sizes.num_heads, d_ff=4 * D, num_encoder_layers=sizes.num_layers,
        num_decoder_layers=sizes.num_layers, dropout=0.1, max_len=max_len))
    gru = build_seq2seq(Seq2SeqConfig(V, V, embed_dim=D, hidden_size=D, attention="dot", dropout=0.1))
    return {MODELS[0]: transformer, MODELS[1]: gru}


def training_step(model: nn.Module, src: Tensor, tgt: Tensor,
                  autocast: torch.dtype | None = None) -> Callable[[], None]:
    """A zero-argument forward + backward of a translation model on src (B, L), tgt (B, L+1)."""
    device_type = src.device.type
    src_mask = torch.ones_like(src, dtype=torch.bool)  # (B, L): no padding

    def run() -> None:
        context = (torch.autocast(device_type, dtype=autocast) if autocast is not None
                   else contextlib.nullcontext())
        with context:
            logits = model(src, src_mask, tgt[:, :-1])  # (B, L, V)
        loss = label_smoothed_loss(logits, tgt[:, 1:], smoothing=0.0)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return run


def measure(lengths: Sequence[int], sizes: Sizes = CPU_SIZES, *, device: torch.device | str = "cpu",
            autocast: torch.dtype | None = None, repeat: int = 3, warmup: int = 1,
            threads: int | None = None, rounds: int = 1, progress: bool = False) -> pd.DataFrame:
    """Training throughput of both models at each length: one row per (length, model), with
    columns seq_len, batch, model, parameters, ms (best step time), tokens_per_s (source +
    target tokens per second). `threads=1` times on one CPU thread (`utils.bench.compare`),
    so that the ratios do not depend on the machine's cores. `rounds > 1` sweeps the lengths
    that many times (`repeat` steps each) and keeps each point's best time, so that a burst of
    load on a shared machine cannot decide a whole length."""
    device = torch.device(device)
    torch.manual_seed(0)
    models = {name: m.to(device).train() for name, m in build_models(sizes, max(lengths) + 1).items()}
    precision = {name: _working_precision(m, sizes, device, autocast) for name, m in models.items()}
    batches = {}
    for L in lengths:
        B = max(1, sizes.tokens_per_batch // L)
        src = torch.randint(3, sizes.vocab_size, (B, L), device=device)  # (B, L)
        tgt = torch.randint(3, sizes.vocab_size, (B, L + 1), device=device)  # (B, L+1): <bos> y
        batches[L] = (B, {name: training_step(m, src, tgt, precision[name]) for name, m in models.items()})
    best: dict[tuple[int, str], float] = {}
    for round_ in range(max(rounds, 1)):
        for L, (_, steps) in batches.items():
            timings = compare(steps, repeat=repeat, warmup=warmup if round_ == 0 else 0, device=device,
                              threads=threads)
            for name, timing in timings.items():
                best[L, name] = min(best.get((L, name), float("inf")), timing.best)
            if progress:
                print(f"  L={L}: " + ", ".join(f"{n} {t.best * 1e3:.1f} ms" for n, t in timings.items()),
                      flush=True)
    rows = []
    for (L, name), seconds in best.items():
        B = batches[L][0]
        rows.append({"seq_len": L, "batch": B, "model": name, "parameters": count_parameters(models[name]),
                     "ms": seconds * 1e3, "tokens_per_s": 2 * B * L / seconds,
                     "precision": str(precision[name] or torch.float32).replace("torch.", "")})
    return pd.DataFrame(rows)


def _working_precision(model: nn.Module, sizes: Sizes, device: torch.device,
                       autocast: torch.dtype | None) -> torch.dtype | None:
    """`autocast` if one step of `model` runs under it here, else None (float32), said aloud:
    not every library build has every kernel (a recurrent cell in bfloat16, say)."""
    if autocast is None:
        return None
    src = torch.randint(3, sizes.vocab_size, (2, 4), device=device)
    tgt = torch.randint(3, sizes.vocab_size, (2, 5), device=device)
    try:
        training_step(model, src, tgt, autocast)()
        return autocast
    except RuntimeError as err:
        print(f"{type(model).__name__} does not run under {autocast} autocast here ({err}); "
              "timing it in float32")
        return None


def speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per length: each model's tokens/s and the Transformer's speed-up over the GRU."""
    wide = frame.pivot(index="seq_len", columns="model", values="tokens_per_s")[list(MODELS)]
    wide["Transformer / GRU"] = wide[MODELS[0]] / wide[MODELS[1]]
    return wide


def main(argv: list[str] | None = None) -> int:
    """Print the table of both models' training throughput per length; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--tokens", type=int, default=None, help="tokens per batch (B = tokens / L)")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fp32", action="store_true", help="no bf16/fp16 autocast on the GPU")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    sizes = GPU_SIZES if gpu else CPU_SIZES
    if args.tokens or args.d_model:
        heads = sizes.num_heads if not args.d_model or args.d_model % sizes.num_heads == 0 else 1
        sizes = Sizes(args.d_model or sizes.d_model, heads, sizes.num_layers, sizes.vocab_size,
                      args.tokens or sizes.tokens_per_batch)
    lengths = args.lengths or (GPU_LENGTHS if gpu else CPU_LENGTHS)
    autocast = half_dtype(device) if gpu and not args.fp32 else None  # fp16 on a T4
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device} ({name}); {sizes}; "
          f"{'float32' if autocast is None else f'{str(autocast)[6:]} autocast'}"
          f"; forward + backward, best of {args.repeat}")
    frame = measure(lengths, sizes, device=device, autocast=autocast, repeat=args.repeat, progress=True)
    first = frame.drop_duplicates("model").set_index("model")
    print("parameters: " + ", ".join(f"{m} {p / 1e6:.2f} M ({first.precision[m]})"
                                     for m, p in first.parameters.items()))
    table = speedups(frame)
    print(table.to_string(float_format=lambda v: f"{v:,.2f}" if v < 100 else f"{v:,.0f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
