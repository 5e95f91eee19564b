"""The text-to-text task of lesson 09: one decoder-only GPT trained on translation, sentence
compression (deleting words) and sentiment at once, each posed as text with a task prefix
("translate : ...", "summarize : ..." for the compression, "sentiment : ...") and one shared
vocabulary; short sentences, so that a small GPT learns all three on a CPU in seconds.

- `text_to_text_splits(profile)`: the three tasks' data (test split `TEXT_TO_TEXT_TEST`).
- `gpt_text_to_text(profile, device)`: the GPT, trained (or loaded from the cache by
  `utils.run_cache.cached_run`), with one `Result` per task: BLEU for translation and
  compression, accuracy for sentiment, and the exact match of each.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from utils.decoding import strip_special
from utils.experiments.common import Result, adamw, seeded, train_size
from utils.metrics import bleu
from utils.run_cache import cached_run
from utils.runtime import Profile, run_seed
from utils.training import count_parameters, train

if TYPE_CHECKING:
    from utils.data import LanguageModelBatch, Pair, Seq2SeqData

LESSON = "09_decoder_only_gpt"

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


def _num_train(profile: Profile) -> int:
    """Training pairs per task."""
    return train_size(profile, cpu=2000, gpu=8000, grading=500)


@lru_cache(maxsize=4)
def _text_to_text_data(num_train: int, split: TextToTextSplit) -> Seq2SeqData:
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


def text_to_text_splits(profile: Profile) -> Seq2SeqData:
    """`Seq2SeqData` of the three tasks with one shared vocabulary (test = `TEXT_TO_TEXT_TEST`)."""
    return _text_to_text_data(_num_train(profile), TEXT_TO_TEXT_TEST)


def task_of(pair: Pair) -> str:
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


def gpt_run(profile: Profile) -> GPTRun:
    """Lesson 09's reference GPT, sized by the profile."""
    return GPTRun(
        num_train=_num_train(profile),
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
    return seeded(run.seed, lambda: GPT(config))


def answer_loss(model: nn.Module, batch: LanguageModelBatch) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens only, from a `LanguageModelBatch`."""
    from utils.models.gpt import IGNORE_INDEX

    targets = batch.targets.masked_fill(~batch.loss_mask, IGNORE_INDEX)  # (B, T): prompts count 0
    return model(batch.tokens, targets)


@torch.no_grad()
def generate_answers(model: nn.Module, data: Seq2SeqData, examples: Sequence[Pair],
                     device: torch.device | str, *, max_new_tokens: int = 16, use_cache: bool = True
                     ) -> list[str]:
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


def score_answers(examples: Sequence[Pair], answers: Sequence[str]) -> dict[str, dict[str, float]]:
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


def train_gpt(run: GPTRun, device: torch.device | str, desc: str = "GPT, three tasks"
              ) -> tuple[nn.Module, dict[str, Any]]:
    """Train (or load from the cache) the GPT `run` describes, with its scores per task."""
    data = _text_to_text_data(run.num_train, run.split)

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer = adamw(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=run.lr,
                                                        total_steps=max(run.steps, 1), pct_start=0.1)
        loader = data.loader("train", run.batch_size, seed=run.seed, decoder_only=True)
        log = seeded(run.seed, lambda: train(model, loader, answer_loss, steps=run.steps,
                                             optimizer=optimizer, scheduler=scheduler, device=device,
                                             desc=desc))
        answers = generate_answers(model, data, data.test, device)
        return {"scores": score_answers(data.test, answers), "train_seconds": log.seconds,
                "losses": log.losses}

    return cached_run("gpt-text-to-text", run, lambda: build_gpt(run, len(data.vocab)), fit, device=device)


_GPT_METRICS = {"translate": ("BLEU", "bleu"), "summarize": ("BLEU", "bleu"),
                "sentiment": ("accuracy (%)", "exact_match")}


def gpt_text_to_text(profile: Profile, device: torch.device | str) -> tuple[nn.Module, list[Result]]:
    """Lesson 09's GPT, trained (or cached), with one `Result` per task."""
    run = gpt_run(profile)
    model, info = train_gpt(run, device)
    rows = []
    for task in TASKS:
        metric, key = _GPT_METRICS[task]
        scores = info["scores"][task]
        rows.append(Result(
            task="text-to-text", model=f"GPT ({task})", lesson=LESSON, metric=metric,
            value=float(scores[key]), parameters=count_parameters(model),
            train_seconds=float(info["train_seconds"]), split=run.split.describe(),
            details={"exact_match": scores["exact_match"], "examples": scores["examples"]}))
    return model, rows


def gpt_translate_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The GPT's translation row of the text-to-text table (`utils.results.EXPERIMENTS`)."""
    return gpt_text_to_text(profile, device)[1][0]


def gpt_summarize_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The GPT's sentence-compression row (task "summarize") of the text-to-text table."""
    return gpt_text_to_text(profile, device)[1][1]


def gpt_sentiment_experiment(profile: Profile, device: torch.device | str) -> Result:
    """The GPT's sentiment row of the text-to-text table."""
    return gpt_text_to_text(profile, device)[1][2]
