"""From id sequences to padded tensors: padding masks, length buckets and batch types.

Masks are boolean with **True = a real token** (False = padding), the convention of
`F.scaled_dot_product_attention` and of the course's attention functions. Pad id is 0.

Batches sort similar lengths together: examples are shuffled, cut into buckets of
`bucket_size` examples, sorted by length inside each bucket and cut into batches, whose
order is shuffled again. Little padding, yet every epoch sees new batches; a seeded
`torch.Generator` makes the whole sequence of epochs repeat exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from utils.data.vocab import BOS_ID, EOS_ID, PAD_ID


class Seq2SeqBatch(NamedTuple):
    """A batch for an encoder-decoder (teacher forcing): tgt_in = <bos> y, tgt_out = y <eos>."""

    src: torch.Tensor  # (B, S) long
    src_mask: torch.Tensor  # (B, S) bool, True = real token
    tgt_in: torch.Tensor  # (B, T) long, starts with <bos>
    tgt_out: torch.Tensor  # (B, T) long, ends with <eos>; padding = 0
    tgt_mask: torch.Tensor  # (B, T) bool, True = real token

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Seq2SeqBatch:
        """The same batch on `device`."""
        return Seq2SeqBatch(*(t.to(device, non_blocking=non_blocking) for t in self))


class ClassificationBatch(NamedTuple):
    """A batch for a sequence classifier."""

    tokens: torch.Tensor  # (B, T) long
    mask: torch.Tensor  # (B, T) bool, True = real token
    label: torch.Tensor  # (B,) long

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClassificationBatch:
        """The same batch on `device`."""
        return ClassificationBatch(*(t.to(device, non_blocking=non_blocking) for t in self))


class LanguageModelBatch(NamedTuple):
    """A batch for a decoder-only model: `<bos> source <sep> target <eos>`, shifted by one.

    `targets[:, t]` is the token after `tokens[:, t]`; `loss_mask` is True where the target
    belongs to the answer (target tokens and <eos>), so a text-to-text model is trained
    on answers only: `F.cross_entropy(logits[loss_mask], targets[loss_mask])`.
    """

    tokens: torch.Tensor  # (B, T) long
    targets: torch.Tensor  # (B, T) long; padding = 0
    mask: torch.Tensor  # (B, T) bool, True = real token
    loss_mask: torch.Tensor  # (B, T) bool, True = a target the loss should count

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LanguageModelBatch:
        """The same batch on `device`."""
        return LanguageModelBatch(*(t.to(device, non_blocking=non_blocking) for t in self))


def lengths_to_mask(lengths: torch.Tensor | Sequence[int],
                    max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True at the first `length` positions of each row."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    max_len = int(lengths.max()) if max_len is None and len(lengths) else (max_len or 0)
    return torch.arange(max_len) < lengths[:, None]  # (B, T)


def pad(sequences: Sequence[Sequence[int]],
        pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """B id lists -> `(ids (B, T) long, mask (B, T) bool)`, padded at the end to the longest."""
    lengths = [len(s) for s in sequences]
    width = max(lengths, default=0)
    ids = torch.tensor([list(s) + [pad_id] * (width - n) for s, n in zip(sequences, lengths,
                                                                         strict=True)],
                       dtype=torch.long).view(len(sequences), width)  # (B, T)
    return ids, lengths_to_mask(lengths, width)


def shift_right(tgt_out: torch.Tensor, bos_id: int = BOS_ID, eos_id: int = EOS_ID,
                pad_id: int = PAD_ID) -> torch.Tensor:
    """Teacher forcing's decoder inputs: (B, T) `y <eos> <pad>...` -> (B, T) `<bos> y <pad>...`."""
    bos = torch.full_like(tgt_out[:, :1], bos_id)  # (B, 1)
    shifted = torch.cat([bos, tgt_out[:, :-1]], dim=1)  # (B, T): everything one step right
    return shifted.masked_fill(shifted == eos_id, pad_id)  # <eos> is a target, never an input


def collate_seq2seq(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Seq2SeqBatch:
    """(source ids, target ids) pairs, without specials -> a `Seq2SeqBatch`."""
    src, src_mask = pad([s for s, _ in pairs])
    tgt_in, tgt_mask = pad([[BOS_ID, *t] for _, t in pairs])
    tgt_out, _ = pad([[*t, EOS_ID] for _, t in pairs])
    return Seq2SeqBatch(src, src_mask, tgt_in, tgt_out, tgt_mask)


def collate_classification(items: Sequence[tuple[Sequence[int], int]]) -> ClassificationBatch:
    """(token ids, label) pairs -> a `ClassificationBatch`."""
    tokens, mask = pad([t for t, _ in items])
    label = torch.tensor([y for _, y in items], dtype=torch.long)  # (B,)
    return ClassificationBatch(tokens, mask, label)


def collate_language_model(pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                           sep_id: int) -> LanguageModelBatch:
    """(source ids, target ids) pairs -> a `LanguageModelBatch` of `<bos> s <sep> t <eos>`."""
    sequences = [[BOS_ID, *s, sep_id, *t, EOS_ID] for s, t in pairs]
    tokens, mask = pad([seq[:-1] for seq in sequences])
    targets, _ = pad([seq[1:] for seq in sequences])
    # Position i predicts seq[i + 1]; answers start after <sep>, at i = len(source) + 1.
    starts = torch.tensor([len(s) + 1 for s, _ in pairs], dtype=torch.long)  # (B,)
    positions = torch.arange(tokens.shape[1])  # (T,)
    loss_mask = mask & (positions >= starts[:, None])  # (B, T)
    return LanguageModelBatch(tokens, targets, mask, loss_mask)


class BucketBatchSampler:
    """Batches of indices with similar lengths; a `batch_sampler` for `DataLoader`.

    `bucket_size` examples (rounded up to whole batches; default 50 batches) are sorted
    by length together; 0 turns sorting off. With `shuffle`, every pass (epoch) draws
    new buckets and a new batch order from `torch.Generator().manual_seed(seed + epoch)`,
    so runs repeat exactly; without it, batches follow the data order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool = True,
                 bucket_size: int | None = None, drop_last: bool = False, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket_size = 50 * batch_size if bucket_size is None else bucket_size
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order the next pass uses (passes also count on their own)."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches (lists of indices) of one epoch."""
        n = len(self.lengths)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        batches: list[list[int]] = []
        size = self.batch_size
        step = max(-(-self.bucket_size // size), 1) * size  # whole batches per bucket
        for start in range(0, n, step):
            bucket = order[start:start + step]
            if self.bucket_size > 0:  # stable sort: equal lengths keep the shuffled order
                bucket = bucket[torch.sort(self.lengths[bucket], stable=True).indices]
            batches += [b.tolist() for b in bucket.split(self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        yield from self.batches(epoch)
