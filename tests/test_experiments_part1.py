"""utils.experiments.part1: the shared test splits and the registered Part I reference runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils import results, training
from utils.experiments import part1
from utils.runtime import Profile

CPU, GRADING = Profile("cpu"), Profile("grading")


@pytest.fixture(autouse=True)
def _stable_code_fingerprint(monkeypatch) -> None:
    """Cache keys without hashing the package (fast, and immune to edits while tests run)."""
    monkeypatch.setattr(training, "code_fingerprint", lambda: "tests")


def test_part1_experiments_are_registered_with_their_task_and_lesson() -> None:
    found = {e.name: (e.task, e.lesson) for e in results.experiments()}
    assert found["gru-sentiment"] == ("sentiment", "01_sequences_and_rnns")
    assert found["cnn-sentiment"] == ("sentiment", "02_convolutional_baselines")
    assert found["gru-seq2seq"] == ("translation", "03_seq2seq_rnn")
    assert found["attention-seq2seq"] == ("translation", "04_attention_seq2seq")
    up_to_03 = [e.name for e in results.experiments("translation", up_to="03_seq2seq_rnn")]
    assert "gru-seq2seq" in up_to_03 and "attention-seq2seq" not in up_to_03


def test_sentiment_test_split_does_not_depend_on_the_profile() -> None:
    grading, cpu = part1.sentiment_splits(GRADING), part1.sentiment_splits(CPU)
    assert len(grading.train) < len(cpu.train)
    assert [r.text for r in grading.test] == [r.text for r in cpu.test]
    assert len(cpu.test) == part1.SENTIMENT_TEST.num_test
    low, high = part1.SENTIMENT_TEST.cue_distance
    assert {r.cue_distance for r in cpu.test} == set(range(low, high + 1))


def test_translation_test_split_does_not_depend_on_the_profile() -> None:
    grading, cpu = part1.translation_splits(GRADING), part1.translation_splits(CPU)
    assert [p.src for p in grading.test] == [p.src for p in cpu.test]
    assert len(cpu.test) == part1.TRANSLATION_TEST.num_test
    lengths = [len(p.src_tokens) for p in cpu.test]
    assert part1.TRANSLATION_TEST.min_len <= min(lengths) and max(lengths) <= part1.TRANSLATION_TEST.max_len
    edges = part1.TRANSLATION_TEST.buckets
    assert edges[0] <= min(lengths) and max(lengths) < edges[-1]


def test_profiles_size_the_runs() -> None:
    assert part1.gru_sentiment_run(GRADING).steps < part1.gru_sentiment_run(CPU).steps
    assert part1.attention_seq2seq_run(CPU).attention == "additive"
    assert part1.gru_seq2seq_run(CPU).attention == "none"
    assert part1.cnn_sentiment_run(CPU).dilations == (1, 2, 4)  # receptive field 15 < the farthest cue, 24


@pytest.mark.parametrize("architecture", ["gru", "cnn"])
def test_a_tiny_sentiment_run_reports_accuracy_by_distance(architecture, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    base = part1.gru_sentiment_run(GRADING) if architecture == "gru" else part1.cnn_sentiment_run(GRADING)
    run = dataclasses.replace(base, steps=3)
    model, info = part1.train_sentiment(run, "cpu", desc="tiny")
    assert not info["cached"] and len(info["losses"]) == 3
    assert set(info["accuracy_by_distance"]) == set(range(1, 25))
    assert 0 <= info["accuracy"] <= 100
    again, cached = part1.train_sentiment(run, "cpu", desc="tiny")
    assert cached["cached"] and cached["accuracy"] == info["accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                  strict=True))


def test_a_tiny_translation_run_reports_bleu_by_length(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    run = dataclasses.replace(part1.attention_seq2seq_run(GRADING), steps=2)
    model, info = part1.train_translation(run, "cpu", desc="tiny")
    assert set(info["bleu_by_length"]) == {"4-7", "8-11", "12-15", "16-20"}
    assert sum(info["sentences_by_length"].values()) == part1.TRANSLATION_TEST.num_test
    assert 0 <= info["bleu"] <= 100


def test_registered_experiment_returns_a_result_on_the_shared_split(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(part1, "gru_sentiment_run",
                        lambda profile: dataclasses.replace(part1.SentimentRun("gru", 1000, steps=2)))
    result = part1.gru_sentiment_experiment(GRADING, "cpu")
    assert result.task == "sentiment" and result.lesson == "01_sequences_and_rnns"
    assert result.metric == "accuracy (%)" and result.split == part1.SENTIMENT_TEST.describe()
    assert result.parameters > 0 and result.train_seconds >= 0
    assert set(result.details["accuracy_by_distance"]) == set(range(1, 25))


def test_seeded_build_leaves_the_callers_random_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    part1.build_sentiment_model(part1.gru_sentiment_run(GRADING), vocab_size=50)
    assert torch.equal(torch.rand(3), expected)
