"""utils.bench.attention and utils.bench.mha run end to end and print their tables."""

from __future__ import annotations

import torch

from utils.bench import attention as bench_attention
from utils.bench import mha as bench_mha


def test_mha_benchmark_prints_both_ratios(capsys) -> None:
    argv = ["--batch", "2", "--seq-len", "8", "--d-model", "16", "--heads", "2"]
    assert bench_mha.main([*argv, "--rounds", "1", "--repeat", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "weights returned (explicit)" in out and "need_weights=False (fused SDPA)" in out


def test_attention_benchmark_prints_a_row_per_method_and_length(capsys) -> None:
    argv = ["--device", "cpu", "--lengths", "16", "32", "--batch", "1", "--heads", "2"]
    assert bench_attention.main([*argv, "--dtype", "fp32", "--repeat", "1", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"torch {torch.__version__}")
    for method in ("naive", "flash", "sdpa"):
        rows = [line for line in out.splitlines() if line.startswith(method)]
        assert len(rows) == 2 and all(row.endswith("ok") for row in rows), out
    assert "triton" in out and "skipped" in out  # no GPU here: said, not crashed


def test_causal_flops_are_half_of_full_attention() -> None:
    full = bench_attention.attention_flops(2, 3, 128, 64, is_causal=False)
    assert full == 4 * 2 * 3 * 128 * 128 * 64
    assert bench_attention.attention_flops(2, 3, 128, 64, is_causal=True) == full / 2
