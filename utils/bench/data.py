"""`python -m utils.bench data`: how fast the course's data is drawn and batched.

Prints one table: generation throughput of the synthetic world (sentence pairs and
reviews per second, at a short and a long length range), the cost of building a task
(splits and vocabularies), and the throughput of the tokenised-batch loader (batches and
tokens per second over one training epoch). Each row gives wall-clock and CPU seconds
(medians): on a shared machine the CPU time is the steadier of the two, and the rate is
computed from it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def _measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of `repeat` calls of `fn` (after one warm-up)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    """Run the data benchmark and print its table; returns 0 (the exit code)."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench data",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10_000, help="examples per measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    args = parser.parse_args(argv)

    from utils.data import generate_reviews, generate_sentences, translation_data

    n, repeat, rows = args.num, args.repeat, []
    for label, low, high in (("pairs, 4-16 tokens", 4, 16), ("pairs, 30-40 tokens", 30, 40)):
        times = _measure(lambda lo=low, hi=high: generate_sentences(n, min_len=lo, max_len=hi),
                         repeat)
        rows.append((f"generate {label}", n, *times, "pairs"))
    rows.append(("generate reviews, 6-24 tokens", n,
                 *_measure(lambda: generate_reviews(n), repeat), "reviews"))
    times = _measure(lambda: translation_data(num_train=n, num_valid=100, num_test=100), 1)
    rows.append(("translation_data (splits + vocabs)", n + 200, *times, "pairs"))

    data = translation_data(num_train=n, num_valid=100, num_test=100, seed=0)
    loader = data.loader("train", batch_size=args.batch_size)
    wall, cpu = _measure(lambda: list(loader), repeat)  # the warm-up encodes the split once
    tokens = sum(len(s) + len(t) + 1 for s, t in data.encoded("train"))
    rows.append((f"loader: 1 epoch, batch size {args.batch_size}", len(loader), wall, cpu,
                 "batches"))
    rows.append(("loader: the same epoch", tokens, wall, cpu, "tokens (src + tgt)"))

    print(f"data benchmark: {n:,} examples per row, median of {repeat} runs")
    print(f"{'what':<37}{'count':>10}{'wall s':>9}{'cpu s':>9}{'per cpu s':>13}  unit")
    for what, count, wall, cpu, unit in rows:
        print(f"{what:<37}{count:>10,}{wall:>9.3f}{cpu:>9.3f}{count / max(cpu, 1e-9):>13,.0f}"
              f"  {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
