"""The course's shared results table: every model's metric, size and training time on the
same test split, so that lessons compare like with like.

Notebooks are independent, so the table is not a file that one notebook writes and another
reads. Each lesson registers its reference runs as *experiments* (in `utils/experiments/`);
`results.table(task, up_to=lesson)` runs every experiment of that task up to that lesson
(each cached on disk by `utils.training.cached_run`, so only the first call trains) and
returns one pandas row per model. A later lesson "appends" to the table by registering its own.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Result:
    """One model's result on a task's shared test split."""

    task: str  # "sentiment", "translation", ...
    model: str  # what the table shows, e.g. "GRU encoder-decoder"
    lesson: str  # the lesson that introduces the model, e.g. "03_seq2seq_rnn"
    metric: str  # "accuracy", "BLEU", ...
    value: float
    parameters: int
    train_seconds: float
    split: str  # which test set, e.g. "synthetic test, seed 0, 400 pairs"
    details: dict[str, Any] = field(default_factory=dict)  # e.g. BLEU per length bucket


@dataclass(frozen=True)
class Experiment:
    name: str
    task: str
    lesson: str
    run: Callable[..., Result]  # run(profile, device) -> Result


_REGISTRY: dict[str, Experiment] = {}


def experiment(name: str, *, task: str, lesson: str) -> Callable:
    """Register `fn(profile, device) -> Result` as the reference run `name` of `lesson`."""

    def register(fn: Callable[..., Result]) -> Callable[..., Result]:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        _REGISTRY[name] = Experiment(name, task, lesson, fn)
        return fn

    return register


def _load_all() -> None:
    """Import every module of utils.experiments: importing one registers its experiments."""
    import utils.experiments

    for module in pkgutil.iter_modules(utils.experiments.__path__):
        importlib.import_module(f"utils.experiments.{module.name}")


def experiments(task: str | None = None, up_to: str | None = None) -> list[Experiment]:
    """Registered experiments of `task` whose lesson is `up_to` or earlier, in lesson order."""
    _load_all()
    chosen = [e for e in _REGISTRY.values()
              if (task is None or e.task == task) and (up_to is None or e.lesson <= up_to)]
    return sorted(chosen, key=lambda e: (e.lesson, e.name))


def run(name: str, profile: Any, device: Any) -> Result:
    """Run (or load from the cache) one registered experiment."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"no experiment {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name].run(profile, device)


def to_frame(rows: list[Result]) -> pd.DataFrame:
    """Results as a table, one row per model, without the nested details."""
    records = [{k: v for k, v in asdict(r).items() if k != "details"} for r in rows]
    frame = pd.DataFrame.from_records(records)
    return frame.round({"value": 2, "train_seconds": 1}) if not frame.empty else frame


def table(task: str, *, up_to: str, profile: Any, device: Any) -> pd.DataFrame:
    """The shared results table of `task` so far: every registered model up to lesson `up_to`."""
    return to_frame([e.run(profile, device) for e in experiments(task, up_to)])
