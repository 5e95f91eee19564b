"""What the reference runs share: the row of the results table (`Result`), weights drawn under
a run's own seed (`seeded`), the course's AdamW, a classifier's loss and predictions, and the
short-review task of lessons 06 and 07.

Each task module (`sentiment`, `translation`, `text_to_text`, `attention_heads`,
`norm_placement`) describes its runs as frozen dataclasses, the cache keys of
`utils.run_cache.cached_run`: trained once, then loaded from disk by any notebook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from utils.runtime import Profile, run_seed
from utils.training import count_parameters

if TYPE_CHECKING:
    from utils.data import ClassificationBatch, ClassificationData, Review

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """One model's result on a task's shared test split: one row of `utils.results.table`."""

    task: str  # "sentiment", "translation", ...
    model: str  # what the table shows, e.g. "GRU encoder-decoder"
    lesson: str  # the lesson that introduces the model, e.g. "03_seq2seq_rnn"
    metric: str  # "accuracy", "BLEU", ...
    value: float
    parameters: int
    train_seconds: float
    split: str  # which test set, e.g. "synthetic test, seed 0, 400 pairs"
    details: dict[str, Any] = field(default_factory=dict)  # e.g. BLEU per length bucket


def result_row(task: str, name: str, lesson: str, metric: str, value_key: str, model: nn.Module,
               info: dict[str, Any], split: str, details: dict[str, Any]) -> Result:
    """The `Result` of a trained `model` whose metrics `info` came from `cached_run`."""
    return Result(task=task, model=name, lesson=lesson, metric=metric, value=float(info[value_key]),
                  parameters=count_parameters(model), train_seconds=float(info["train_seconds"]),
                  split=split, details=details)


def train_size(profile: Profile, *, cpu: int, gpu: int, grading: int) -> int:
    """How many training examples a run draws at this profile."""
    return int(profile.choose(cpu=cpu, gpu=gpu, grading=grading))


def seeded(seed: int, fn: Callable[[], T]) -> T:
    """Run `fn` under `seed` without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def adamw(params: Iterable[nn.Parameter], **options: Any) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where this torch supports it (on the CPU since 2.4): the
    optimiser step of a small model is otherwise a tenth to a fifth of its training time."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, **options)


# ------------------------------------------------------------------------ classifiers


def classification_loss(model: nn.Module, batch: ClassificationBatch) -> torch.Tensor:
    """Cross-entropy of a classifier on a `ClassificationBatch`."""
    return F.cross_entropy(model(batch.tokens, batch.mask), batch.label)


@torch.no_grad()
def predict(model: nn.Module, data: ClassificationData, examples: Sequence[Review],
            device: torch.device | str, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels (N,) of a classifier on `examples`, in their order."""
    model.eval()
    out = []
    for start in range(0, len(examples), batch_size):
        batch = data.batch(examples[start : start + batch_size]).to(device)
        out.append(model(batch.tokens, batch.mask).argmax(-1).cpu())
    return torch.cat(out)


def accuracy_on_test(model: nn.Module, data: ClassificationData, device: torch.device | str) -> float:
    """Accuracy (%) of a classifier on the test split of `data`."""
    correct = predict(model, data, data.test, device) == torch.tensor([r.label for r in data.test])
    return 100 * correct.float().mean().item()


# ------------------------------------------------------------------------ short reviews


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
def review_data(task: ReviewTask) -> ClassificationData:
    """`ClassificationData` of the short-review task (built once per process)."""
    from utils.data import sentiment_data

    return sentiment_data(task.num_train, task.num_valid, task.num_test, max_len=task.max_len,
                          cue_distance=task.cue_distance, seed=task.seed)
