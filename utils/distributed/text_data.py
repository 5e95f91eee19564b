"""The capstone's training text: the course's text-to-text tasks packed into equal sequences.

Each example of `utils.data.text_to_text_data` (translation, summaries, sentiment, each with
its task prefix) becomes `<bos> source <sep> target <eos>`; the examples are concatenated
into one token stream and cut into sequences of exactly `seq_len + 1` tokens ("packing", as
GPT pre-training does). With no padding, every rank's batch holds the same number of
tokens, so the mean of the ranks' mean losses is the global mean loss and DDP's averaged
gradient is exactly the single-process gradient.

Every rank builds the same tensor from the seed; it is cached on disk, so a restarted
group does not pay for it again.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

TOKENS_PER_EXAMPLE = 27  # about, with <bos>, <sep> and <eos>: sizes the data to generate


@functools.lru_cache(maxsize=4)
def _data(num_train: int, seed: int):  # noqa: ANN202 - utils.data's Seq2SeqData
    from utils.data import text_to_text_data

    return text_to_text_data(num_train=num_train, num_valid=20, num_test=20, seed=seed)


def examples_per_task(num_samples: int, seq_len: int) -> int:
    """Examples to draw per task for about `num_samples` sequences of `seq_len + 1` tokens."""
    return max(20, math.ceil(num_samples * (seq_len + 1) / (3 * TOKENS_PER_EXAMPLE)))


def encode_example(vocab, src: str, tgt: str) -> list[int]:  # noqa: ANN001 - a utils.data Vocab
    """`<bos> src <sep> tgt <eos>` as ids."""
    return vocab.encode(src, bos=True) + [vocab.stoi["<sep>"]] + vocab.encode(tgt, eos=True)


def packed_sequences(num_samples: int, seq_len: int, seed: int) -> tuple[Tensor, int]:
    """(num_samples, seq_len + 1) token ids and the vocabulary size (cached on disk)."""
    from utils.run_cache import cache_dir, code_fingerprint
    from utils.training import atomic_save

    path = cache_dir() / "distributed" / f"text-{num_samples}-{seq_len}-{seed}-{code_fingerprint()}.pt"
    if path.is_file():
        try:
            saved = torch.load(path)
            return saved["sequences"], saved["vocab_size"]
        except Exception:  # noqa: BLE001 - unreadable: build it again
            pass
    data = _data(examples_per_task(num_samples, seq_len), seed)
    stream = [i for pair in data.splits["train"] for i in encode_example(data.vocab, pair.src, pair.tgt)]
    need = num_samples * (seq_len + 1)
    stream = (stream * math.ceil(need / len(stream)))[:need]  # repeat if the data is short
    sequences = torch.tensor(stream).view(num_samples, seq_len + 1)  # (N, T + 1)
    vocab_size = len(data.vocab.itos)
    atomic_save({"sequences": sequences, "vocab_size": vocab_size}, path)
    return sequences, vocab_size


def vocabulary(num_samples: int, seq_len: int, seed: int):  # noqa: ANN201 - a utils.data Vocab
    """The vocabulary `packed_sequences` used (to decode a trained model's samples)."""
    return _data(examples_per_task(num_samples, seq_len), seed).vocab


def prompt_and_answer(num_samples: int, seq_len: int, seed: int, index: int = 0) -> tuple[list[int], str]:
    """A validation example's `<bos> source <sep>` ids and its target text."""
    data = _data(examples_per_task(num_samples, seq_len), seed)
    pair = data.splits["valid"][index]
    return data.vocab.encode(pair.src, bos=True) + [data.vocab.stoi["<sep>"]], pair.tgt
