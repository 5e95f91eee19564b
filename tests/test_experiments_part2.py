"""utils.experiments.part2: the Transformer of the shared sentiment table and the small
trainings of lessons 06-07, at the grading size (seconds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils import results
from utils.experiments import part1, part2
from utils.models.encoder_classifier import EncoderClassifier
from utils.runtime import Profile

GRADING = Profile("grading")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))


def _tiny(run, **changes):
    return dataclasses.replace(run, **changes)


def test_the_transformer_is_registered_in_lesson_07_of_the_sentiment_table() -> None:
    names = {e.name: e for e in results.experiments("sentiment", up_to="07_transformer_encoder")}
    assert names["transformer-sentiment"].lesson == "07_transformer_encoder"
    earlier = results.experiments("sentiment", up_to="06_multi_head_and_positions")
    assert "transformer-sentiment" not in {e.name for e in earlier}


def test_the_transformer_trains_on_the_same_reviews_as_the_gru_and_the_cnn() -> None:
    run = part2.transformer_sentiment_run(GRADING)
    assert run.split == part1.SENTIMENT_TEST
    gru, cnn = part1.gru_sentiment_run(GRADING), part1.cnn_sentiment_run(GRADING)
    assert run.num_train == gru.num_train == cnn.num_train


def test_the_run_grows_with_the_profile() -> None:
    small, cpu, gpu = (part2.transformer_sentiment_run(Profile(p)) for p in ("grading", "cpu", "gpu"))
    assert small.steps < cpu.steps < gpu.steps  # the table's model grows on a GPU
    assert gpu.num_layers >= cpu.num_layers


def test_the_same_run_builds_the_same_untrained_model() -> None:
    run = part2.transformer_sentiment_run(GRADING)
    a, b = (part2.build_transformer_classifier(run, 50) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_the_result_has_the_table_fields_and_an_accuracy_per_cue_distance() -> None:
    model, result = part2.transformer_sentiment(GRADING, "cpu")
    assert isinstance(model, EncoderClassifier)
    assert result.task == "sentiment" and result.metric == "accuracy (%)"
    assert result.lesson == "07_transformer_encoder"
    assert 0 <= result.value <= 100 and result.train_seconds > 0
    assert result.parameters == sum(p.numel() for p in model.parameters())
    low, high = part1.SENTIMENT_TEST.cue_distance
    assert sorted(result.details["accuracy_by_distance"]) == list(range(low, high + 1))
    assert len(result.details["losses"]) == part2.transformer_sentiment_run(GRADING).steps


def test_a_second_call_loads_the_cached_model() -> None:
    first = part2.transformer_sentiment(GRADING, "cpu")[1]
    second = part2.transformer_sentiment(GRADING, "cpu")[1]
    assert second.value == first.value and second.train_seconds == first.train_seconds


def test_the_heads_model_has_one_layer_of_four_rotary_heads() -> None:
    run = _tiny(part2.heads_run(GRADING), steps=5, task=part2.ReviewTask(num_train=200, num_test=50))
    model, info = part2.train_heads_model(run, "cpu")
    assert len(model.blocks) == 1 and model.blocks[0].self_attn.num_heads == 4
    assert model.config.positions == "rotary"
    assert len(info["losses"]) == 5 and 0 <= info["accuracy"] <= 100


@pytest.mark.parametrize("name", ["grading", "cpu", "gpu"])
def test_the_norm_race_differs_only_in_the_norm_placement(name: str) -> None:
    pre, post = part2.norm_runs(Profile(name))
    assert pre.norm_first and not post.norm_first
    assert dataclasses.replace(pre, norm_first=False) == post


def test_the_asserted_norm_races_use_six_layers_of_width_64_at_one_constant_rate() -> None:
    # Post-norm collapses robustly only in a stack this deep and wide (measured in norm_runs).
    cpu, gpu = part2.norm_runs(Profile("cpu"))[0], part2.norm_runs(Profile("gpu"))[0]
    for run in (cpu, gpu):
        assert (run.num_layers, run.d_model, run.batch_size, run.lr) == (6, 64, 64, 7e-3)
    assert cpu.task.max_len < gpu.task.max_len and cpu.steps < gpu.steps  # the CPU's race is cheaper
    assert part2.norm_runs(GRADING)[0].steps < cpu.steps


def test_a_norm_run_records_every_step_its_token_spread_and_whether_it_diverged() -> None:
    run = _tiny(part2.norm_runs(GRADING)[1], steps=4, task=part2.ReviewTask(num_train=100, num_test=20))
    model, info = part2.train_norm_variant(run, "cpu")
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
    data = part2.review_data(part2.ReviewTask(num_train=100, num_test=20))
    reviews = data.test[:3]
    length = data.batch(reviews).tokens.shape[1]
    per_review = torch.randn(3, 1, 8)  # one vector per review, repeated at every position
    assert part2.token_spread(_Encoder(per_review.expand(3, length, 8)), data, reviews, "cpu") < 1e-6
    spread = part2.token_spread(_Encoder(torch.randn(3, length, 8)), data, reviews, "cpu")
    assert 0.5 < spread <= 1  # independent random vectors: spread = sqrt(1 - 1/T) on average


def test_token_spread_ignores_padding() -> None:
    data = part2.review_data(part2.ReviewTask(num_train=100, num_test=20))
    by_length = sorted(data.test, key=lambda r: len(r.text.split()))
    reviews = [by_length[0], by_length[-1]]
    batch = data.batch(reviews)
    assert not batch.mask.all()  # the short review is padded
    h = torch.randn(1, 1, 8).repeat(2, batch.tokens.shape[1], 1)  # (2, T, 8): constant at real tokens
    h[~batch.mask] = 100.0  # padding positions hold something else entirely
    assert part2.token_spread(_Encoder(h), data, reviews, "cpu") < 1e-6


def test_a_diverging_run_is_reported_not_raised(monkeypatch) -> None:
    def explode(*args, **kwargs):
        raise FloatingPointError("the loss became nan")

    monkeypatch.setattr(part2, "train", explode)
    task = part2.ReviewTask(num_train=100, num_test=20)
    run = _tiny(part2.norm_runs(GRADING)[0], steps=3, seed=7, task=task)
    _, info = part2.train_norm_variant(run, "cpu")
    assert info["diverged"] is True


class _Constant(torch.nn.Module):
    """A classifier that answers `label` for every review."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full(tokens.shape[:1], self.label), 2).float()


def test_far_cue_accuracy_scores_every_model_on_the_same_balanced_far_reviews(monkeypatch) -> None:
    data = part1.sentiment_splits(GRADING)
    drawn = []
    original = data.draw_test

    def spy(num, **changes):
        reviews = original(num, **changes)
        drawn.append((changes["cue_distance"], reviews))
        return reviews

    monkeypatch.setattr(data, "draw_test", spy)
    buckets = ((1, 24), (97, 192))
    table = part2.far_cue_accuracy({"always 0": _Constant(0), "always 1": _Constant(1)}, data, "cpu",
                                   buckets=buckets, num_per_bucket=40)
    assert table == {"always 0": {"1-24": 50.0, "97-192": 50.0}, "always 1": {"1-24": 50.0, "97-192": 50.0}}
    assert [b for b, _ in drawn] == list(buckets)  # one draw per bucket, shared by the models
    train_texts = {r.text for r in data.train}
    for (low, high), reviews in drawn:
        assert len(reviews) == 40 and all(low <= r.cue_distance <= high for r in reviews)
        assert not train_texts & {r.text for r in reviews}
