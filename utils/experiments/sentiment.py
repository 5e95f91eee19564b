"""The sentiment task of the shared results table: lesson 01's GRU, lesson 02's dilated CNN and
lesson 07's Transformer encoder classify the same synthetic film reviews and are scored on the
same test split; lesson 07 then tests all three beyond the training distances.

The shared test split (chosen once, here; later lessons evaluate on exactly this one):
`SENTIMENT_TEST`, the "test" split of `utils.data.sentiment_data` with seed 0: 2400 synthetic
reviews of at most 36 tokens whose deciding cue (the opinion word) lies 1 to 24 tokens from the
end, about 100 reviews per distance, balanced labels. Metric: accuracy in percent;
`Result.details["accuracy_by_distance"]` maps each cue distance to the accuracy there. It is
drawn before the training split, from a stream of its own, so it does not depend on the
profile's training size.

- `sentiment_splits(profile)`: the data (train, valid, test and the vocabulary).
- `gru_sentiment`, `cnn_sentiment`, `transformer_sentiment`: a trained model with its `Result`
  (trained once, then loaded from the cache by `utils.run_cache.cached_run`).
- `far_cue_accuracy(models, data, device)`: lesson 07's test on fresh reviews whose cue lies
  farther from the end than any training review's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from utils.experiments.common import (
    Result,
    accuracy_on_test,
    classification_loss,
    predict,
    result_row,
    seeded,
    train_size,
)
from utils.run_cache import cached_run
from utils.runtime import Profile, run_seed
from utils.training import train

if TYPE_CHECKING:
    from utils.data import ClassificationData, Review
    from utils.models.encoder_classifier import EncoderClassifier

TASK = "sentiment"
METRIC = "accuracy (%)"

# ------------------------------------------------------------------------ the shared test split


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


SENTIMENT_TEST = SentimentSplit()


def _num_train(profile: Profile) -> int:
    return train_size(profile, cpu=4000, gpu=8000, grading=1000)


@lru_cache(maxsize=4)
def _sentiment_data(num_train: int, split: SentimentSplit) -> ClassificationData:
    from utils.data import sentiment_data

    return sentiment_data(num_train, split.num_valid, split.num_test, max_len=split.max_len,
                          cue_distance=split.cue_distance, seed=split.seed)


def sentiment_splits(profile: Profile) -> ClassificationData:
    """`ClassificationData` of the sentiment task, its test split = `SENTIMENT_TEST`."""
    return _sentiment_data(_num_train(profile), SENTIMENT_TEST)


def accuracy_by_distance(model: nn.Module, data: ClassificationData, examples: Sequence[Review],
                         device: torch.device | str, correct: torch.Tensor | None = None) -> dict[int, float]:
    """Accuracy (%) of a classifier for each cue distance of the reviews in `examples`
    (`correct`: the bool (N,) hits, if already computed)."""
    if correct is None:
        correct = predict(model, data, examples, device) == torch.tensor([r.label for r in examples])
    distances = torch.tensor([r.cue_distance for r in examples])
    return {int(d): 100 * correct[distances == d].float().mean().item() for d in distances.unique()}


# ------------------------------------------------------------------------ lessons 01-02: GRU and CNN


@dataclass(frozen=True)
class SentimentRun:
    """Everything that decides a trained GRU or CNN sentiment classifier (the cache key)."""

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


def gru_sentiment_run(profile: Profile) -> SentimentRun:
    """The reference GRU sentiment classifier of lesson 01, sized by the profile."""
    return SentimentRun("gru", _num_train(profile),
                        steps=profile.choose(cpu=800, gpu=1500, grading=40),
                        hidden_size=profile.choose(cpu=64, gpu=128, grading=64))


def cnn_sentiment_run(profile: Profile) -> SentimentRun:
    """The reference dilated-CNN sentiment classifier of lesson 02 (receptive field 15)."""
    return SentimentRun("cnn", _num_train(profile),
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

    return seeded(run.seed, make)


def train_sentiment(run: SentimentRun, device: torch.device | str, desc: str
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the classifier `run` describes; returns it and its metrics."""
    data = _sentiment_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        loader = data.loader("train", run.batch_size, seed=run.seed)
        log = seeded(run.seed, lambda: train(model, loader, classification_loss, steps=run.steps,
                                             lr=run.lr, device=device, desc=desc))
        correct = predict(model, data, data.test, device) == torch.tensor([r.label for r in data.test])
        by_distance = accuracy_by_distance(model, data, data.test, device, correct)
        return {"accuracy": 100 * correct.float().mean().item(), "accuracy_by_distance": by_distance,
                "train_seconds": log.seconds, "losses": log.losses}

    return cached_run(f"sentiment-{run.architecture}", run,
                      lambda: build_sentiment_model(run, len(data.vocab)), fit, device=device)


def gru_sentiment(profile: Profile, device: torch.device | str) -> tuple[nn.Module, Result]:
    """Lesson 01's GRU sentiment classifier, trained (or cached), with its `Result`."""
    run = gru_sentiment_run(profile)
    model, info = train_sentiment(run, device, desc="GRU sentiment classifier")
    return model, result_row(TASK, "GRU classifier", "01_sequences_and_rnns", METRIC, "accuracy",
                             model, info, run.split.describe(),
                             {"accuracy_by_distance": info["accuracy_by_distance"], "losses": info["losses"]})


def cnn_sentiment(profile: Profile, device: torch.device | str) -> tuple[nn.Module, Result]:
    """Lesson 02's dilated-CNN sentiment classifier, trained (or cached), with its `Result`."""
    run = cnn_sentiment_run(profile)
    model, info = train_sentiment(run, device, desc="CNN sentiment classifier")
    return model, result_row(TASK, "dilated CNN classifier", "02_convolutional_baselines", METRIC,
                             "accuracy", model, info, run.split.describe(),
                             {"accuracy_by_distance": info["accuracy_by_distance"], "losses": info["losses"],
                              "receptive_field": model.receptive_field})


# ------------------------------------------------------------------------ lesson 07: the Transformer


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


def transformer_sentiment_run(profile: Profile) -> TransformerSentimentRun:
    """Lesson 07's reference encoder classifier, sized by the profile; the same training
    reviews as the GRU and the CNN (`sentiment_splits`)."""
    return TransformerSentimentRun(
        num_train=len(sentiment_splits(profile).train),
        steps=profile.choose(cpu=700, gpu=1500, grading=40),
        num_layers=profile.choose(cpu=1, gpu=2, grading=1),
        # Two layers at the CPU's peak rate, 0.01, stalled in one run of seven (COURSE_SEED 6: 85 %
        # test accuracy, a loss of 0.23 at the end; lesson 07's far-cue claims failed). At 0.005
        # ten runs of ten (COURSE_SEED 0-9, on a CPU at these sizes) reached 98.0-100 %, every
        # cue bucket 97 % or more.
        lr=profile.choose(cpu=1e-2, gpu=5e-3),
    )


def build_transformer_classifier(run: TransformerSentimentRun, vocab_size: int) -> EncoderClassifier:
    """The untrained classifier that `run` describes (weights drawn under `run.seed`)."""
    from utils.models.encoder_classifier import EncoderClassifier, EncoderClassifierConfig

    config = EncoderClassifierConfig(
        vocab_size, num_classes=2, d_model=run.d_model, num_heads=run.num_heads,
        num_layers=run.num_layers, d_ff=run.d_ff, max_len=run.split.max_len,
        pooling=run.pooling, positions=run.positions)
    return seeded(run.seed, lambda: EncoderClassifier(config))


def _one_cycle(model: nn.Module, lr: float, steps: int, warmup: float
               ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a one-cycle schedule: `warmup` of the steps up to `lr`, then down to ~0."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, foreach=True)  # one call for all tensors
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1),
                                                    pct_start=warmup)
    return optimizer, scheduler


def train_transformer_sentiment(run: TransformerSentimentRun, device: torch.device | str,
                                data: ClassificationData, desc: str = "Transformer sentiment classifier"
                                ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the classifier `run` describes, with its test metrics."""

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer, scheduler = _one_cycle(model, run.lr, run.steps, run.warmup)
        loader = data.loader("train", run.batch_size, seed=run.seed)
        log = seeded(run.seed, lambda: train(model, loader, classification_loss, steps=run.steps,
                                             optimizer=optimizer, scheduler=scheduler, device=device,
                                             desc=desc))
        return {"accuracy": accuracy_on_test(model, data, device),
                "accuracy_by_distance": accuracy_by_distance(model, data, data.test, device),
                "train_seconds": log.seconds, "losses": log.losses}

    return cached_run("sentiment-transformer", run,
                      lambda: build_transformer_classifier(run, len(data.vocab)), fit, device=device)


def transformer_sentiment(profile: Profile, device: torch.device | str) -> tuple[nn.Module, Result]:
    """Lesson 07's Transformer sentiment classifier, trained (or cached), with its `Result`."""
    run = transformer_sentiment_run(profile)
    model, info = train_transformer_sentiment(run, device, sentiment_splits(profile))
    return model, result_row(TASK, "Transformer encoder classifier", "07_transformer_encoder", METRIC,
                             "accuracy", model, info, run.split.describe(),
                             {"accuracy_by_distance": info["accuracy_by_distance"], "losses": info["losses"]})


def gru_sentiment_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The row of lesson 01's GRU in the sentiment table (`utils.results.EXPERIMENTS`)."""
    return gru_sentiment(profile, device)[1]


def cnn_sentiment_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The row of lesson 02's dilated CNN in the sentiment table."""
    return cnn_sentiment(profile, device)[1]


def transformer_sentiment_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The row of lesson 07's Transformer in the sentiment table."""
    return transformer_sentiment(profile, device)[1]


# ------------------------------------------------------------------------ lesson 07: far cues


FAR_CUE_BUCKETS = ((1, 24), (25, 48), (49, 96), (97, 192))  # the first one = the training range


def far_cue_accuracy(models: Mapping[str, nn.Module], data: ClassificationData, device: torch.device | str,
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
            correct = predict(model, data, reviews, device) == labels
            table[name][f"{low}-{high}"] = 100 * correct.float().mean().item()
    return table


@torch.no_grad()
def _pooled_accuracy(model: EncoderClassifier, data: ClassificationData, reviews: Sequence[Review],
                     device: torch.device | str, pools: Mapping[str, tuple[int, int]] | None = None
                     ) -> dict[str, float]:
    """Accuracy (%) of an encoder classifier whose mean pooling keeps, for each named pool
    (lo, hi), only the real tokens lo..hi tokens away from the opinion word (encoded once)."""
    from utils.models.encoder_classifier import masked_mean

    model.eval()
    batch = data.batch(reviews).to(device)
    h, mask = model.encode(batch.tokens, batch.mask)  # (B, T, D), (B, T)
    opinion = torch.tensor([r.cue[1] - 1 for r in reviews], device=h.device)  # (B,)
    offset = (torch.arange(h.shape[1], device=h.device)[None, :] - opinion[:, None]).abs()  # (B, T)
    labels = torch.tensor([r.label for r in reviews])
    out = {}
    for name, (lo, hi) in (pools or {"all": (0, h.shape[1])}).items():
        keep = mask & (offset >= lo) & (offset <= hi)  # (B, T)
        out[name] = 100 * (model.head(masked_mean(h, keep)).argmax(-1).cpu() == labels).float().mean().item()
    return out


def far_cue_diagnosis(model: EncoderClassifier, data: ClassificationData, device: torch.device | str,
                      far: tuple[int, int] = FAR_CUE_BUCKETS[-1], num: int = 600) -> dict[str, float]:
    """Why the Transformer loses points on far cues: accuracy (%) on the far-cue reviews of
    `far_cue_accuracy` (cue `far` tokens from the end, up to far[1] + 12 tokens long), on near-cue
    reviews (1-24 tokens from the end) as long as they are on average, and on the far-cue reviews
    with the mean pooling restricted to the tokens within half a training review (17 tokens) of the
    opinion word, or to those farther from it than any training offset (35 tokens)."""
    longest = far[1] + 12
    far_reviews = data.draw_test(num, max_len=longest, cue_distance=far)
    # Far-cue lengths spread over far[0] + 9 .. longest, skewed long: near-cue reviews drawn from
    # the upper half of that range have about the same mean length (a test checks it).
    near_reviews = data.draw_test(num, min_len=(far[0] + longest) // 2, max_len=longest, cue_distance=(1, 24))
    trained = SENTIMENT_TEST.max_len - 1  # the largest offset between two training tokens
    table = {"near cue, as long": _pooled_accuracy(model, data, near_reviews, device)["all"]}
    pools = {"far cue": (0, longest), "far cue, pooled near the cue": (0, trained // 2),
             "far cue, pooled beyond trained offsets": (trained + 1, longest)}
    return {**_pooled_accuracy(model, data, far_reviews, device, pools), **table}
