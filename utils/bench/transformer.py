"""`python -m utils.bench transformer`: the course's encoder–decoder Transformer (lesson 08)
against the same model built from PyTorch's `nn.TransformerEncoderLayer` and
`nn.TransformerDecoderLayer`, holding the same weights.

One training step (forward + backward, dropout on, padded sources, causal targets) of each,
timed side by side in one run (interleaved rounds, so that machine noise hits both alike),
with tokens/s and the ratio. Before timing, the two models are checked to compute the same
logits. On a GPU the sizes are the paper's base model and the step runs under bf16 autocast.

    python -m utils.bench transformer                  # GPU if there is one, else CPU
    python -m utils.bench transformer --device cpu     # the CPU sizes
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from utils.bench import time_it
from utils.models.transformer import TokenEmbedding
from utils.models.translation_transformer import Transformer, TransformerConfig, label_smoothed_loss
from utils.runtime import half_dtype


class TorchTransformer(nn.Module):
    """The course's `Transformer`, with PyTorch's own encoder and decoder layers inside."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = self.config = config
        if not c.tie_embeddings:
            raise ValueError("TorchTransformer mirrors the tied model only")
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, c.max_len, c.dropout,
                                        padding_idx=c.pad_id)
        self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, c.max_len, c.dropout,
                                        padding_idx=c.pad_id)
        layer = dict(d_model=c.d_model, nhead=c.num_heads, dim_feedforward=c.d_ff, dropout=c.dropout,
                     batch_first=True, norm_first=c.norm_first)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**layer), c.num_encoder_layers,
            norm=nn.LayerNorm(c.d_model) if c.norm_first else None, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**layer), c.num_decoder_layers,
            norm=nn.LayerNorm(c.d_model) if c.norm_first else None)
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.generator.weight = self.tgt_embed.tokens.weight

    def forward(self, src: Tensor, src_mask: Tensor | None, tgt_in: Tensor) -> Tensor:
        """src (B, S), src_mask (B, S) True = real, tgt_in (B, T) -> logits (B, T, V)."""
        if src_mask is None:
            src_mask = src != self.config.pad_id
        T = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=src.device)  # (T, T), -inf above
        memory = self.encoder(self.src_embed(src), src_key_padding_mask=~src_mask)  # PyTorch: True = pad
        y = self.decoder(self.tgt_embed(tgt_in), memory, tgt_mask=causal, tgt_is_causal=True,
                         memory_key_padding_mask=~src_mask)
        return self.generator(y)  # (B, T, V)

    @classmethod
    def from_course(cls, model: Transformer) -> TorchTransformer:
        """A TorchTransformer holding exactly the weights of the course's `model`."""
        new = cls(model.config).to(next(model.parameters()).device)
        with torch.no_grad():
            new.src_embed.load_state_dict(model.src_embed.state_dict())
            new.tgt_embed.load_state_dict(model.tgt_embed.state_dict())
            for ours, theirs in zip(model.encoder, new.encoder.layers, strict=True):
                theirs.self_attn.load_state_dict(ours.self_attn.to_torch().state_dict())
                _copy_feed_forward(ours.feed_forward, theirs)
                theirs.norm1.load_state_dict(ours.attn_branch.norm.state_dict())
                theirs.norm2.load_state_dict(ours.ff_branch.norm.state_dict())
            for ours, theirs in zip(model.decoder, new.decoder.layers, strict=True):
                theirs.self_attn.load_state_dict(ours.self_attn.to_torch().state_dict())
                theirs.multihead_attn.load_state_dict(ours.cross_attn.to_torch().state_dict())
                _copy_feed_forward(ours.feed_forward, theirs)
                theirs.norm1.load_state_dict(ours.self_branch.norm.state_dict())
                theirs.norm2.load_state_dict(ours.cross_branch.norm.state_dict())
                theirs.norm3.load_state_dict(ours.ff_branch.norm.state_dict())
            if model.config.norm_first:
                new.encoder.norm.load_state_dict(model.encoder_norm.state_dict())
                new.decoder.norm.load_state_dict(model.decoder_norm.state_dict())
        return new


def _copy_feed_forward(ours: nn.Module, theirs: nn.Module) -> None:
    theirs.linear1.load_state_dict(ours.net[0].state_dict())
    theirs.linear2.load_state_dict(ours.net[3].state_dict())


@dataclass(frozen=True)
class BenchSizes:
    batch: int
    seq_len: int
    d_model: int
    num_heads: int
    d_ff: int
    num_layers: int
    vocab_size: int


CPU = BenchSizes(batch=32, seq_len=32, d_model=128, num_heads=4, d_ff=512, num_layers=2, vocab_size=1000)
GPU = BenchSizes(batch=64, seq_len=256, d_model=512, num_heads=8, d_ff=2048, num_layers=6, vocab_size=8000)


def make_batch(sizes: BenchSizes, device: torch.device | str, seed: int = 0
               ) -> tuple[Tensor, Tensor, Tensor]:
    """Random src (B, S) right-padded to lengths in [S/2, S], its mask, and tgt (B, T+1)."""
    gen = torch.Generator().manual_seed(seed)
    B, L, V = sizes.batch, sizes.seq_len, sizes.vocab_size
    lengths = torch.randint(L // 2, L + 1, (B,), generator=gen)  # (B,)
    src_mask = torch.arange(L)[None, :] < lengths[:, None]  # (B, S)
    src = torch.randint(3, V, (B, L), generator=gen) * src_mask  # padding = 0
    tgt = torch.randint(3, V, (B, L + 1), generator=gen)  # (B, T+1): <bos> y1 .. yT
    return src.to(device), src_mask.to(device), tgt.to(device)


def training_step(model: nn.Module, src: Tensor, src_mask: Tensor, tgt: Tensor,
                  autocast: torch.dtype | None) -> Callable[[], None]:
    """A zero-argument forward + backward of `model` on one batch."""

    def run() -> None:
        context = (torch.autocast(src.device.type, dtype=autocast) if autocast is not None
                   else contextlib.nullcontext())
        with context:
            logits = model(src, src_mask, tgt[:, :-1])  # (B, T, V)
        label_smoothed_loss(logits, tgt[:, 1:], smoothing=0.1).backward()
        model.zero_grad(set_to_none=True)

    return run


def compare_models(sizes: BenchSizes, device: torch.device | str = "cpu", *, rounds: int = 5,
                   repeat: int = 3, autocast: torch.dtype | None = None) -> dict[str, float]:
    """Median over rounds of each model's best step time (seconds), and the check's error."""
    device = torch.device(device)
    torch.manual_seed(0)
    config = TransformerConfig(sizes.vocab_size, sizes.vocab_size, d_model=sizes.d_model,
                               num_heads=sizes.num_heads, d_ff=sizes.d_ff,
                               num_encoder_layers=sizes.num_layers, num_decoder_layers=sizes.num_layers,
                               dropout=0.1, max_len=sizes.seq_len + 1)
    ours = Transformer(config).to(device)
    theirs = TorchTransformer.from_course(ours)
    src, src_mask, tgt = make_batch(sizes, device)
    error = _max_difference(ours, theirs, src, src_mask, tgt[:, :-1])
    steps = {"course": training_step(ours.train(), src, src_mask, tgt, autocast),
             "torch": training_step(theirs.train(), src, src_mask, tgt, autocast)}
    best: dict[str, list[float]] = {name: [] for name in steps}
    for fn in steps.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in steps.items():
            best[name].append(time_it(fn, repeat=repeat, warmup=0, device=device).best)
    return {"course": statistics.median(best["course"]), "torch": statistics.median(best["torch"]),
            "max_abs_difference": error}


def _max_difference(ours: nn.Module, theirs: nn.Module, src: Tensor, src_mask: Tensor,
                    tgt_in: Tensor) -> float:
    """Largest |logit difference| of the two models in eval mode, in float32."""
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a = ours(src[:4], src_mask[:4], tgt_in[:4])
        b = theirs(src[:4], src_mask[:4], tgt_in[:4])
    return (a - b).abs().max().item()


def main(argv: list[str] | None = None) -> int:
    """Print each model's step time, tokens/s and the ratio course / torch; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench transformer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for field in ("batch", "seq_len", "d_model", "num_heads", "d_ff", "num_layers", "vocab_size"):
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of timings")
    parser.add_argument("--repeat", type=int, default=3, help="timed steps per round")
    parser.add_argument("--fp32", action="store_true", help="no bf16/fp16 autocast on the GPU")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    sizes = GPU if gpu else CPU
    sizes = replace(sizes, **{k: v for k, v in vars(args).items() if k in asdict(sizes) and v is not None})
    autocast = half_dtype(device) if gpu and not args.fp32 else None  # fp16 on a T4
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    result = compare_models(sizes, device, rounds=args.rounds, repeat=args.repeat, autocast=autocast)
    tokens = 2 * sizes.batch * sizes.seq_len  # source + target positions per step
    print(f"torch {torch.__version__} on {device} ({name}); "
          f"{'float32' if autocast is None else f'{str(autocast)[6:]} autocast'}"
          f"; forward + backward, median of "
          f"{args.rounds} rounds of best-of-{args.repeat}")
    print(", ".join(f"{k}={v}" for k, v in asdict(sizes).items()) + "; same weights, max |logit "
          f"difference| (float32, eval) = {result['max_abs_difference']:.1e}")
    print(f"{'model':<42}{'ms/step':>10}{'tokens/s':>14}")
    labels = {"course": "course Transformer (utils.models)",
              "torch": "nn.TransformerEncoder/DecoderLayer"}
    for key, label in labels.items():
        print(f"{label:<42}{result[key] * 1e3:>10.2f}{tokens / result[key]:>14,.0f}")
    print(f"course / torch time: {result['course'] / result['torch']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
