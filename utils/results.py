"""The course's shared results table: every model's metric, size and training time on the
same test split, so that lessons compare like with like.

Notebooks are independent, so the table is not a file that one notebook writes and another
reads. Each lesson's reference runs are *experiments*, listed in `EXPERIMENTS` below (the
runs themselves live in `utils/experiments/`, one module per task);
`results.table(task, up_to=lesson)` runs every experiment of that task up to that lesson
(each cached on disk by `utils.run_cache.cached_run`, so only the first call trains) and
returns one pandas row per model. A later lesson "appends" to the table by adding its
experiment to the list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch

from utils.experiments import sentiment, text_to_text, translation
from utils.experiments.common import Result
from utils.runtime import Profile


@dataclass(frozen=True)
class Experiment:
    """One row of the table: the reference run `name` of `lesson`, on `task`'s shared test split."""

    name: str
    task: str
    lesson: str
    run: Callable[[Profile, torch.device | str], Result]  # trains (or loads) the model, scores it


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("gru-sentiment", "sentiment", "01_sequences_and_rnns", sentiment.gru_sentiment_experiment),
    Experiment("cnn-sentiment", "sentiment", "02_convolutional_baselines",
               sentiment.cnn_sentiment_experiment),
    Experiment("gru-seq2seq", "translation", "03_seq2seq_rnn", translation.gru_seq2seq_experiment),
    Experiment("attention-seq2seq", "translation", "04_attention_seq2seq",
               translation.attention_seq2seq_experiment),
    Experiment("transformer-sentiment", "sentiment", "07_transformer_encoder",
               sentiment.transformer_sentiment_experiment),
    Experiment("transformer-translation", "translation", "08_transformer_translation",
               translation.transformer_translation_experiment),
    Experiment("gpt-translate", "text-to-text", "09_decoder_only_gpt", text_to_text.gpt_translate_experiment),
    Experiment("gpt-summarize", "text-to-text", "09_decoder_only_gpt", text_to_text.gpt_summarize_experiment),
    Experiment("gpt-sentiment", "text-to-text", "09_decoder_only_gpt", text_to_text.gpt_sentiment_experiment),
)


def experiments(task: str | None = None, up_to: str | None = None,
                among: Sequence[Experiment] = EXPERIMENTS) -> list[Experiment]:
    """The experiments of `task` whose lesson is `up_to` or earlier, in lesson order."""
    chosen = [e for e in among if (task is None or e.task == task) and (up_to is None or e.lesson <= up_to)]
    return sorted(chosen, key=lambda e: (e.lesson, e.name))


def run(name: str, profile: Profile, device: torch.device | str) -> Result:
    """Run (or load from the cache) one experiment of `EXPERIMENTS`."""
    found = {e.name: e for e in EXPERIMENTS}
    if name not in found:
        raise KeyError(f"no experiment {name!r}; there are: {sorted(found)}")
    return found[name].run(profile, device)


def to_frame(rows: list[Result]) -> pd.DataFrame:
    """Results as a table, one row per model, without the nested details."""
    records = [{k: v for k, v in asdict(r).items() if k != "details"} for r in rows]
    frame = pd.DataFrame.from_records(records)
    return frame.round({"value": 2, "train_seconds": 1}) if not frame.empty else frame


def table(task: str, *, up_to: str, profile: Profile, device: torch.device | str,
          among: Sequence[Experiment] = EXPERIMENTS) -> pd.DataFrame:
    """The shared results table of `task` so far: every experiment up to lesson `up_to`."""
    return to_frame([e.run(profile, device) for e in experiments(task, up_to, among)])
