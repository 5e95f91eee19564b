"""utils.experiments.attention_heads: lesson 06's one-layer classifier whose heads are inspected."""

from __future__ import annotations

import dataclasses

import pytest

from utils.experiments import attention_heads
from utils.experiments.common import ReviewTask
from utils.runtime import Profile

GRADING = Profile("grading")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))


def test_the_heads_model_has_one_layer_of_four_rotary_heads() -> None:
    tiny = ReviewTask(num_train=200, num_test=50)
    run = dataclasses.replace(attention_heads.heads_run(GRADING), steps=5, task=tiny)
    model, info = attention_heads.train_heads_model(run, "cpu")
    assert len(model.blocks) == 1 and model.blocks[0].self_attn.num_heads == 4
    assert model.config.positions == "rotary"
    assert len(info["losses"]) == 5 and 0 <= info["accuracy"] <= 100
