"""`python -m utils.bench bpe`: the course's byte-level BPE against the libraries.

On the shipped real text (`utils.data.real_text`, training split), at one vocabulary size,
prints side by side: training time of `train_bpe` (incremental pair counts), of
`train_bpe_naive` (all pairs recounted after each merge; identical merges asserted) and of
Hugging Face `tokenizers` (byte-level BPE, same vocabulary size); compression in bytes per
token on the held-out sentences, ours against `tokenizers`; encoding throughput of ours
against `tiktoken` built from our merges (identical ids asserted). `tokenizers` and
`tiktoken` are test dependencies (requirements-dev.txt), not course requirements.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """The result of `fn()`, its wall-clock and its CPU seconds (this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def hf_byte_level_bpe(sentences: Sequence[str], vocab_size: int, add_prefix_space: bool = False) -> Any:
    """Hugging Face's byte-level BPE (GPT-2's pre-tokenisation) trained on `sentences`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    # The 256 bytes count in vocab_size, as in ours: both learn vocab_size - 256 merges.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(sentences, trainer)
    return tokenizer


def main(argv: list[str] | None = None) -> int:
    """Run the BPE benchmark and print its tables; returns 0 (the exit code)."""
    parser = argparse.ArgumentParser(prog="python -m utils.bench bpe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=1000)
    parser.add_argument("--side", default="both", choices=("en", "fr", "both"))
    parser.add_argument("--seed", type=int, default=0, help="the train/validation split")
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow brute force")
    args = parser.parse_args(argv)

    from utils.data.bpe import train_bpe, train_bpe_naive
    from utils.data.real_text import real_text

    data = real_text(args.side, seed=args.seed)
    text, vocab_size = data.text("train"), args.vocab_size
    print(f"BPE benchmark: vocab_size {vocab_size}, {len(data.train):,} training sentences "
          f"({len(text.encode()):,} bytes), {len(data.valid):,} held-out sentences, side "
          f"{args.side!r}, seed {args.seed}")

    ours, wall, cpu = _timed(lambda: train_bpe(text, vocab_size))
    rows = [("ours, incremental (train_bpe)", wall, cpu)]
    if not args.skip_naive:
        naive, wall, cpu = _timed(lambda: train_bpe_naive(text, vocab_size))
        assert naive.merges == ours.merges, "the naive and incremental trainers disagree"
        rows.append(("ours, naive (train_bpe_naive), same merges", wall, cpu))
    hf, wall, cpu = _timed(lambda: hf_byte_level_bpe(data.train, vocab_size))
    rows.append(("HF tokenizers, byte-level BPE (Rust)", wall, cpu))
    # On a shared machine wall-clock time depends on the load; CPU time is the steadier
    # measure for our single-threaded Python (HF trains on several threads: compare walls).
    print(f"\n{f'training, {len(ours.merges)} merges':<45}{'wall s':>8}{'cpu s':>8}"
          f"{'wall x ours':>13}{'cpu x ours':>12}")
    for what, wall, cpu in rows:
        print(f"{what:<45}{wall:>8.2f}{cpu:>8.2f}{wall / rows[0][1]:>13.2f}{cpu / rows[0][2]:>12.2f}")

    _compression(ours, hf, data, vocab_size)
    _throughput(ours, data)
    return 0


def _compression(ours: Any, hf: Any, data: Any, vocab_size: int) -> None:
    """Bytes per token on the held-out sentences, each encoded alone."""
    num_bytes = sum(len(s.encode()) for s in data.valid)
    ours_tokens = sum(len(ours.encode(s)) for s in data.valid)
    hf_tokens = sum(len(hf.encode(s).ids) for s in data.valid)
    prefixed = hf_byte_level_bpe(data.train, vocab_size, add_prefix_space=True)
    prefixed_tokens = sum(len(prefixed.encode(s).ids) for s in data.valid)
    print(f"\ncompression on {len(data.valid):,} held-out sentences ({num_bytes:,} bytes), "
          "each encoded alone")
    print(f"{'':<45}{'tokens':>8}{'bytes/token':>13}{'vs HF':>9}")
    reference = num_bytes / hf_tokens
    for what, tokens in (("ours", ours_tokens), ("HF tokenizers", hf_tokens),
                         ("HF tokenizers, add_prefix_space=True", prefixed_tokens)):
        ratio = num_bytes / tokens
        print(f"{what:<45}{tokens:>8,}{ratio:>13.3f}{100 * (ratio / reference - 1):>+8.1f}%")


def _throughput(ours: Any, data: Any, repeat: int = 5) -> None:
    """Encoding speed of ours and of tiktoken with our merges, on every sentence of the corpus."""
    from utils.data.bpe import BPETokenizer

    encoding = ours.to_tiktoken()
    sentences = list(data.train) + list(data.valid)
    for sentence in sentences:  # identical ids, sentence by sentence
        assert encoding.encode_ordinary(sentence) == ours.encode(sentence), sentence
    text = "\n".join(sentences)
    num_bytes = len(text.encode())
    cold_tokenizer = BPETokenizer(ours.merges)  # an empty cache of encoded chunks
    ids, *cold = _timed(lambda: cold_tokenizer.encode(text))
    warm = _best(lambda: ours.encode(text), repeat)
    reference, *_ = _timed(lambda: encoding.encode_ordinary(text))
    fast = _best(lambda: encoding.encode_ordinary(text), repeat)
    assert reference == ids, "tiktoken and ours give different ids"
    print(f"\nencoding the whole corpus as one text ({num_bytes:,} bytes, {len(ids):,} tokens, "
          f"identical ids; best of {repeat} except the first pass)")
    print(f"{'':<45}{'wall s':>8}{'cpu s':>8}{'MB/cpu s':>10}{'cpu x tiktoken':>16}")
    for what, (wall, cpu) in (("ours, first pass (chunk cache empty)", cold),
                              ("ours, every chunk already cached", warm),
                              ("tiktoken, our merges (Rust)", fast)):
        print(f"{what:<45}{wall:>8.3f}{cpu:>8.3f}{num_bytes / cpu / 1e6:>10.2f}{cpu / fast[1]:>16.1f}")


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """The smallest wall-clock and CPU seconds of `repeat` calls of `fn`."""
    times = [_timed(fn)[1:] for _ in range(repeat)]
    return min(t[0] for t in times), min(t[1] for t in times)


if __name__ == "__main__":
    raise SystemExit(main())
