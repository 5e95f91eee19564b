"""utils.experiments.part3 and the Part III benchmarks (utils.bench transformer / throughput)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils import results
from utils.bench import throughput as bench_throughput
from utils.bench import transformer as bench_transformer
from utils.experiments import part1, part3
from utils.runtime import Profile


def test_lessons_08_and_09_register_their_experiments() -> None:
    lesson_08 = "08_transformer_translation"
    translation = {e.name: e.lesson for e in results.experiments("translation", up_to=lesson_08)}
    assert translation["transformer-translation"] == "08_transformer_translation"
    assert {"gru-seq2seq", "attention-seq2seq"} <= set(translation)
    text = {e.name for e in results.experiments("text-to-text", up_to="09_decoder_only_gpt")}
    assert text == {"gpt-translate", "gpt-summarize", "gpt-sentiment"}


@pytest.mark.parametrize("name", ["cpu", "gpu", "grading"])
def test_the_transformer_trains_as_long_as_the_recurrent_models(name: str) -> None:
    profile = Profile(name)
    ours, theirs = part3.transformer_run(profile), part1.attention_seq2seq_run(profile)
    assert ours.steps == theirs.steps and ours.batch_size == theirs.batch_size
    assert ours.num_train == theirs.num_train
    assert ours.split == part1.TRANSLATION_TEST


def test_a_tiny_transformer_run_trains_scores_and_is_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    split = dataclasses.replace(part1.TRANSLATION_TEST, num_test=24, num_valid=4)
    run = dataclasses.replace(part3.transformer_run(Profile("grading")), steps=3, d_model=16, d_ff=32,
                              num_train=200, split=split)
    model, info = part3.train_transformer(run, "cpu")
    assert len(info["losses"]) == 3 and not info["cached"]
    assert set(info["bleu_by_length"]) == {"4-7", "8-11", "12-15", "16-20"}
    assert sum(info["sentences_by_length"].values()) == 24
    again, cached = part3.train_transformer(run, "cpu")
    assert cached["cached"] and cached["bleu"] == info["bleu"]
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_text_to_text_data_holds_three_prefixed_tasks() -> None:
    data = part3._text_to_text_data(60, part3.TextToTextSplit(num_test=10))
    assert data.shared_vocab and "<sep>" in data.vocab
    tasks = [part3.task_of(p) for p in data.test]
    assert {t: tasks.count(t) for t in part3.TASKS} == {"translate": 10, "summarize": 10, "sentiment": 10}
    assert {p.tgt for p in data.test if part3.task_of(p) == "sentiment"} <= {"positive", "negative"}
    assert not {p.src for p in data.test} & {p.src for p in data.train}


def test_generated_answers_are_the_same_with_and_without_the_cache() -> None:
    data = part3._text_to_text_data(60, part3.TextToTextSplit(num_test=4))
    model = part3.build_gpt(part3.GPTRun(num_train=60, steps=0, d_model=16, num_heads=2, d_ff=32,
                                         num_layers=1), len(data.vocab)).eval()
    cached = part3.generate_answers(model, data, data.test, "cpu", max_new_tokens=6)
    assert cached == part3.generate_answers(model, data, data.test, "cpu", max_new_tokens=6, use_cache=False)
    assert len(cached) == 12 and all(isinstance(a, str) for a in cached)


def test_score_answers_counts_exact_matches_per_task() -> None:
    data = part3._text_to_text_data(60, part3.TextToTextSplit(num_test=4))
    answers = [p.tgt if part3.task_of(p) != "summarize" else "nothing" for p in data.test]
    scores = part3.score_answers(data.test, answers)
    assert scores["translate"]["exact_match"] == 100 and scores["translate"]["bleu"] == pytest.approx(100)
    assert scores["sentiment"]["exact_match"] == 100
    assert scores["summarize"]["exact_match"] == 0 and scores["summarize"]["examples"] == 4


def test_answer_loss_counts_only_the_answer_tokens() -> None:
    data = part3._text_to_text_data(60, part3.TextToTextSplit(num_test=4))
    model = part3.build_gpt(part3.GPTRun(num_train=60, steps=0, d_model=16, num_heads=2, d_ff=32,
                                         num_layers=1), len(data.vocab)).eval()
    batch = data.batch(data.train[:6], decoder_only=True)
    with torch.no_grad():
        logits = model(batch.tokens)
        expected = torch.nn.functional.cross_entropy(logits[batch.loss_mask], batch.targets[batch.loss_mask])
        torch.testing.assert_close(part3.answer_loss(model, batch), expected)


def test_torch_transformer_holds_the_same_weights_and_computes_the_same_logits() -> None:
    sizes = bench_transformer.BenchSizes(batch=3, seq_len=7, d_model=16, num_heads=2, d_ff=24,
                                         num_layers=2, vocab_size=30)
    torch.manual_seed(0)
    from utils.models.translation_transformer import Transformer, TransformerConfig

    ours = Transformer(TransformerConfig(30, 30, d_model=16, num_heads=2, d_ff=24, num_encoder_layers=2,
                                         num_decoder_layers=2, dropout=0.0)).eval()
    theirs = bench_transformer.TorchTransformer.from_course(ours).eval()
    src, src_mask, tgt = bench_transformer.make_batch(sizes, "cpu")
    assert not src_mask.all()  # some padding, so the masks are exercised
    with torch.no_grad():
        torch.testing.assert_close(theirs(src, src_mask, tgt[:, :-1]), ours(src, src_mask, tgt[:, :-1]),
                                   atol=1e-5, rtol=1e-4)


def test_transformer_benchmark_prints_both_models_and_the_ratio(capsys) -> None:
    argv = ["--device", "cpu", "--batch", "2", "--seq-len", "6", "--d-model", "16", "--num-heads", "2",
            "--d-ff", "16", "--num-layers", "1", "--vocab-size", "20", "--rounds", "1", "--repeat", "1"]
    assert bench_transformer.main(argv) == 0
    out = capsys.readouterr().out
    assert "course Transformer" in out and "nn.TransformerEncoder/DecoderLayer" in out
    assert "course / torch time:" in out


def test_throughput_benchmark_reports_both_models_per_length(capsys) -> None:
    argv = ["--device", "cpu", "--lengths", "4", "8", "--tokens", "32", "--d-model", "16", "--repeat", "1"]
    assert bench_throughput.main(argv) == 0
    out = capsys.readouterr().out
    assert "Transformer / GRU" in out and out.count("L=") == 2


def test_throughput_measure_keeps_the_tokens_per_batch_fixed() -> None:
    sizes = bench_throughput.Sizes(d_model=16, num_heads=2, num_layers=1, vocab_size=20, tokens_per_batch=32)
    frame = bench_throughput.measure([4, 16], sizes, repeat=1, warmup=0)
    assert (frame.batch * frame.seq_len).tolist() == [32, 32, 32, 32]
    assert set(frame.model) == set(bench_throughput.MODELS) and (frame.tokens_per_s > 0).all()
    assert list(bench_throughput.speedups(frame).index) == [4, 16]


def test_throughput_measure_times_on_the_threads_asked_for(monkeypatch) -> None:
    asked = []
    real_compare = bench_throughput.compare

    def spy(fns, **options):
        asked.append(options.get("threads"))
        return real_compare(fns, **options)

    monkeypatch.setattr(bench_throughput, "compare", spy)
    sizes = bench_throughput.Sizes(d_model=16, num_heads=2, num_layers=1, vocab_size=20, tokens_per_batch=16)
    bench_throughput.measure([4, 8], sizes, repeat=1, warmup=0, threads=1)
    assert asked == [1, 1]


def test_kv_cache_benchmark_reports_identical_tokens(capsys) -> None:
    from utils.bench import kv_cache as bench_kv_cache

    argv = ["--device", "cpu", "--lengths", "4", "8", "--batch", "2", "--d-model", "16", "--num-layers", "1",
            "--repeat", "1"]
    assert bench_kv_cache.main(argv) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "False" not in out
