"""Part II reference runs (lessons 05-07): the Transformer encoder classifier of the shared
sentiment table, and the small trainings lessons 06 and 07 look inside.

- `transformer_sentiment(profile, device)`: lesson 07's encoder classifier, trained on the
  same reviews as lesson 01's GRU and lesson 02's CNN (`part1.sentiment_splits`) and
  scored on the same test split (`part1.SENTIMENT_TEST`), registered as the experiment
  "transformer-sentiment" of the results table.
- `far_cue_accuracy(models, data, buckets, ...)`: lesson 07's test beyond the training
  distances: fresh reviews whose cue lies farther from the end than any training review's.
- `train_heads_model(run, device)`: lesson 06's one-layer, four-head classifier on short
  reviews, whose attention heads the lesson inspects.
- `train_norm_variant(run, device)`: lesson 07's pre-norm / post-norm comparison at a high
  learning rate, without warm-up or gradient clipping (`norm_runs` sizes it).

Every run is a frozen dataclass (the cache key of `utils.training.cached_run`): trained once,
then loaded from disk by any notebook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from utils import results
from utils.experiments import part1
from utils.experiments.part1 import SENTIMENT_TEST, SentimentSplit
from utils.models.encoder_classifier import EncoderClassifier, EncoderClassifierConfig
from utils.runtime import run_seed
from utils.training import cached_run, count_parameters, train

LESSON_07 = "07_transformer_encoder"


def _seeded(seed: int, fn: Callable[[], Any]) -> Any:
    """Run `fn` under `seed` without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def _one_cycle(model: nn.Module, lr: float, steps: int, warmup: float
               ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a one-cycle schedule: `warmup` of the steps up to `lr`, then down to ~0."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, foreach=True)  # one call for all tensors
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1),
                                                    pct_start=warmup)
    return optimizer, scheduler


# ------------------------------------------------------------------------ lesson 07: the table


@dataclass(frozen=True)
class TransformerSentimentRun:
    """Everything that decides the trained Transformer sentiment classifier (the cache key)."""

    num_train: int
    steps: int
    batch_size: int = 64
    lr: float = 1e-2  # peak of the one-cycle schedule
    warmup: float = 0.1  # share of the steps spent warming up
    d_model: int = 32
    num_heads: int = 4
    num_layers: int = 1
    d_ff: int = 64
    positions: str = "rotary"  # relative positions learn "not ... good" fastest (lesson 06)
    pooling: str = "mean"
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED
    split: SentimentSplit = SENTIMENT_TEST


def transformer_sentiment_run(profile: Any) -> TransformerSentimentRun:
    """Lesson 07's reference encoder classifier, sized by the profile; the same training
    reviews as the GRU and the CNN of Part I (`part1.sentiment_splits`)."""
    return TransformerSentimentRun(
        num_train=len(part1.sentiment_splits(profile).train),
        steps=profile.choose(cpu=700, gpu=1500, grading=40),
        num_layers=profile.choose(cpu=1, gpu=2, grading=1),
    )


def build_transformer_classifier(run: TransformerSentimentRun, vocab_size: int) -> EncoderClassifier:
    """The untrained classifier that `run` describes (weights drawn under `run.seed`)."""
    config = EncoderClassifierConfig(
        vocab_size, num_classes=2, d_model=run.d_model, num_heads=run.num_heads,
        num_layers=run.num_layers, d_ff=run.d_ff, max_len=run.split.max_len,
        pooling=run.pooling, positions=run.positions)
    return _seeded(run.seed, lambda: EncoderClassifier(config))


def train_transformer_sentiment(run: TransformerSentimentRun, device: Any, data: Any,
                                desc: str = "Transformer sentiment classifier"
                                ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the classifier `run` describes, with its test metrics."""

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer, scheduler = _one_cycle(model, run.lr, run.steps, run.warmup)
        loader = data.loader("train", run.batch_size, seed=run.seed)
        log = _seeded(run.seed, lambda: train(model, loader, part1.classification_loss, steps=run.steps,
                                              optimizer=optimizer, scheduler=scheduler, device=device,
                                              desc=desc))
        labels = torch.tensor([r.label for r in data.test])
        correct = part1.predict(model, data, data.test, device) == labels
        return {"accuracy": 100 * correct.float().mean().item(),
                "accuracy_by_distance": part1.accuracy_by_distance(model, data, data.test, device),
                "train_seconds": log.seconds, "losses": log.losses}

    build = lambda: build_transformer_classifier(run, len(data.vocab))
    return cached_run("sentiment-transformer", run, build, fit, device=device)


def transformer_sentiment(profile: Any, device: Any) -> tuple[nn.Module, results.Result]:
    """Lesson 07's Transformer sentiment classifier, trained (or cached), with its `Result`."""
    run = transformer_sentiment_run(profile)
    data = part1.sentiment_splits(profile)
    model, info = train_transformer_sentiment(run, device, data)
    return model, results.Result(
        task="sentiment", model="Transformer encoder classifier", lesson=LESSON_07, metric="accuracy (%)",
        value=float(info["accuracy"]), parameters=count_parameters(model),
        train_seconds=float(info["train_seconds"]), split=run.split.describe(),
        details={"accuracy_by_distance": info["accuracy_by_distance"], "losses": info["losses"]})


@results.experiment("transformer-sentiment", task="sentiment", lesson=LESSON_07)
def transformer_sentiment_experiment(profile: Any, device: Any) -> results.Result:
    return transformer_sentiment(profile, device)[1]


FAR_CUE_BUCKETS = ((1, 24), (25, 48), (49, 96), (97, 192))  # the first one = the training range


def far_cue_accuracy(models: Mapping[str, nn.Module], data: Any, device: Any,
                     buckets: Sequence[tuple[int, int]] = FAR_CUE_BUCKETS, num_per_bucket: int = 400
                     ) -> dict[str, dict[str, float]]:
    """Accuracy (%) of each classifier on fresh test reviews whose cue lies `low`-`high` tokens
    from the end, for each bucket: {model name: {"low-high": accuracy}}.

    Every model sees the same reviews: `data.draw_test` draws them once per bucket (balanced
    labels, none of them in the training or validation split), long enough to hold the cue.
    """
    table: dict[str, dict[str, float]] = {name: {} for name in models}
    for low, high in buckets:
        # The opinion clause needs up to 9 tokens before the cue: room for it at any distance.
        reviews = data.draw_test(num_per_bucket, max_len=high + 12, cue_distance=(low, high))
        labels = torch.tensor([r.label for r in reviews])
        for name, model in models.items():
            correct = part1.predict(model, data, reviews, device) == labels
            table[name][f"{low}-{high}"] = 100 * correct.float().mean().item()
    return table


# ------------------------------------------------------------------------ lesson 06: heads


@dataclass(frozen=True)
class ReviewTask:
    """Short reviews for the small trainings of lessons 06 and 07 (quick to train on a CPU)."""

    num_train: int = 3000
    num_valid: int = 100
    num_test: int = 500
    max_len: int = 20
    cue_distance: tuple[int, int] = (1, 8)
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED


@lru_cache(maxsize=4)
def review_data(task: ReviewTask) -> Any:
    """`ClassificationData` of the short-review task (built once per process)."""
    from utils.data import sentiment_data

    return sentiment_data(task.num_train, task.num_valid, task.num_test, max_len=task.max_len,
                          cue_distance=task.cue_distance, seed=task.seed)


@dataclass(frozen=True)
class HeadsRun:
    """Lesson 06's classifier whose heads are inspected: one layer, so every head reads the
    embeddings directly and its weights are easy to interpret."""

    task: ReviewTask
    steps: int = 500
    batch_size: int = 64
    lr: float = 3e-3
    d_model: int = 32
    num_heads: int = 4
    num_layers: int = 1
    positions: str = "rotary"
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED


def heads_run(profile: Any) -> HeadsRun:
    """Lesson 06's run, sized by the profile. A GPU runs the CPU size: the model is tiny, and
    the point is to look inside it, not to train it longer."""
    return HeadsRun(ReviewTask(num_train=profile.choose(cpu=3000, grading=1000)),
                    steps=profile.choose(cpu=500, grading=60))


def train_heads_model(run: HeadsRun, device: Any) -> tuple[EncoderClassifier, dict[str, Any]]:
    """Train (or load from the cache) lesson 06's classifier; info holds its test accuracy."""
    data = review_data(run.task)
    config = EncoderClassifierConfig(len(data.vocab), 2, d_model=run.d_model, num_heads=run.num_heads,
                                     num_layers=run.num_layers, d_ff=2 * run.d_model,
                                     max_len=run.task.max_len, positions=run.positions)

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, foreach=True)
        log = _seeded(run.seed, lambda: train(model, data.loader("train", run.batch_size, seed=run.seed),
                                              part1.classification_loss, steps=run.steps, optimizer=optimizer,
                                              device=device, desc="classifier with 4 heads"))
        correct = part1.predict(model, data, data.test, device) == torch.tensor([r.label for r in data.test])
        return {"accuracy": 100 * correct.float().mean().item(), "train_seconds": log.seconds,
                "losses": log.losses}

    return cached_run("heads-classifier", run, lambda: _seeded(run.seed, lambda: EncoderClassifier(config)),
                      fit, device=device)


# ------------------------------------------------------------------------ lesson 07: norms


@dataclass(frozen=True)
class NormRun:
    """One side of lesson 07's pre-norm / post-norm race: same model, data and learning
    rate, no warm-up and no gradient clipping; only the place of the LayerNorms differs."""

    norm_first: bool
    task: ReviewTask
    lr: float = 7e-3  # Adam's rate from the very first step (no warm-up); see `norm_runs`
    steps: int = 180
    batch_size: int = 64
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 6
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED


def norm_runs(profile: Any) -> tuple[NormRun, NormRun]:
    """(pre-norm, post-norm) runs of lesson 07, sized by the profile.

    Six layers of width 64 at a constant 0.007: over seeds 0-4, with 1 and 2 CPU threads and
    on a GPU, every post-norm run collapsed to chance while every pre-norm run learned.
    Post-norm's trouble grows with the width and depth of the stack: at width 32, or with 4
    layers, some post-norm runs survived this rate, and at 0.01 pre-norm often stalls too.
    The CPU races short reviews (at most 12 tokens): both runs take 10-13 s on one thread; the GPU
    races the usual 20-token reviews, for longer.
    """
    short = ReviewTask(num_train=2000, max_len=12, cue_distance=(1, 3))
    task = profile.choose(cpu=short, gpu=ReviewTask(num_train=2000),
                          grading=dataclasses.replace(short, num_train=500))
    steps = profile.choose(cpu=180, gpu=250, grading=20)
    layers = profile.choose(cpu=6, grading=2)
    return tuple(NormRun(first, task, steps=steps, num_layers=layers) for first in (True, False))


def token_spread(model: EncoderClassifier, data: Any, reviews: Sequence, device: Any) -> float:
    """How much the encoder's output vectors differ between the tokens of a review, relative to
    their size (rms over the real tokens), averaged over `reviews`: 0 = every token the same."""
    batch = data.batch(reviews).to(device)
    with torch.no_grad():
        h, mask = model.encode(batch.tokens, batch.mask)  # (B, T, D), (B, T)
    weights = mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1): 1 at real tokens
    count = weights.sum(dim=(1, 2))  # (B,)
    mean = (h * weights).sum(dim=1, keepdim=True) / count[:, None, None]  # (B, 1, D)
    spread = (((h - mean) ** 2 * weights).sum(dim=(1, 2)) / count).sqrt()  # (B,)
    size = ((h**2 * weights).sum(dim=(1, 2)) / count).sqrt()  # (B,)
    return (spread / size.clamp_min(1e-12)).mean().item()


def train_norm_variant(run: NormRun, device: Any) -> tuple[EncoderClassifier, dict[str, Any]]:
    """Train one side of the race; info holds every step's loss, the test accuracy and the
    `token_spread` of the trained encoder on the test reviews.

    A loss that turns non-finite ends the run early (`diverged` is then True)."""
    data = review_data(run.task)
    config = EncoderClassifierConfig(len(data.vocab), 2, d_model=run.d_model, num_heads=run.num_heads,
                                     num_layers=run.num_layers, d_ff=2 * run.d_model,
                                     max_len=run.task.max_len, norm_first=run.norm_first,
                                     positions="rotary")
    name = "pre-norm" if run.norm_first else "post-norm"

    def fit(model: nn.Module) -> dict[str, Any]:
        from utils.training import TrainLog

        log, diverged = TrainLog(), False
        model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, foreach=True)
        try:
            _seeded(run.seed, lambda: train(model, data.loader("train", run.batch_size, seed=run.seed),
                                            part1.classification_loss, steps=run.steps, optimizer=optimizer,
                                            clip_norm=None, device=device, desc=name, log=log))
        except FloatingPointError:
            diverged = True
        model.eval()
        correct = part1.predict(model, data, data.test, device) == torch.tensor([r.label for r in data.test])
        return {"accuracy": 100 * correct.float().mean().item(), "losses": log.losses, "diverged": diverged,
                "token_spread": token_spread(model, data, data.test, device), "train_seconds": log.seconds}

    return cached_run(f"norm-{name}", run, lambda: _seeded(run.seed, lambda: EncoderClassifier(config)),
                      fit, device=device)
