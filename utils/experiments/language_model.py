"""The language model of lesson 13: a GPT trained on real text, tokenised by the course's
byte-level BPE, scored by its perplexity on held-out sentences against n-gram baselines.

The text is the shipped Tatoeba sample (`utils.data.real_text`, CC-BY 2.0 France): each document is one pair,
written as `English<TAB>French<NEWLINE>`, so that a model which reads the English half can
predict the French half better than a bigram can. Documents are concatenated into one stream of
BPE ids; the model trains on random windows of `max_len` tokens of it.

- `language_model_run(profile, **changes)`: the run's sizes (a frozen dataclass, the cache key);
  `num_kv_heads` and `window` make its grouped-query and sliding-window variants.
- `tokenizer(vocab_size)`, `token_streams(vocab_size)`: the BPE and the train/held-out ids.
- `unigram_perplexity`, `bigram_perplexity`: the baselines, on the same held-out targets.
- `perplexity(model, stream, context)`: a model's held-out perplexity.
- `train_language_model(run, device)`: the GPT, trained (or loaded from the cache by
  `utils.run_cache.cached_run`), with its loss curve and held-out perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from utils.experiments.common import adamw, seeded
from utils.run_cache import cached_run
from utils.runtime import Profile, run_seed
from utils.training import train

if TYPE_CHECKING:
    from utils.data.bpe import BPETokenizer

LESSON = "13_language_models"


@dataclass(frozen=True)
class LanguageModelRun:
    """Everything that decides one trained language model (the cache key)."""

    vocab_size: int = 512  # of the BPE: 256 bytes + merges
    max_len: int = 32  # the context, in tokens
    d_model: int = 64
    num_heads: int = 4
    num_kv_heads: int | None = None  # None: one K/V head per query head (multi-head attention)
    window: int | None = None  # None: full causal attention; W: each token sees the last W
    num_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.0
    batch_size: int = 32
    steps: int = 400
    lr: float = 3e-3
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED

    def describe(self) -> str:
        heads = "" if self.num_kv_heads is None else f", {self.num_kv_heads} K/V heads"
        window = "" if self.window is None else f", window {self.window}"
        return (f"GPT d_model={self.d_model}, {self.num_layers} layers, {self.num_heads} heads{heads}"
                f"{window}, context {self.max_len}, BPE {self.vocab_size}")


def language_model_run(profile: Profile, **changes: Any) -> LanguageModelRun:
    """Lesson 13's reference GPT on real text, sized by the profile (`changes` override fields)."""
    sizes = dict(
        vocab_size=profile.choose(cpu=512, gpu=1024, grading=300),
        max_len=profile.choose(cpu=32, gpu=64, grading=16),
        d_model=profile.choose(cpu=64, gpu=128, grading=32),
        num_heads=profile.choose(cpu=4, gpu=8, grading=4),
        num_layers=profile.choose(cpu=2, gpu=4, grading=1),
        d_ff=profile.choose(cpu=256, gpu=512, grading=64),
        dropout=profile.choose(cpu=0.0, gpu=0.1, grading=0.0),
        batch_size=profile.choose(cpu=32, gpu=64, grading=16),
        steps=profile.choose(cpu=300, gpu=1000, grading=20),
        lr=profile.choose(cpu=1e-2, gpu=3e-3, grading=1e-2),
    )
    return LanguageModelRun(**{**sizes, **changes})


# ------------------------------------------------------------------------ text and tokens


def documents(split: str, seed: int | None = None) -> list[str]:
    """The training ("train") or held-out ("valid") documents, one `English\tFrench\n` per pair of
    the shipped corpus, split by English sentence as `utils.data.real_text` splits it (all the
    translations of one English sentence fall in the same split)."""
    from utils.data import real_text

    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    held_out = set(real_text.real_text("en", seed=run_seed() if seed is None else seed).valid)
    return [f"{line.en}\t{line.fr}\n" for line in real_text.read_corpus()
            if (line.en in held_out) == (split == "valid")]


@lru_cache(maxsize=4)
def tokenizer(vocab_size: int, seed: int | None = None) -> BPETokenizer:
    """The course's byte-level BPE, trained on the training documents (once per process)."""
    from utils.data.bpe import train_bpe

    return train_bpe("".join(documents("train", seed)), vocab_size)


@lru_cache(maxsize=4)
def token_streams(vocab_size: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """(train ids, held-out ids): each split's documents encoded as one stream, (N,) int64."""
    tok = tokenizer(vocab_size, seed)
    return tuple(torch.tensor(tok.encode("".join(documents(split, seed))), dtype=torch.long)
                 for split in ("train", "valid"))


def held_out_targets(stream: Tensor, context: int) -> tuple[Tensor, Tensor]:
    """The held-out stream cut into non-overlapping windows: inputs (N, T) and targets (N, T),
    targets[i, t] = the token after inputs[i, t]; every token but the first is a target once
    (the few that do not fill a last window are left out)."""
    n = (len(stream) - 1) // context
    inputs = stream[: n * context].view(n, context)  # (N, T)
    targets = stream[1 : n * context + 1].view(n, context)  # (N, T)
    return inputs, targets


def unigram_perplexity(train_ids: Tensor, inputs: Tensor, targets: Tensor, vocab_size: int) -> float:
    """Perplexity of token frequencies (add-one smoothed) on `targets`: no context at all."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1  # (V,)
    log_probs = (counts / counts.sum()).log()
    return math.exp(-log_probs[targets.flatten()].mean().item())


def bigram_perplexity(train_ids: Tensor, inputs: Tensor, targets: Tensor, vocab_size: int,
                      weights: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)) -> float:
    """Perplexity of the best bigram model P(b | a) = λ c(a, b) / c(a) + (1 - λ) P_unigram(b)
    over the λs in `weights` (chosen on `targets` themselves, which favours the baseline).
    The previous token of each target is inputs[i, t], the same one the model reads last."""
    V = vocab_size
    pairs = torch.zeros(V, V, dtype=torch.double)  # (V, V): pairs[a, b] = c(a, b)
    pairs.index_put_((train_ids[:-1], train_ids[1:]), torch.ones(len(train_ids) - 1, dtype=torch.double),
                     accumulate=True)
    unigram = torch.bincount(train_ids, minlength=V).double() + 1
    unigram = unigram / unigram.sum()  # (V,)
    a, b = inputs.flatten(), targets.flatten()
    conditional = pairs[a, b] / pairs[a].sum(-1).clamp(min=1)  # (N*T,), 0 for an unseen pair
    return min(math.exp(-(lam * conditional + (1 - lam) * unigram[b]).log().mean().item())
               for lam in weights)


@torch.no_grad()
def perplexity(model: nn.Module, inputs: Tensor, targets: Tensor, batch_size: int = 256) -> float:
    """exp(mean next-token cross-entropy) of `model` on held-out windows (N, T), (N, T)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start : start + batch_size].to(device)  # (b, T)
        y = targets[start : start + batch_size].to(device)
        total += model(x, y).item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return math.exp(total / count)


def random_windows(stream: Tensor, context: int, batch_size: int, seed: int
                   ) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless batches of random windows of the stream: (inputs (B, T), targets (B, T))."""
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(context + 1)  # (T + 1,)
    while True:
        starts = torch.randint(0, len(stream) - context, (batch_size,), generator=generator)  # (B,)
        window = stream[starts[:, None] + offsets]  # (B, T + 1)
        yield window[:, :-1], window[:, 1:]


# ------------------------------------------------------------------------ the model


def gpt_config(run: LanguageModelRun) -> Any:
    """The `GPTConfig` of a run (no padding id: the stream has no padding)."""
    from utils.models.gpt import GPTConfig

    variants = {name: value for name, value in (("num_kv_heads", run.num_kv_heads), ("window", run.window))
                if value is not None}
    return GPTConfig(run.vocab_size, max_len=run.max_len, d_model=run.d_model, num_heads=run.num_heads,
                     num_layers=run.num_layers, d_ff=run.d_ff, dropout=run.dropout, pad_id=None, **variants)


def build_language_model(run: LanguageModelRun) -> nn.Module:
    """The untrained GPT that `run` describes (weights drawn under `run.seed`)."""
    from utils.models.gpt import GPT

    config = gpt_config(run)
    return seeded(run.seed, lambda: GPT(config))


def next_token_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean next-token cross-entropy of a batch (inputs (B, T), targets (B, T))."""
    return model(*batch)


def train_language_model(run: LanguageModelRun, device: torch.device | str, desc: str = "GPT on real text"
                         ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the GPT `run` describes: -> (model, info) with the step
    losses, the training time and the held-out perplexity."""
    train_ids, valid_ids = token_streams(run.vocab_size, run.seed)
    if run.vocab_size != tokenizer(run.vocab_size, run.seed).vocab_size:
        raise ValueError(f"the BPE learned fewer tokens than vocab_size={run.vocab_size}: lower it")

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer = adamw(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.1)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=run.lr,
                                                        total_steps=max(run.steps, 1), pct_start=0.1)
        batches = random_windows(train_ids, run.max_len, run.batch_size, run.seed)
        log = seeded(run.seed, lambda: train(model, batches, next_token_loss, steps=run.steps,
                                             optimizer=optimizer, scheduler=scheduler, device=device,
                                             desc=desc))
        inputs, targets = held_out_targets(valid_ids, run.max_len)
        return {"losses": log.losses, "train_seconds": log.seconds,
                "valid_perplexity": perplexity(model, inputs, targets)}

    return cached_run("language-model", run, lambda: build_language_model(run), fit, device=device)


def kv_cache_bytes_per_token(run: LanguageModelRun, dtype: torch.dtype = torch.float32) -> int:
    """Bytes the KV cache of `run`'s GPT holds per token, 2 * N * Hkv * Dh * bytes
    (`utils.models.gpt.kv_cache_bytes_per_token`); a window caps the cache at W - 1 tokens."""
    from utils.models.gpt import kv_cache_bytes_per_token as per_token

    return per_token(gpt_config(run), dtype)


@torch.no_grad()
def continue_text(model: nn.Module, tokenizer: BPETokenizer, prompt: str, max_new_tokens: int = 24, *,
                  temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                  generator: torch.Generator | None = None, stop: str = "\n") -> str:
    """The text `model` writes after `prompt`, up to `stop` (excluded) or `max_new_tokens` tokens;
    temperature 0 is greedy, otherwise tokens are drawn by `utils.sampling.sample_next`."""
    from utils.sampling import sample_next

    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer.encode(prompt)], device=device)  # (1, T)
    start = ids.shape[1]
    for _ in range(max_new_tokens):
        logits = model(ids[:, -model.config.max_len:])[:, -1].float()  # (1, V): the last position's
        token = sample_next(logits, temperature, top_k, generator, top_p=top_p)  # (1,)
        ids = torch.cat([ids, token[:, None]], dim=1)  # (1, T + 1)
        if stop and stop in tokenizer.decode(ids[0, start:].tolist()):
            break
    return tokenizer.decode(ids[0, start:].tolist()).split(stop)[0] if stop else \
        tokenizer.decode(ids[0, start:].tolist())
