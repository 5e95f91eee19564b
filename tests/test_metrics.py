"""utils.metrics: corpus BLEU equals sacrebleu's on the same tokens; BLEU by length."""

from __future__ import annotations

import random

import pytest
import torch

from utils.metrics import accuracy, bleu, bleu_by_length, sentence_stats

sacrebleu = pytest.importorskip("sacrebleu")


def _sacrebleu(hyps: list[list[str]], refs: list[list[str]]) -> float:
    return sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]],
                                 tokenize="none", smooth_method="none", force=True).score


def _random_corpus(rng: random.Random) -> tuple[list[list[str]], list[list[str]]]:
    vocab = [f"w{i}" for i in range(rng.choice([3, 6, 15, 40]))]
    hyps, refs = [], []
    for _ in range(rng.randint(1, 8)):
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 14))]
        if ref and rng.random() < 0.5:  # a noisy copy of the reference: realistic overlap
            hyp = [t if rng.random() < 0.8 else rng.choice(vocab) for t in ref]
            hyp = hyp[: rng.randint(0, len(hyp))] if rng.random() < 0.3 else hyp
        else:
            hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 14))]
        hyps.append(hyp)
        refs.append(ref)
    return hyps, refs


def test_bleu_equals_sacrebleu_on_many_random_corpora() -> None:
    rng = random.Random(0)
    nonzero = 0
    for _ in range(600):
        hyps, refs = _random_corpus(rng)
        ours, theirs = bleu(hyps, refs), _sacrebleu(hyps, refs)
        assert ours == pytest.approx(theirs, abs=1e-9), (hyps, refs)
        nonzero += ours > 0
    assert nonzero > 100, "the random cases must also exercise non-zero scores"


@pytest.mark.parametrize(("hyps", "refs", "expected"), [
    ([["le", "chat", "dort", "."]], [["le", "chat", "dort", "."]], 100.0),
    ([[]], [["le", "chat", "dort", "."]], 0.0),  # empty hypothesis
    ([["a", "b", "c", "d"]], [["e", "f", "g", "h"]], 0.0),  # no match at all
    ([["le", "chat", "."]], [["le", "chat", "."]], 0.0),  # no 4-gram exists: unsmoothed BLEU is 0
    ([["a", "b", "c", "x", "d"]], [["a", "b", "c", "y", "d"]], 0.0),  # no 4-gram matches
    ([[]], [[]], 0.0),
])
def test_bleu_edge_cases(hyps, refs, expected) -> None:
    assert bleu(hyps, refs) == pytest.approx(expected)
    assert bleu(hyps, refs) == pytest.approx(_sacrebleu(hyps, refs), abs=1e-9)


def test_brevity_penalty_punishes_short_hypotheses() -> None:
    ref = "a b c d e f g h".split()
    assert bleu([ref[:4]], [ref]) == pytest.approx(100 * 2.718281828459045 ** (1 - 8 / 4))
    assert bleu([ref + ["i"]], [ref]) < 100, "a longer hypothesis loses precision, not brevity"


def test_clipping_counts_a_repeated_word_once_per_reference_occurrence() -> None:
    stats = sentence_stats(["the"] * 7, ["the", "cat", "is", "on", "the", "mat"])
    assert stats.matches[0] == 2 and stats.totals[0] == 7


def test_bleu_is_corpus_level_not_a_mean_of_sentences() -> None:
    good, bad = "a b c d e".split(), "a b x d e".split()
    assert bleu([good, bad], [good, good]) > 0
    assert bleu([bad], [good]) == 0.0  # alone, the bad sentence has no matching 4-gram


def test_bleu_refuses_strings_and_mismatched_lengths() -> None:
    with pytest.raises(TypeError, match="split"):
        bleu(["le chat"], [["le", "chat"]])
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        bleu([["a"]], [["a"], ["b"]])
    with pytest.raises(ValueError, match="whitespace"):
        bleu([["le chat"]], [["le", "chat"]])


def test_bleu_by_length_buckets() -> None:
    good = "a b c d e".split()
    frame = bleu_by_length([good, good, ["x"]], [good, good, good], lengths=[3, 4, 9], edges=[0, 5, 10])
    assert frame["bucket"].tolist() == ["0-4", "5-9"]
    assert frame["sentences"].tolist() == [2, 1]
    assert frame["BLEU"].tolist() == pytest.approx([100.0, 0.0])
    with pytest.raises(ValueError, match="increasing"):
        bleu_by_length([good], [good], [1], edges=[5, 5])


def test_accuracy() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
