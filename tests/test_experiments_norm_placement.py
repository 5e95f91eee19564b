"""utils.experiments.norm_placement: lesson 07's pre-norm / post-norm race and the token
spread it reports, at the grading size (seconds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils.experiments import norm_placement
from utils.experiments.common import ReviewTask, review_data
from utils.runtime import Profile

GRADING = Profile("grading")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))


@pytest.mark.parametrize("name", ["grading", "cpu", "gpu"])
def test_the_norm_race_differs_only_in_the_norm_placement(name: str) -> None:
    pre, post = norm_placement.norm_runs(Profile(name))
    assert pre.norm_first and not post.norm_first
    assert dataclasses.replace(pre, norm_first=False) == post


def test_the_asserted_norm_races_use_six_layers_of_width_64_at_the_measured_rates() -> None:
    # The rates and sizes at which post-norm collapsed and pre-norm learned in every measured run
    # (norm_runs): 0.008 on the CPU, 0.007 on the GPU.
    cpu, gpu = norm_placement.norm_runs(Profile("cpu"))[0], norm_placement.norm_runs(Profile("gpu"))[0]
    for run, lr in ((cpu, 8e-3), (gpu, 7e-3)):
        assert (run.num_layers, run.d_model, run.batch_size, run.lr) == (6, 64, 64, lr)
    assert cpu.task.max_len < gpu.task.max_len and cpu.steps < gpu.steps  # the CPU's race is cheaper
    assert norm_placement.norm_runs(GRADING)[0].steps < cpu.steps


@pytest.mark.parametrize(("name", "count"), [("grading", 1), ("cpu", 3), ("gpu", 3)])
def test_pre_norm_repeats_the_race_s_pre_norm_run_with_new_seeds_only(name: str, count: int) -> None:
    pre, _ = norm_placement.norm_runs(Profile(name))
    runs = norm_placement.pre_norm_repeats(Profile(name))
    assert len(runs) == count and runs[0] == pre  # the first shares the post-norm run's weights
    assert len({run.seed for run in runs}) == count
    assert all(dataclasses.replace(run, seed=pre.seed) == pre for run in runs)  # same reviews, rate, size


def test_pre_norm_repeats_move_with_course_seed(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_SEED", "0")
    first = {run.seed for run in norm_placement.pre_norm_repeats(Profile("cpu"))}
    monkeypatch.setenv("COURSE_SEED", "1")
    second = {run.seed for run in norm_placement.pre_norm_repeats(Profile("cpu"))}
    assert first != second


def test_a_norm_run_records_every_step_its_token_spread_and_whether_it_diverged() -> None:
    tiny = ReviewTask(num_train=100, num_test=20)
    run = dataclasses.replace(norm_placement.norm_runs(GRADING)[1], steps=4, task=tiny)
    model, info = norm_placement.train_norm_variant(run, "cpu")
    assert not model.config.norm_first
    assert info["diverged"] in (True, False)
    assert len(info["losses"]) == 4 or info["diverged"]
    assert 0 <= info["token_spread"] <= 1 or info["diverged"]


class _Encoder(torch.nn.Module):
    """An encoder that returns the given vectors (B, T, D), whatever the tokens."""

    def __init__(self, h: torch.Tensor) -> None:
        super().__init__()
        self.h = h

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.h[:, : tokens.shape[1]], mask


def test_token_spread_is_zero_when_every_token_of_a_review_comes_out_the_same() -> None:
    data = review_data(ReviewTask(num_train=100, num_test=20))
    reviews = data.test[:3]
    length = data.batch(reviews).tokens.shape[1]
    per_review = torch.randn(3, 1, 8)  # one vector per review, repeated at every position
    assert norm_placement.token_spread(_Encoder(per_review.expand(3, length, 8)), data, reviews, "cpu") < 1e-6
    spread = norm_placement.token_spread(_Encoder(torch.randn(3, length, 8)), data, reviews, "cpu")
    assert 0.5 < spread <= 1  # independent random vectors: spread = sqrt(1 - 1/T) on average


def test_token_spread_ignores_padding() -> None:
    data = review_data(ReviewTask(num_train=100, num_test=20))
    by_length = sorted(data.test, key=lambda r: len(r.text.split()))
    reviews = [by_length[0], by_length[-1]]
    batch = data.batch(reviews)
    assert not batch.mask.all()  # the short review is padded
    h = torch.randn(1, 1, 8).repeat(2, batch.tokens.shape[1], 1)  # (2, T, 8): constant at real tokens
    h[~batch.mask] = 100.0  # padding positions hold something else entirely
    assert norm_placement.token_spread(_Encoder(h), data, reviews, "cpu") < 1e-6


def test_a_diverging_run_is_reported_not_raised(monkeypatch) -> None:
    def explode(*args, **kwargs):
        raise FloatingPointError("the loss became nan")

    monkeypatch.setattr(norm_placement, "train", explode)
    task = ReviewTask(num_train=100, num_test=20)
    run = dataclasses.replace(norm_placement.norm_runs(GRADING)[0], steps=3, seed=7, task=task)
    _, info = norm_placement.train_norm_variant(run, "cpu")
    assert info["diverged"] is True
