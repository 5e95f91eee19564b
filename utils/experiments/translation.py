"""The translation task of the shared results table: lesson 03's GRU encoder-decoder, lesson 04's
with additive attention and lesson 08's Transformer translate the same synthetic English ->
French pairs and are scored the same way (greedy decoding, corpus BLEU, BLEU per source-length
bucket); lesson 08 also trains its Transformer on real Tatoeba pairs.

The shared test split (chosen once, here; later lessons evaluate on exactly this one):
`TRANSLATION_TEST`, the "test" split of `utils.data.translation_data` with seed 0: 600 sentence
pairs of 4 to 20 English tokens. Metric: corpus BLEU (`utils.metrics.bleu`) of greedy
translations; `Result.details["bleu_by_length"]` maps a source-length bucket ("4-7", "8-11",
"12-15", "16-20") to its BLEU. It is drawn before the training split, from a stream of its own,
so it does not depend on the profile's training size.

- `translation_splits(profile)`: the data (train, valid, test and the vocabularies).
- `gru_seq2seq`, `attention_seq2seq`, `transformer_translation`: a trained model with its
  `Result` (trained once, then loaded from the cache by `utils.run_cache.cached_run`). The
  Transformer trains for as many steps, with batches as large, as the recurrent models.
- `tatoeba_transformer(profile, device)`: lesson 08's Transformer on Tatoeba pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from utils.decoding import strip_special
from utils.experiments.common import Result, adamw, result_row, seeded, train_size
from utils.metrics import bleu, bleu_by_length
from utils.run_cache import cached_run
from utils.runtime import Profile, run_seed
from utils.training import TrainLog, train

if TYPE_CHECKING:
    from utils.data import Pair, Seq2SeqBatch, Seq2SeqData

TASK = "translation"

# ------------------------------------------------------------------------ the shared test split


@dataclass(frozen=True)
class TranslationSplit:
    """Which English -> French pairs the translation models are trained and tested on."""

    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    num_test: int = 600
    num_valid: int = 200
    min_len: int = 4  # English tokens, final "." included
    max_len: int = 20
    buckets: tuple[int, ...] = (4, 8, 12, 16, 21)  # edges of the source-length buckets

    def describe(self) -> str:
        return (f"synthetic en-fr, seed {self.seed}, {self.num_test} test pairs, "
                f"{self.min_len}-{self.max_len} tokens")


TRANSLATION_TEST = TranslationSplit()


def _num_train(profile: Profile) -> int:
    return train_size(profile, cpu=8000, gpu=16000, grading=1500)


@lru_cache(maxsize=4)
def _translation_data(num_train: int, split: TranslationSplit) -> Seq2SeqData:
    from utils.data import translation_data

    return translation_data(num_train, split.num_valid, split.num_test, min_len=split.min_len,
                            max_len=split.max_len, seed=split.seed)


def translation_splits(profile: Profile) -> Seq2SeqData:
    """`Seq2SeqData` of English -> French, its test split = `TRANSLATION_TEST`."""
    return _translation_data(_num_train(profile), TRANSLATION_TEST)


@torch.no_grad()
def translate(model: nn.Module, data: Seq2SeqData, examples: Sequence[Pair], device: torch.device | str,
              batch_size: int = 200) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """Greedy translations of `examples` (pairs): (hypotheses, references, source lengths)."""
    vocab = data.tgt_vocab
    hyps, refs, lengths = [], [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = data.batch(chunk).to(device)
        out = model.translate(batch.src, batch.src_mask, bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                              max_len=2 * batch.src.shape[1] + 4)  # (B, T)
        hyps += [[vocab.token(i) for i in row] for row in strip_special(out.cpu(), vocab.eos_id)]
        refs += [p.tgt_tokens for p in chunk]
        lengths += [len(p.src_tokens) for p in chunk]
    return hyps, refs, lengths


def _test_scores(model: nn.Module, data: Seq2SeqData, split: TranslationSplit,
                 device: torch.device | str) -> dict[str, Any]:
    """BLEU of greedy translations of the test split, overall and per source-length bucket."""
    hyps, refs, lengths = translate(model, data, data.test, device)
    frame = bleu_by_length(hyps, refs, lengths, split.buckets)
    return {"bleu": bleu(hyps, refs), "bleu_by_length": dict(zip(frame.bucket, frame.BLEU, strict=True)),
            "sentences_by_length": dict(zip(frame.bucket, frame.sentences.astype(int), strict=True))}


def _bleu_details(info: dict[str, Any]) -> dict[str, Any]:
    return {"bleu_by_length": info["bleu_by_length"], "sentences_by_length": info["sentences_by_length"],
            "losses": info["losses"]}


# ------------------------------------------------------------------------ lessons 03-04: GRU encoder-decoders


@dataclass(frozen=True)
class TranslationRun:
    """Everything that decides a trained recurrent English -> French model (the cache key)."""

    attention: str  # "none" (lesson 03), "additive" or "dot" (lesson 04)
    num_train: int
    steps: int
    batch_size: int = 32
    lr: float = 1e-2
    embed_dim: int = 32
    hidden_size: int = 64
    attention_dim: int = 64
    clip_norm: float = 1.0
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    split: TranslationSplit = TRANSLATION_TEST


def _recurrent_run(profile: Profile, attention: str) -> TranslationRun:
    return TranslationRun(
        attention, _num_train(profile),
        steps=profile.choose(cpu=900, gpu=2000, grading=40),
        batch_size=profile.choose(cpu=32, gpu=64, grading=32),
        embed_dim=profile.choose(cpu=32, gpu=64, grading=32),
        hidden_size=profile.choose(cpu=64, gpu=128, grading=64),
        attention_dim=profile.choose(cpu=64, gpu=128, grading=64),
        lr=profile.choose(cpu=1e-2, gpu=5e-3, grading=1e-2),
        clip_norm=profile.choose(cpu=1.0, gpu=5.0, grading=1.0),
    )


def gru_seq2seq_run(profile: Profile) -> TranslationRun:
    """The reference GRU encoder-decoder of lesson 03 (no attention), sized by the profile."""
    return _recurrent_run(profile, "none")


def attention_seq2seq_run(profile: Profile) -> TranslationRun:
    """The reference encoder-decoder with additive (Bahdanau) attention of lesson 04."""
    return _recurrent_run(profile, "additive")


def build_translation_model(run: TranslationRun, src_vocab_size: int, tgt_vocab_size: int) -> nn.Module:
    """The untrained encoder-decoder that `run` describes (weights drawn under `run.seed`)."""
    from utils.models.seq2seq import Seq2SeqConfig, build_seq2seq

    config = Seq2SeqConfig(src_vocab_size, tgt_vocab_size, embed_dim=run.embed_dim,
                           hidden_size=run.hidden_size, attention=run.attention,
                           attention_dim=run.attention_dim)
    return seeded(run.seed, lambda: build_seq2seq(config))


def translation_loss(model: nn.Module, batch: Seq2SeqBatch) -> torch.Tensor:
    """Teacher-forced cross-entropy of an encoder-decoder on a `Seq2SeqBatch` (padding skipped)."""
    logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0)


def train_translation(run: TranslationRun, device: torch.device | str, desc: str
                      ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the encoder-decoder `run` describes, with its BLEU."""
    data = _translation_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        # Fused on the CPU, where the optimiser step is a tenth of a training step; on a GPU the
        # default (foreach) AdamW, already fast there, so that the GPU results stay as they were.
        optimizer = (adamw(model.parameters(), lr=run.lr) if torch.device(device).type == "cpu"
                     else torch.optim.AdamW(model.parameters(), lr=run.lr))
        # One cycle: a short warm-up, then a long decay; it converges in few steps.
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=run.lr,
                                                        total_steps=max(run.steps, 1), pct_start=0.1)
        loader = data.loader("train", run.batch_size, seed=run.seed)
        log = seeded(run.seed, lambda: train(model, loader, translation_loss, steps=run.steps,
                                             optimizer=optimizer, scheduler=scheduler,
                                             clip_norm=run.clip_norm, device=device, desc=desc))
        return {**_test_scores(model, data, run.split, device), "train_seconds": log.seconds,
                "losses": log.losses}

    return cached_run(f"translation-{run.attention}", run,
                      lambda: build_translation_model(run, len(data.src_vocab), len(data.tgt_vocab)),
                      fit, device=device)


def gru_seq2seq(profile: Profile, device: torch.device | str) -> tuple[nn.Module, Result]:
    """Lesson 03's GRU encoder-decoder, trained (or cached), with its `Result`."""
    run = gru_seq2seq_run(profile)
    model, info = train_translation(run, device, desc="GRU encoder-decoder")
    return model, result_row(TASK, "GRU encoder-decoder", "03_seq2seq_rnn", "BLEU", "bleu", model, info,
                             run.split.describe(), _bleu_details(info))


def attention_seq2seq(profile: Profile, device: torch.device | str) -> tuple[nn.Module, Result]:
    """Lesson 04's encoder-decoder with additive attention, trained (or cached), with its `Result`."""
    run = attention_seq2seq_run(profile)
    model, info = train_translation(run, device, desc="GRU encoder-decoder + attention")
    return model, result_row(TASK, "GRU encoder-decoder + additive attention", "04_attention_seq2seq",
                             "BLEU", "bleu", model, info, run.split.describe(), _bleu_details(info))


# ------------------------------------------------------------------------ lesson 08: the Transformer


@dataclass(frozen=True)
class TransformerRun:
    """Everything that decides a trained translation Transformer (the cache key)."""

    num_train: int
    steps: int
    batch_size: int = 32
    d_model: int = 96
    num_heads: int = 4
    d_ff: int = 192
    num_layers: int = 1  # encoder layers = decoder layers
    dropout: float = 0.0
    peak_lr: float = 5e-3
    warmup_steps: int = 60
    smoothing: float = 0.1
    clip_norm: float = 1.0
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    split: TranslationSplit = TRANSLATION_TEST


def transformer_run(profile: Profile) -> TransformerRun:
    """Lesson 08's reference Transformer, sized by the profile. On the CPU it trains for as many
    steps, with as large batches, as lessons 03 and 04's recurrent models."""
    recurrent = attention_seq2seq_run(profile)
    return TransformerRun(
        num_train=recurrent.num_train, steps=recurrent.steps, batch_size=recurrent.batch_size,
        d_model=profile.choose(cpu=96, gpu=256, grading=32),
        num_heads=profile.choose(cpu=4, gpu=8, grading=4),
        d_ff=profile.choose(cpu=192, gpu=1024, grading=64),
        num_layers=profile.choose(cpu=1, gpu=3, grading=1),
        dropout=profile.choose(cpu=0.0, gpu=0.1, grading=0.0),
        peak_lr=profile.choose(cpu=5e-3, gpu=1e-3, grading=5e-3),
        warmup_steps=profile.choose(cpu=60, gpu=200, grading=10),
    )


def build_transformer(run: TransformerRun, src_vocab_size: int, tgt_vocab_size: int,
                      max_len: int | None = None) -> nn.Module:
    """The untrained Transformer that `run` describes (weights drawn under `run.seed`);
    `max_len` positions (default: twice the split's longest source, plus room)."""
    from utils.models.translation_transformer import Transformer, TransformerConfig

    config = TransformerConfig(src_vocab_size, tgt_vocab_size, d_model=run.d_model, num_heads=run.num_heads,
                               d_ff=run.d_ff, num_encoder_layers=run.num_layers,
                               num_decoder_layers=run.num_layers, dropout=run.dropout,
                               max_len=max_len or 2 * run.split.max_len + 8)
    return seeded(run.seed, lambda: Transformer(config))


def transformer_loss(smoothing: float) -> Callable[[nn.Module, Seq2SeqBatch], torch.Tensor]:
    """`loss_fn(model, batch)` for `utils.training.train`: label-smoothed teacher forcing."""
    from utils.models.translation_transformer import label_smoothed_loss

    def loss_fn(model: nn.Module, batch: Seq2SeqBatch) -> torch.Tensor:
        logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
        return label_smoothed_loss(logits, batch.tgt_out, smoothing, ignore_index=0)

    return loss_fn


def _train_transformer(model: nn.Module, data: Seq2SeqData, run: TransformerRun, device: torch.device | str,
                       desc: str) -> TrainLog:
    """The lesson 08 recipe: AdamW, the warm-up schedule, label smoothing."""
    from utils.models.translation_transformer import warmup_scheduler

    model.to(device)
    optimizer = adamw(model.parameters(), lr=1.0, betas=(0.9, 0.98), weight_decay=0.01)
    scheduler = warmup_scheduler(optimizer, run.d_model, run.warmup_steps, peak_lr=run.peak_lr)
    loader = data.loader("train", run.batch_size, seed=run.seed)
    return seeded(run.seed, lambda: train(model, loader, transformer_loss(run.smoothing),
                                          steps=run.steps, optimizer=optimizer, scheduler=scheduler,
                                          clip_norm=run.clip_norm, device=device, desc=desc))


def train_transformer(run: TransformerRun, device: torch.device | str, desc: str = "Transformer"
                      ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the Transformer `run` describes, with its BLEU."""
    data = _translation_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        log = _train_transformer(model, data, run, device, desc)
        return {**_test_scores(model, data, run.split, device), "train_seconds": log.seconds,
                "losses": log.losses}

    return cached_run("translation-transformer", run,
                      lambda: build_transformer(run, len(data.src_vocab), len(data.tgt_vocab)), fit,
                      device=device)


def transformer_translation(profile: Profile, device: torch.device | str) -> tuple[nn.Module, Result]:
    """Lesson 08's Transformer, trained (or cached), with its `Result` on the shared test split."""
    run = transformer_run(profile)
    model, info = train_transformer(run, device)
    return model, result_row(TASK, "Transformer encoder-decoder", "08_transformer_translation", "BLEU",
                             "bleu", model, info, run.split.describe(), _bleu_details(info))


def gru_seq2seq_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The row of lesson 03's GRU encoder-decoder in the translation table
    (`utils.results.EXPERIMENTS`)."""
    return gru_seq2seq(profile, device)[1]


def attention_seq2seq_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The row of lesson 04's encoder-decoder with attention in the translation table."""
    return attention_seq2seq(profile, device)[1]


def transformer_translation_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The row of lesson 08's Transformer in the translation table."""
    return transformer_translation(profile, device)[1]


# ------------------------------------------------------------------------ lesson 08: real pairs


@dataclass(frozen=True)
class TatoebaRun:
    """The Transformer of lesson 08 on real Tatoeba pairs (GPU profile; the cache key)."""

    transformer: TransformerRun
    max_len: int = 12  # English tokens
    min_freq: int = 2  # rarer words become <unk>
    num_test: int = 1000
    path: str | None = None  # a local copy instead of the download


def tatoeba_run(profile: Profile, path: str | None = None) -> TatoebaRun:
    """The real-data run: lesson 08's Transformer at the profile's size, longer, on Tatoeba."""
    base = transformer_run(profile)
    steps = profile.choose(cpu=base.steps, gpu=6000, grading=base.steps)
    return TatoebaRun(replace(base, num_train=0, steps=steps, batch_size=128, dropout=0.1), path=path)


def tatoeba_transformer(profile: Profile, device: torch.device | str, path: str | None = None
                        ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load) lesson 08's Transformer on Tatoeba English -> French; raises the data
    loader's error (no network and no cached copy) for the caller to fall back on synthetic data.

    Returns the model and {"bleu", "test_pairs", "train_pairs", "examples": [(English, model,
    reference), ...], "train_seconds"}.
    """
    from utils.data import tatoeba_data

    spec = tatoeba_run(profile, path)
    run = spec.transformer
    data = tatoeba_data(None, 500, spec.num_test, max_len=spec.max_len, min_freq=spec.min_freq,
                        path=spec.path)
    longest = max(max(len(p.src_tokens), len(p.tgt_tokens)) for s in data.splits.values() for p in s)

    def fit(model: nn.Module) -> dict[str, Any]:
        log = _train_transformer(model, data, run, device, "Transformer on Tatoeba")
        hyps, refs, _ = translate(model, data, data.test, device)
        examples = [(p.src, " ".join(h), p.tgt) for p, h in zip(data.test[:8], hyps[:8], strict=True)]
        return {"bleu": bleu(hyps, refs), "test_pairs": len(refs), "train_pairs": len(data.train),
                "examples": examples, "train_seconds": log.seconds}

    key = {"run": repr(spec), "train_pairs": len(data.train), "src_vocab": len(data.src_vocab),
           "tgt_vocab": len(data.tgt_vocab)}
    build = lambda: build_transformer(run, len(data.src_vocab), len(data.tgt_vocab),  # noqa: E731
                                      max_len=2 * longest + 8)
    return cached_run("translation-transformer-tatoeba", key, build, fit, device=device)
