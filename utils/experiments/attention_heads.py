"""Lesson 06's look inside attention: a one-layer, four-head Transformer classifier trained on
short reviews (`common.ReviewTask`), whose heads the lesson inspects. One layer, so that every
head reads the embeddings directly and its weights are easy to interpret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from utils.experiments.common import ReviewTask, accuracy_on_test, classification_loss, review_data, seeded
from utils.models.encoder_classifier import EncoderClassifier, EncoderClassifierConfig
from utils.run_cache import cached_run
from utils.runtime import Profile, run_seed
from utils.training import train


@dataclass(frozen=True)
class HeadsRun:
    """Lesson 06's classifier whose heads are inspected (the cache key)."""

    task: ReviewTask
    steps: int = 500
    batch_size: int = 64
    lr: float = 3e-3
    d_model: int = 32
    num_heads: int = 4
    num_layers: int = 1
    positions: str = "rotary"
    seed: int = field(default_factory=run_seed)  # 0, shifted by COURSE_SEED


def heads_run(profile: Profile) -> HeadsRun:
    """Lesson 06's run, sized by the profile. A GPU runs the CPU size: the model is tiny, and
    the point is to look inside it, not to train it longer."""
    return HeadsRun(ReviewTask(num_train=profile.choose(cpu=3000, grading=1000)),
                    steps=profile.choose(cpu=500, grading=60))


def train_heads_model(run: HeadsRun, device: torch.device | str) -> tuple[EncoderClassifier, dict[str, Any]]:
    """Train (or load from the cache) lesson 06's classifier; info holds its test accuracy."""
    data = review_data(run.task)
    config = EncoderClassifierConfig(len(data.vocab), 2, d_model=run.d_model, num_heads=run.num_heads,
                                     num_layers=run.num_layers, d_ff=2 * run.d_model,
                                     max_len=run.task.max_len, positions=run.positions)

    def fit(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr, foreach=True)
        log = seeded(run.seed, lambda: train(model, data.loader("train", run.batch_size, seed=run.seed),
                                             classification_loss, steps=run.steps, optimizer=optimizer,
                                             device=device, desc="classifier with 4 heads"))
        return {"accuracy": accuracy_on_test(model, data, device), "train_seconds": log.seconds,
                "losses": log.losses}

    return cached_run("heads-classifier", run, lambda: seeded(run.seed, lambda: EncoderClassifier(config)),
                      fit, device=device)
