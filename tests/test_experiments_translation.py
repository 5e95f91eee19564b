"""utils.experiments.translation: the shared translation test split, lessons 03-04's recurrent
encoder-decoders and lesson 08's Transformer of the results table, at the grading size."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils import run_cache
from utils.experiments import translation
from utils.experiments.translation import TRANSLATION_TEST
from utils.runtime import Profile

CPU, GRADING = Profile("cpu"), Profile("grading")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    """A cache of this test's own, with keys that skip hashing the package."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(run_cache, "code_fingerprint", lambda: "tests")


def test_translation_test_split_does_not_depend_on_the_profile() -> None:
    grading, cpu = translation.translation_splits(GRADING), translation.translation_splits(CPU)
    assert [p.src for p in grading.test] == [p.src for p in cpu.test]
    assert len(cpu.test) == TRANSLATION_TEST.num_test
    lengths = [len(p.src_tokens) for p in cpu.test]
    assert TRANSLATION_TEST.min_len <= min(lengths) and max(lengths) <= TRANSLATION_TEST.max_len
    edges = TRANSLATION_TEST.buckets
    assert edges[0] <= min(lengths) and max(lengths) < edges[-1]


def test_the_recurrent_runs_differ_in_their_attention_only() -> None:
    assert translation.attention_seq2seq_run(CPU).attention == "additive"
    assert translation.gru_seq2seq_run(CPU).attention == "none"
    with_attention = dataclasses.replace(translation.gru_seq2seq_run(CPU), attention="additive")
    assert with_attention == translation.attention_seq2seq_run(CPU)


def test_a_tiny_translation_run_reports_bleu_by_length() -> None:
    run = dataclasses.replace(translation.attention_seq2seq_run(GRADING), steps=2)
    model, info = translation.train_translation(run, "cpu", desc="tiny")
    assert set(info["bleu_by_length"]) == {"4-7", "8-11", "12-15", "16-20"}
    assert sum(info["sentences_by_length"].values()) == TRANSLATION_TEST.num_test
    assert 0 <= info["bleu"] <= 100


@pytest.mark.parametrize("name", ["cpu", "gpu", "grading"])
def test_the_transformer_trains_as_long_as_the_recurrent_models(name: str) -> None:
    profile = Profile(name)
    ours, theirs = translation.transformer_run(profile), translation.attention_seq2seq_run(profile)
    assert ours.steps == theirs.steps and ours.batch_size == theirs.batch_size
    assert ours.num_train == theirs.num_train
    assert ours.split == TRANSLATION_TEST


def test_a_tiny_transformer_run_trains_scores_and_is_cached() -> None:
    split = dataclasses.replace(TRANSLATION_TEST, num_test=24, num_valid=4)
    run = dataclasses.replace(translation.transformer_run(Profile("grading")), steps=3, d_model=16, d_ff=32,
                              num_train=200, split=split)
    model, info = translation.train_transformer(run, "cpu")
    assert len(info["losses"]) == 3 and not info["cached"]
    assert set(info["bleu_by_length"]) == {"4-7", "8-11", "12-15", "16-20"}
    assert sum(info["sentences_by_length"].values()) == 24
    again, cached = translation.train_transformer(run, "cpu")
    assert cached["cached"] and cached["bleu"] == info["bleu"]
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
