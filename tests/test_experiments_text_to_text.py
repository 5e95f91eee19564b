"""utils.experiments.text_to_text: lesson 09's three tasks as prefixed text, and the GPT's
answers, scores and loss."""

from __future__ import annotations

import pytest
import torch

from utils.experiments import text_to_text
from utils.experiments.text_to_text import GPTRun, TextToTextSplit


def test_text_to_text_data_holds_three_prefixed_tasks() -> None:
    data = text_to_text._text_to_text_data(60, TextToTextSplit(num_test=10))
    assert data.shared_vocab and "<sep>" in data.vocab
    tasks = [text_to_text.task_of(p) for p in data.test]
    counts = {t: tasks.count(t) for t in text_to_text.TASKS}
    assert counts == {"translate": 10, "summarize": 10, "sentiment": 10}
    assert {p.tgt for p in data.test if text_to_text.task_of(p) == "sentiment"} <= {"positive", "negative"}
    assert not {p.src for p in data.test} & {p.src for p in data.train}


def test_generated_answers_are_the_same_with_and_without_the_cache() -> None:
    data = text_to_text._text_to_text_data(60, TextToTextSplit(num_test=4))
    run = GPTRun(num_train=60, steps=0, d_model=16, num_heads=2, d_ff=32, num_layers=1)
    model = text_to_text.build_gpt(run, len(data.vocab)).eval()
    cached = text_to_text.generate_answers(model, data, data.test, "cpu", max_new_tokens=6)
    uncached = text_to_text.generate_answers(model, data, data.test, "cpu", max_new_tokens=6, use_cache=False)
    assert cached == uncached
    assert len(cached) == 12 and all(isinstance(a, str) for a in cached)


def test_score_answers_counts_exact_matches_per_task() -> None:
    data = text_to_text._text_to_text_data(60, TextToTextSplit(num_test=4))
    answers = [p.tgt if text_to_text.task_of(p) != "summarize" else "nothing" for p in data.test]
    scores = text_to_text.score_answers(data.test, answers)
    assert scores["translate"]["exact_match"] == 100 and scores["translate"]["bleu"] == pytest.approx(100)
    assert scores["sentiment"]["exact_match"] == 100
    assert scores["summarize"]["exact_match"] == 0 and scores["summarize"]["examples"] == 4


def test_answer_loss_counts_only_the_answer_tokens() -> None:
    data = text_to_text._text_to_text_data(60, TextToTextSplit(num_test=4))
    run = GPTRun(num_train=60, steps=0, d_model=16, num_heads=2, d_ff=32, num_layers=1)
    model = text_to_text.build_gpt(run, len(data.vocab)).eval()
    batch = data.batch(data.train[:6], decoder_only=True)
    with torch.no_grad():
        logits = model(batch.tokens)
        expected = torch.nn.functional.cross_entropy(logits[batch.loss_mask], batch.targets[batch.loss_mask])
        torch.testing.assert_close(text_to_text.answer_loss(model, batch), expected)
