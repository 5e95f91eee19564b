"""`python -m utils.bench data` runs and prints its table (timings are not asserted)."""

from __future__ import annotations

from utils.bench.data import main


def test_data_benchmark_prints_throughputs(capsys):
    assert main(["--num", "200", "--repeat", "1", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "pairs" in out and "batches" in out and "tokens" in out
