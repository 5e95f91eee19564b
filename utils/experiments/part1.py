"""Part I reference runs (lessons 01-04): the models of the shared results table for the
tasks "sentiment" and "translation", and the test splits every later lesson reuses.

The shared test splits (chosen once, here; later lessons evaluate on exactly these):

- `SENTIMENT_TEST`: the "test" split of `utils.data.sentiment_data` with seed 0: 2400
  synthetic film reviews of at most 36 tokens whose deciding cue (the opinion word) lies
  1 to 24 tokens from the end, about 100 reviews per distance, balanced labels. Metric:
  accuracy in percent; `Result.details["accuracy_by_distance"]` maps each cue distance to
  the accuracy there (lesson 07 plots a Transformer against these).
- `TRANSLATION_TEST`: the "test" split of `utils.data.translation_data` (English -> French)
  with seed 0: 600 sentence pairs of 4 to 20 English tokens. Metric: corpus BLEU
  (`utils.metrics.bleu`) of greedy translations; `Result.details["bleu_by_length"]` maps a
  source-length bucket ("4-7", "8-11", "12-15", "16-20") to its BLEU.

Both splits are drawn before the training split, from streams of their own, so they do not
depend on the profile's training size. Use `sentiment_splits(profile)` and
`translation_splits(profile)` to get the data (train, valid, test and vocabularies), and
`gru_sentiment`, `cnn_sentiment`, `gru_seq2seq`, `attention_seq2seq` to get a trained model
with its `Result` (trained once, then loaded from the cache by `utils.training.cached_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from utils import results
from utils.decoding import strip_special
from utils.metrics import bleu, bleu_by_length
from utils.runtime import run_seed
from utils.training import cached_run, count_parameters, train

# ------------------------------------------------------------------------ shared test splits


@dataclass(frozen=True)
class SentimentSplit:
    """Which reviews the sentiment models are trained and tested on."""

    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    num_test: int = 2400
    num_valid: int = 200
    max_len: int = 36  # tokens, final "." included
    cue_distance: tuple[int, int] = (1, 24)  # tokens after the opinion word

    def describe(self) -> str:
        low, high = self.cue_distance
        return (f"synthetic reviews, seed {self.seed}, {self.num_test} test reviews, "
                f"cue {low}-{high} tokens from the end")


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


SENTIMENT_TEST = SentimentSplit()
TRANSLATION_TEST = TranslationSplit()


def _num_train(profile: Any, cpu: int, gpu: int, grading: int) -> int:
    return int(profile.choose(cpu=cpu, gpu=gpu, grading=grading))


@lru_cache(maxsize=4)
def _sentiment_data(num_train: int, split: SentimentSplit) -> Any:
    from utils.data import sentiment_data

    return sentiment_data(num_train, split.num_valid, split.num_test, max_len=split.max_len,
                          cue_distance=split.cue_distance, seed=split.seed)


@lru_cache(maxsize=4)
def _translation_data(num_train: int, split: TranslationSplit) -> Any:
    from utils.data import translation_data

    return translation_data(num_train, split.num_valid, split.num_test, min_len=split.min_len,
                            max_len=split.max_len, seed=split.seed)


def sentiment_splits(profile: Any) -> Any:
    """`ClassificationData` of the sentiment task, its test split = `SENTIMENT_TEST`."""
    return _sentiment_data(_num_train(profile, cpu=4000, gpu=8000, grading=1000), SENTIMENT_TEST)


def translation_splits(profile: Any) -> Any:
    """`Seq2SeqData` of English -> French, its test split = `TRANSLATION_TEST`."""
    return _translation_data(_num_train(profile, cpu=8000, gpu=16000, grading=1500), TRANSLATION_TEST)


# ------------------------------------------------------------------------ evaluation


@torch.no_grad()
def predict(model: nn.Module, data: Any, examples: Sequence, device: Any,
            batch_size: int = 500) -> torch.Tensor:
    """Predicted labels (N,) of a classifier on `examples`, in their order."""
    model.eval()
    out = []
    for start in range(0, len(examples), batch_size):
        batch = data.batch(examples[start : start + batch_size]).to(device)
        out.append(model(batch.tokens, batch.mask).argmax(-1).cpu())
    return torch.cat(out)


def accuracy_by_distance(model: nn.Module, data: Any, examples: Sequence, device: Any,
                         correct: torch.Tensor | None = None) -> dict[int, float]:
    """Accuracy (%) of a classifier for each cue distance of the reviews in `examples`
    (`correct`: the bool (N,) hits, if already computed)."""
    if correct is None:
        correct = predict(model, data, examples, device) == torch.tensor([r.label for r in examples])
    distances = torch.tensor([r.cue_distance for r in examples])
    return {int(d): 100 * correct[distances == d].float().mean().item() for d in distances.unique()}


@torch.no_grad()
def translate(model: nn.Module, data: Any, examples: Sequence, device: Any,
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


# ------------------------------------------------------------------------ training recipes


def _seeded(seed: int, fn: Callable[[], Any]) -> Any:
    """Run `fn` under `seed` without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def adamw(params: Any, **options: Any) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where this torch supports it (on the CPU since 2.4): the
    optimiser step of a small model is otherwise a tenth to a fifth of its training time."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, **options)


@dataclass(frozen=True)
class SentimentRun:
    """Everything that decides a trained sentiment classifier (the cache key)."""

    architecture: str  # "gru" or "cnn"
    num_train: int
    steps: int
    batch_size: int = 64
    lr: float = 3e-3
    embed_dim: int = 32  # GRU; the CNN's width is d_model
    hidden_size: int = 64
    d_model: int = 64
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4)
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    split: SentimentSplit = SENTIMENT_TEST


def gru_sentiment_run(profile: Any) -> SentimentRun:
    """The reference GRU sentiment classifier of lesson 01, sized by the profile."""
    return SentimentRun("gru", _num_train(profile, cpu=4000, gpu=8000, grading=1000),
                        steps=profile.choose(cpu=800, gpu=1500, grading=40),
                        hidden_size=profile.choose(cpu=64, gpu=128, grading=64))


def cnn_sentiment_run(profile: Any) -> SentimentRun:
    """The reference dilated-CNN sentiment classifier of lesson 02 (receptive field 15)."""
    return SentimentRun("cnn", _num_train(profile, cpu=4000, gpu=8000, grading=1000),
                        steps=profile.choose(cpu=800, gpu=2000, grading=40), lr=1e-2,
                        d_model=profile.choose(cpu=64, gpu=128, grading=64))


def build_sentiment_model(run: SentimentRun, vocab_size: int) -> nn.Module:
    """The untrained classifier that `run` describes (weights drawn under `run.seed`)."""
    from utils.models.cnn import CNNClassifier
    from utils.models.rnn import GRUClassifier

    def make() -> nn.Module:
        if run.architecture == "gru":
            return GRUClassifier(vocab_size, run.embed_dim, run.hidden_size)
        if run.architecture == "cnn":
            return CNNClassifier(vocab_size, run.d_model, kernel_size=run.kernel_size,
                                 dilations=run.dilations)
        raise ValueError(f"architecture must be 'gru' or 'cnn', got {run.architecture!r}")

    return _seeded(run.seed, make)


def classification_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Cross-entropy of a classifier on a `ClassificationBatch`."""
    return F.cross_entropy(model(batch.tokens, batch.mask), batch.label)


def train_sentiment(run: SentimentRun, device: Any, desc: str) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the classifier `run` describes; returns it and its metrics."""
    data = _sentiment_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        loader = data.loader("train", run.batch_size, seed=run.seed)
        log = _seeded(run.seed, lambda: train(model, loader, classification_loss, steps=run.steps,
                                              lr=run.lr, device=device, desc=desc))
        correct = predict(model, data, data.test, device) == torch.tensor([r.label for r in data.test])
        by_distance = accuracy_by_distance(model, data, data.test, device, correct)
        return {"accuracy": 100 * correct.float().mean().item(), "accuracy_by_distance": by_distance,
                "train_seconds": log.seconds, "losses": log.losses}

    return cached_run(f"sentiment-{run.architecture}", run,
                      lambda: build_sentiment_model(run, len(data.vocab)), fit, device=device)


@dataclass(frozen=True)
class TranslationRun:
    """Everything that decides a trained English -> French model (the cache key)."""

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


def _translation_run(profile: Any, attention: str) -> TranslationRun:
    return TranslationRun(
        attention, _num_train(profile, cpu=8000, gpu=16000, grading=1500),
        steps=profile.choose(cpu=900, gpu=2000, grading=40),
        batch_size=profile.choose(cpu=32, gpu=64, grading=32),
        embed_dim=profile.choose(cpu=32, gpu=64, grading=32),
        hidden_size=profile.choose(cpu=64, gpu=128, grading=64),
        attention_dim=profile.choose(cpu=64, gpu=128, grading=64),
        lr=profile.choose(cpu=1e-2, gpu=5e-3, grading=1e-2),
        clip_norm=profile.choose(cpu=1.0, gpu=5.0, grading=1.0),
    )


def gru_seq2seq_run(profile: Any) -> TranslationRun:
    """The reference GRU encoder-decoder of lesson 03 (no attention), sized by the profile."""
    return _translation_run(profile, "none")


def attention_seq2seq_run(profile: Any) -> TranslationRun:
    """The reference encoder-decoder with additive (Bahdanau) attention of lesson 04."""
    return _translation_run(profile, "additive")


def build_translation_model(run: TranslationRun, src_vocab_size: int, tgt_vocab_size: int) -> nn.Module:
    """The untrained encoder-decoder that `run` describes (weights drawn under `run.seed`)."""
    from utils.models.seq2seq import Seq2SeqConfig, build_seq2seq

    config = Seq2SeqConfig(src_vocab_size, tgt_vocab_size, embed_dim=run.embed_dim,
                           hidden_size=run.hidden_size, attention=run.attention,
                           attention_dim=run.attention_dim)
    return _seeded(run.seed, lambda: build_seq2seq(config))


def translation_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Teacher-forced cross-entropy of an encoder-decoder on a `Seq2SeqBatch` (padding skipped)."""
    logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0)


def train_translation(run: TranslationRun, device: Any, desc: str) -> tuple[nn.Module, dict[str, Any]]:
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
        log = _seeded(run.seed, lambda: train(model, loader, translation_loss, steps=run.steps,
                                              optimizer=optimizer, scheduler=scheduler,
                                              clip_norm=run.clip_norm, device=device, desc=desc))
        hyps, refs, lengths = translate(model, data, data.test, device)
        frame = bleu_by_length(hyps, refs, lengths, run.split.buckets)
        return {"bleu": bleu(hyps, refs), "bleu_by_length": dict(zip(frame.bucket, frame.BLEU, strict=True)),
                "sentences_by_length": dict(zip(frame.bucket, frame.sentences.astype(int), strict=True)),
                "train_seconds": log.seconds, "losses": log.losses}

    return cached_run(f"translation-{run.attention}", run,
                      lambda: build_translation_model(run, len(data.src_vocab), len(data.tgt_vocab)),
                      fit, device=device)


# ------------------------------------------------------------------------ registered experiments


def _result(task: str, name: str, lesson: str, metric: str, value_key: str, model: nn.Module,
            info: dict[str, Any], split: str, details: dict[str, Any]) -> results.Result:
    return results.Result(task=task, model=name, lesson=lesson, metric=metric, value=float(info[value_key]),
                          parameters=count_parameters(model), train_seconds=float(info["train_seconds"]),
                          split=split, details=details)


def gru_sentiment(profile: Any, device: Any) -> tuple[nn.Module, results.Result]:
    """Lesson 01's GRU sentiment classifier, trained (or cached), with its `Result`."""
    run = gru_sentiment_run(profile)
    model, info = train_sentiment(run, device, desc="GRU sentiment classifier")
    return model, _result("sentiment", "GRU classifier", "01_sequences_and_rnns", "accuracy (%)", "accuracy",
                          model, info, run.split.describe(),
                          {"accuracy_by_distance": info["accuracy_by_distance"], "losses": info["losses"]})


def cnn_sentiment(profile: Any, device: Any) -> tuple[nn.Module, results.Result]:
    """Lesson 02's dilated-CNN sentiment classifier, trained (or cached), with its `Result`."""
    run = cnn_sentiment_run(profile)
    model, info = train_sentiment(run, device, desc="CNN sentiment classifier")
    return model, _result("sentiment", "dilated CNN classifier", "02_convolutional_baselines", "accuracy (%)",
                          "accuracy", model, info, run.split.describe(),
                          {"accuracy_by_distance": info["accuracy_by_distance"], "losses": info["losses"],
                           "receptive_field": model.receptive_field})


def gru_seq2seq(profile: Any, device: Any) -> tuple[nn.Module, results.Result]:
    """Lesson 03's GRU encoder-decoder, trained (or cached), with its `Result`."""
    run = gru_seq2seq_run(profile)
    model, info = train_translation(run, device, desc="GRU encoder-decoder")
    return model, _result("translation", "GRU encoder-decoder", "03_seq2seq_rnn", "BLEU", "bleu", model, info,
                          run.split.describe(), {"bleu_by_length": info["bleu_by_length"],
                                                 "sentences_by_length": info["sentences_by_length"],
                                                 "losses": info["losses"]})


def attention_seq2seq(profile: Any, device: Any) -> tuple[nn.Module, results.Result]:
    """Lesson 04's encoder-decoder with additive attention, trained (or cached), with its `Result`."""
    run = attention_seq2seq_run(profile)
    model, info = train_translation(run, device, desc="GRU encoder-decoder + attention")
    return model, _result("translation", "GRU encoder-decoder + additive attention", "04_attention_seq2seq",
                          "BLEU", "bleu", model, info, run.split.describe(),
                          {"bleu_by_length": info["bleu_by_length"],
                           "sentences_by_length": info["sentences_by_length"], "losses": info["losses"]})


@results.experiment("gru-sentiment", task="sentiment", lesson="01_sequences_and_rnns")
def gru_sentiment_experiment(profile: Any, device: Any) -> results.Result:
    return gru_sentiment(profile, device)[1]


@results.experiment("cnn-sentiment", task="sentiment", lesson="02_convolutional_baselines")
def cnn_sentiment_experiment(profile: Any, device: Any) -> results.Result:
    return cnn_sentiment(profile, device)[1]


@results.experiment("gru-seq2seq", task="translation", lesson="03_seq2seq_rnn")
def gru_seq2seq_experiment(profile: Any, device: Any) -> results.Result:
    return gru_seq2seq(profile, device)[1]


@results.experiment("attention-seq2seq", task="translation", lesson="04_attention_seq2seq")
def attention_seq2seq_experiment(profile: Any, device: Any) -> results.Result:
    return attention_seq2seq(profile, device)[1]

