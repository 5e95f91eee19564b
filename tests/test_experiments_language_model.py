"""utils.experiments.language_model: lesson 13's GPT on real text, its held-out windows, the
n-gram baselines, perplexity, sampling and the KV cache per token."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from utils.experiments import language_model as lm
from utils.experiments.language_model import LanguageModelRun
from utils.runtime import Profile

TINY = LanguageModelRun(vocab_size=300, max_len=16, d_model=16, num_heads=2, num_layers=1, d_ff=32,
                        batch_size=8, steps=3, lr=1e-2, seed=0)


class _Uniform(nn.Module):
    """A model that gives every token the same probability: perplexity = vocabulary size."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.bias.expand(*ids.shape, -1)  # (B, T, V)
        if targets is None:
            return logits
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def test_held_out_windows_make_every_token_after_the_first_a_target_once() -> None:
    stream = torch.arange(23)
    inputs, targets = lm.held_out_targets(stream, 5)
    assert inputs.shape == targets.shape == (4, 5)
    assert torch.equal(targets, inputs + 1)  # the next token
    assert targets.flatten().tolist() == list(range(1, 21))


def test_random_windows_are_next_token_pairs_and_repeat_with_the_seed() -> None:
    stream = torch.arange(100)
    first = next(lm.random_windows(stream, 8, 4, seed=3))
    again = next(lm.random_windows(stream, 8, 4, seed=3))
    x, y = first
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y, x + 1) and torch.equal(x, again[0])


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size() -> None:
    stream = torch.randint(0, 37, (200,))
    inputs, targets = lm.held_out_targets(stream, 10)
    assert lm.perplexity(_Uniform(37), inputs, targets, batch_size=7) == pytest.approx(37, rel=1e-5)


def test_unigram_perplexity_of_uniform_counts_is_the_vocabulary_size() -> None:
    train = torch.arange(10).repeat(50)  # every id equally often
    inputs, targets = lm.held_out_targets(torch.arange(10).repeat(3), 5)
    assert lm.unigram_perplexity(train, inputs, targets, 10) == pytest.approx(10, rel=1e-6)


def test_bigram_beats_unigram_on_a_predictable_sequence() -> None:
    train = torch.tensor([0, 1, 2, 3] * 100)  # each token fixes the next
    inputs, targets = lm.held_out_targets(torch.tensor([0, 1, 2, 3] * 10), 8)
    unigram = lm.unigram_perplexity(train, inputs, targets, 4)
    bigram = lm.bigram_perplexity(train, inputs, targets, 4)
    assert unigram == pytest.approx(4, rel=0.01)
    expected = 1 / (0.95 + 0.05 * 0.25)  # the best weight of the grid, 0.95, on a certain next token
    assert bigram == pytest.approx(expected, rel=1e-6)


def test_kv_cache_bytes_per_token_follow_the_formula() -> None:
    run = LanguageModelRun(d_model=64, num_heads=4, num_layers=3)
    assert lm.kv_cache_bytes_per_token(run) == 2 * 3 * 4 * 16 * 4
    mqa = LanguageModelRun(d_model=64, num_heads=4, num_layers=3, num_kv_heads=1)
    assert lm.kv_cache_bytes_per_token(mqa, torch.bfloat16) == 2 * 3 * 1 * 16 * 2


def test_runs_are_sized_by_the_profile() -> None:
    cpu, grading = lm.language_model_run(Profile("cpu")), lm.language_model_run(Profile("grading"))
    assert grading.steps < cpu.steps and grading.d_model <= cpu.d_model
    assert lm.language_model_run(Profile("cpu"), num_kv_heads=1).num_kv_heads == 1


def test_documents_are_pairs_with_held_out_english_sentences() -> None:
    train, valid = lm.documents("train"), lm.documents("valid")
    assert train and valid and all(d.endswith("\n") and d.count("\t") == 1 for d in train + valid)
    english = {d.split("\t")[0] for d in train}
    assert not english & {d.split("\t")[0] for d in valid}


def test_token_streams_decode_to_the_documents() -> None:
    train_ids, valid_ids = lm.token_streams(TINY.vocab_size)
    tokenizer = lm.tokenizer(TINY.vocab_size)
    assert tokenizer.vocab_size == TINY.vocab_size
    assert tokenizer.decode(valid_ids.tolist()) == "".join(lm.documents("valid"))
    assert train_ids.dtype == torch.long and len(train_ids) > 10 * len(valid_ids) // 2


def test_training_is_cached_and_scores_the_held_out_text(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    model, info = lm.train_language_model(TINY, "cpu")
    assert len(info["losses"]) == TINY.steps and not info["cached"]
    assert 1 < info["valid_perplexity"] < 2 * TINY.vocab_size and math.isfinite(info["train_seconds"])
    again, cached = lm.train_language_model(TINY, "cpu")
    assert cached["cached"] and cached["valid_perplexity"] == info["valid_perplexity"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_continue_text_stops_at_the_end_of_the_line_and_repeats_with_the_seed() -> None:
    model = lm.build_language_model(TINY).eval()
    tokenizer = lm.tokenizer(TINY.vocab_size)
    greedy = lm.continue_text(model, tokenizer, "Go.\t", max_new_tokens=6)
    assert isinstance(greedy, str) and "\n" not in greedy
    assert greedy == lm.continue_text(model, tokenizer, "Go.\t", max_new_tokens=6)
    sampled = [lm.continue_text(model, tokenizer, "Go.\t", max_new_tokens=6, temperature=1.0, top_p=0.9,
                                generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert sampled[0] == sampled[1]
