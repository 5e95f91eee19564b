"""Part III reference runs (lessons 08-09): the Transformer's row of the shared translation
table, and the decoder-only GPT trained on three text-to-text tasks at once.

- `transformer_translation(profile, device)`: lesson 08's encoder-decoder Transformer, trained
  on the same English -> French data as lessons 03 and 04 (`part1.translation_splits`, test
  split `part1.TRANSLATION_TEST`), for the same number of steps with the same batch size, and
  scored the same way (greedy decoding, corpus BLEU, BLEU per source-length bucket).
- `text_to_text_splits(profile)`: translation, summarisation and sentiment as text-to-text
  pairs with a task prefix ("translate : ...", "summarize : ...", "sentiment : ..."), one
  shared vocabulary; short sentences, so that a small GPT learns all three on a CPU in seconds.
- `gpt_text_to_text(profile, device)`: lesson 09's GPT trained on the three tasks as one
  model, with exact match, BLEU and accuracy per task on the test split.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from utils import results
from utils.decoding import strip_special
from utils.experiments import part1
from utils.experiments.part1 import TRANSLATION_TEST, TranslationSplit, adamw
from utils.metrics import bleu, bleu_by_length
from utils.runtime import run_seed
from utils.training import cached_run, count_parameters, train

TRANSFORMER_LESSON = "08_transformer_translation"
GPT_LESSON = "09_decoder_only_gpt"


def _seeded(seed: int, fn: Any) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def _train_transformer(model: nn.Module, data: Any, run: Any, device: Any, desc: str) -> Any:
    """The lesson 08 recipe: AdamW, the warm-up schedule, label smoothing; returns the TrainLog."""
    from utils.models.translation_transformer import warmup_scheduler

    model.to(device)
    optimizer = adamw(model.parameters(), lr=1.0, betas=(0.9, 0.98), weight_decay=0.01)
    scheduler = warmup_scheduler(optimizer, run.d_model, run.warmup_steps, peak_lr=run.peak_lr)
    loader = data.loader("train", run.batch_size, seed=run.seed)
    return _seeded(run.seed, lambda: train(model, loader, transformer_loss(run.smoothing),
                                           steps=run.steps, optimizer=optimizer, scheduler=scheduler,
                                           clip_norm=run.clip_norm, device=device, desc=desc))


# ------------------------------------------------------------------------ lesson 08


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


def transformer_run(profile: Any) -> TransformerRun:
    """Lesson 08's reference Transformer, sized by the profile. On the CPU it trains for as many
    steps, with as large batches, as lessons 03 and 04's recurrent models."""
    recurrent = part1.attention_seq2seq_run(profile)
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
    return _seeded(run.seed, lambda: Transformer(config))


def transformer_loss(smoothing: float):
    """`loss_fn(model, batch)` for `utils.training.train`: label-smoothed teacher forcing."""
    from utils.models.translation_transformer import label_smoothed_loss

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
        return label_smoothed_loss(logits, batch.tgt_out, smoothing, ignore_index=0)

    return loss_fn


def train_transformer(run: TransformerRun, device: Any, desc: str = "Transformer"
                      ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the Transformer `run` describes, with its BLEU."""

    data = part1._translation_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        log = _train_transformer(model, data, run, device, desc)
        hyps, refs, lengths = part1.translate(model, data, data.test, device)
        frame = bleu_by_length(hyps, refs, lengths, run.split.buckets)
        return {"bleu": bleu(hyps, refs), "bleu_by_length": dict(zip(frame.bucket, frame.BLEU, strict=True)),
                "sentences_by_length": dict(zip(frame.bucket, frame.sentences.astype(int), strict=True)),
                "train_seconds": log.seconds, "losses": log.losses}

    return cached_run("translation-transformer", run,
                      lambda: build_transformer(run, len(data.src_vocab), len(data.tgt_vocab)), fit,
                      device=device)


def transformer_translation(profile: Any, device: Any) -> tuple[nn.Module, results.Result]:
    """Lesson 08's Transformer, trained (or cached), with its `Result` on the shared test split."""
    run = transformer_run(profile)
    model, info = train_transformer(run, device)
    return model, results.Result(
        task="translation", model="Transformer encoder-decoder", lesson=TRANSFORMER_LESSON, metric="BLEU",
        value=float(info["bleu"]), parameters=count_parameters(model),
        train_seconds=float(info["train_seconds"]), split=run.split.describe(),
        details={"bleu_by_length": info["bleu_by_length"],
                 "sentences_by_length": info["sentences_by_length"], "losses": info["losses"]})


@results.experiment("transformer-translation", task="translation", lesson=TRANSFORMER_LESSON)
def transformer_translation_experiment(profile: Any, device: Any) -> results.Result:
    return transformer_translation(profile, device)[1]


@dataclass(frozen=True)
class TatoebaRun:
    """The Transformer of lesson 08 on real Tatoeba pairs (GPU profile; the cache key)."""

    transformer: TransformerRun
    max_len: int = 12  # English tokens
    min_freq: int = 2  # rarer words become <unk>
    num_test: int = 1000
    path: str | None = None  # a local copy instead of the download


def tatoeba_run(profile: Any, path: str | None = None) -> TatoebaRun:
    """The real-data run: lesson 08's Transformer at the profile's size, longer, on Tatoeba."""
    base = transformer_run(profile)
    steps = profile.choose(cpu=base.steps, gpu=6000, grading=base.steps)
    return TatoebaRun(replace(base, num_train=0, steps=steps, batch_size=128, dropout=0.1), path=path)


def tatoeba_transformer(profile: Any, device: Any, path: str | None = None
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
        hyps, refs, _ = part1.translate(model, data, data.test, device)
        examples = [(p.src, " ".join(h), p.tgt) for p, h in zip(data.test[:8], hyps[:8], strict=True)]
        return {"bleu": bleu(hyps, refs), "test_pairs": len(refs), "train_pairs": len(data.train),
                "examples": examples, "train_seconds": log.seconds}

    key = {"run": repr(spec), "train_pairs": len(data.train), "src_vocab": len(data.src_vocab),
           "tgt_vocab": len(data.tgt_vocab)}
    build = lambda: build_transformer(run, len(data.src_vocab), len(data.tgt_vocab),  # noqa: E731
                                      max_len=2 * longest + 8)
    return cached_run("translation-transformer-tatoeba", key, build, fit, device=device)


# ------------------------------------------------------------------------ lesson 09

TASKS = ("translate", "summarize", "sentiment")


@dataclass(frozen=True)
class TextToTextSplit:
    """The three tasks of lesson 09, each with its own length range (English tokens)."""

    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    num_test: int = 200  # per task
    translate_len: tuple[int, int] = (4, 8)
    summarize_len: tuple[int, int] = (8, 12)
    sentiment_len: tuple[int, int] = (6, 12)
    cue_distance: tuple[int, int] = (1, 3)

    def describe(self) -> str:
        return (f"synthetic text-to-text, seed {self.seed}, {self.num_test} test pairs per task "
                f"(translate {self.translate_len[0]}-{self.translate_len[1]}, summarize "
                f"{self.summarize_len[0]}-{self.summarize_len[1]}, sentiment "
                f"{self.sentiment_len[0]}-{self.sentiment_len[1]} tokens)")


TEXT_TO_TEXT_TEST = TextToTextSplit()


@lru_cache(maxsize=4)
def _text_to_text_data(num_train: int, split: TextToTextSplit) -> Any:
    from utils.data import Pair, Seq2SeqData, sentiment_data, summary_data, translation_data
    from utils.data.sentiment import LABELS
    from utils.data.tasks import TASK_PREFIXES

    n, t, s = num_train, split.num_test, split.seed
    parts = {
        "translate": translation_data(n, 0, t, min_len=split.translate_len[0],
                                      max_len=split.translate_len[1], seed=s),
        "summarize": summary_data(n, 0, t, min_len=split.summarize_len[0], max_len=split.summarize_len[1],
                                  seed=s),
        "sentiment": sentiment_data(n, 0, t, min_len=split.sentiment_len[0], max_len=split.sentiment_len[1],
                                    cue_distance=split.cue_distance, seed=s),
    }
    splits = {}
    for name in ("train", "valid", "test"):
        items = []
        for task, data in parts.items():
            prefix = TASK_PREFIXES[task]
            for e in data.splits[name]:
                if task == "sentiment":
                    items.append(Pair(f"{prefix} {e.text}", LABELS[e.label]))
                else:
                    items.append(Pair(f"{prefix} {e.src}", e.tgt))
        random.Random(f"text2text/{name}/{s}").shuffle(items)
        splits[name] = items
    return Seq2SeqData("text2text", splits, s, shared_vocab=True)


def text_to_text_splits(profile: Any) -> Any:
    """`Seq2SeqData` of the three tasks with one shared vocabulary (test = `TEXT_TO_TEXT_TEST`)."""
    return _text_to_text_data(int(profile.choose(cpu=2000, gpu=8000, grading=500)), TEXT_TO_TEXT_TEST)


def task_of(pair: Any) -> str:
    """Which task a text-to-text pair poses, read from its prefix."""
    return pair.src.split(" ", 1)[0]


@dataclass(frozen=True)
class GPTRun:
    """Everything that decides lesson 09's trained GPT (the cache key)."""

    num_train: int  # per task
    steps: int
    batch_size: int = 32
    d_model: int = 64
    num_heads: int = 4
    d_ff: int = 256
    num_layers: int = 2
    max_len: int = 48
    dropout: float = 0.0
    lr: float = 1e-2
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    split: TextToTextSplit = TEXT_TO_TEXT_TEST


def gpt_run(profile: Any) -> GPTRun:
    """Lesson 09's reference GPT, sized by the profile."""
    return GPTRun(
        num_train=int(profile.choose(cpu=2000, gpu=8000, grading=500)),
        steps=profile.choose(cpu=1200, gpu=3000, grading=60),
        batch_size=profile.choose(cpu=32, gpu=64, grading=32),
        d_model=profile.choose(cpu=64, gpu=256, grading=32),
        num_heads=profile.choose(cpu=4, gpu=8, grading=4),
        d_ff=profile.choose(cpu=256, gpu=1024, grading=128),
        num_layers=profile.choose(cpu=2, gpu=4, grading=1),
        dropout=profile.choose(cpu=0.0, gpu=0.1, grading=0.0),
        lr=profile.choose(cpu=1e-2, gpu=2e-3, grading=1e-2),
    )


def build_gpt(run: GPTRun, vocab_size: int) -> nn.Module:
    """The untrained GPT that `run` describes (weights drawn under `run.seed`)."""
    from utils.models.gpt import GPT, GPTConfig

    config = GPTConfig(vocab_size, max_len=run.max_len, d_model=run.d_model, num_heads=run.num_heads,
                       num_layers=run.num_layers, d_ff=run.d_ff, dropout=run.dropout)
    return _seeded(run.seed, lambda: GPT(config))


def answer_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens only, from a `LanguageModelBatch`."""
    from utils.models.gpt import IGNORE_INDEX

    targets = batch.targets.masked_fill(~batch.loss_mask, IGNORE_INDEX)  # (B, T): prompts count 0
    return model(batch.tokens, targets)


@torch.no_grad()
def generate_answers(model: nn.Module, data: Any, examples: Sequence, device: Any, *,
                     max_new_tokens: int = 16, use_cache: bool = True) -> list[str]:
    """Greedy answers of a text-to-text GPT to `examples` (pairs), in their order.

    Prompts `<bos> source <sep>` of equal length are generated together (no padding needed,
    so no position ever sees a pad token).
    """
    from utils.data.tasks import SEP

    vocab = data.vocab
    prompts = [[vocab.bos_id, *vocab.encode(p.src), vocab.stoi[SEP]] for p in examples]
    by_length: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(i)
    answers: list[str] = [""] * len(examples)
    for length, rows in by_length.items():
        ids = torch.tensor([prompts[i] for i in rows], device=device)  # (N, length)
        room = min(max_new_tokens, model.config.max_len - length)
        out = model.generate(ids, room, eos_id=vocab.eos_id, use_cache=use_cache)  # (N, length + n)
        for i, row in zip(rows, strip_special(out[:, length:].cpu(), vocab.eos_id), strict=True):
            answers[i] = vocab.detokenize([vocab.token(t) for t in row])
    return answers


def score_answers(examples: Sequence, answers: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per task: exact match (%), BLEU and the number of examples."""
    scores = {}
    for task in TASKS:
        pairs = [(a, e.tgt) for e, a in zip(examples, answers, strict=True) if task_of(e) == task]
        if not pairs:
            continue
        exact = 100 * sum(a == ref for a, ref in pairs) / len(pairs)
        scores[task] = {"exact_match": exact, "examples": len(pairs),
                        "bleu": bleu([a.split() for a, _ in pairs], [ref.split() for _, ref in pairs])}
    return scores


def train_gpt(run: GPTRun, device: Any, desc: str = "GPT, three tasks") -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the GPT `run` describes, with its scores per task."""
    data = _text_to_text_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer = adamw(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=run.lr,
                                                        total_steps=max(run.steps, 1), pct_start=0.1)
        loader = data.loader("train", run.batch_size, seed=run.seed, decoder_only=True)
        log = _seeded(run.seed, lambda: train(model, loader, answer_loss, steps=run.steps,
                                              optimizer=optimizer, scheduler=scheduler, device=device,
                                              desc=desc))
        answers = generate_answers(model, data, data.test, device)
        return {"scores": score_answers(data.test, answers), "train_seconds": log.seconds,
                "losses": log.losses}

    return cached_run("gpt-text-to-text", run, lambda: build_gpt(run, len(data.vocab)), fit, device=device)


_GPT_METRICS = {"translate": ("BLEU", "bleu"), "summarize": ("BLEU", "bleu"),
                "sentiment": ("accuracy (%)", "exact_match")}


def gpt_text_to_text(profile: Any, device: Any) -> tuple[nn.Module, list[results.Result]]:
    """Lesson 09's GPT, trained (or cached), with one `Result` per task."""
    run = gpt_run(profile)
    model, info = train_gpt(run, device)
    rows = []
    for task in TASKS:
        metric, key = _GPT_METRICS[task]
        scores = info["scores"][task]
        rows.append(results.Result(
            task="text-to-text", model=f"GPT ({task})", lesson=GPT_LESSON, metric=metric,
            value=float(scores[key]), parameters=count_parameters(model),
            train_seconds=float(info["train_seconds"]), split=run.split.describe(),
            details={"exact_match": scores["exact_match"], "examples": scores["examples"]}))
    return model, rows


@results.experiment("gpt-translate", task="text-to-text", lesson=GPT_LESSON)
def gpt_translate_experiment(profile: Any, device: Any) -> results.Result:
    return gpt_text_to_text(profile, device)[1][0]


@results.experiment("gpt-summarize", task="text-to-text", lesson=GPT_LESSON)
def gpt_summarize_experiment(profile: Any, device: Any) -> results.Result:
    return gpt_text_to_text(profile, device)[1][1]


@results.experiment("gpt-sentiment", task="text-to-text", lesson=GPT_LESSON)
def gpt_sentiment_experiment(profile: Any, device: Any) -> results.Result:
    return gpt_text_to_text(profile, device)[1][2]
