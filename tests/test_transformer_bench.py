"""utils.bench transformer, throughput and kv_cache: the Transformer benchmarks of lessons 08-09
run end to end and print their tables."""

from __future__ import annotations

import torch

from utils.bench import throughput as bench_throughput
from utils.bench import transformer as bench_transformer


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
