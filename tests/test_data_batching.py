"""Padding, masks (True = real token), length buckets and batch types."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.data.batching import (
    BucketBatchSampler,
    collate_classification,
    collate_language_model,
    collate_seq2seq,
    lengths_to_mask,
    pad,
)
from utils.data.vocab import BOS_ID, EOS_ID, PAD_ID


def test_pad_returns_ids_and_a_mask_that_is_true_on_real_tokens():
    ids, mask = pad([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert ids.dtype == torch.long and mask.dtype == torch.bool


def test_lengths_to_mask_matches_pad():
    assert lengths_to_mask([2, 0, 3]).tolist() == [[True, True, False], [False] * 3, [True] * 3]


def test_seq2seq_batch_is_teacher_forcing_ready():
    batch = collate_seq2seq([([4, 5], [6, 7, 8]), ([4], [6])])
    assert batch.src.shape == batch.src_mask.shape == (2, 2)
    assert batch.tgt_in.tolist() == [[BOS_ID, 6, 7, 8], [BOS_ID, 6, PAD_ID, PAD_ID]]
    assert batch.tgt_out.tolist() == [[6, 7, 8, EOS_ID], [6, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.tgt_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.to("cpu").src.equal(batch.src)


def test_classification_batch_has_tokens_mask_and_label():
    batch = collate_classification([([4, 5, 6], 1), ([7], 0)])
    assert batch.tokens.shape == (2, 3) and batch.label.tolist() == [1, 0]
    assert batch.mask.sum(1).tolist() == [3, 1]


def test_language_model_batch_counts_the_loss_on_the_answer_only():
    sep = 9
    batch = collate_language_model([([4, 5], [6, 7]), ([4], [6])], sep_id=sep)
    # <bos> 4 5 <sep> 6 7 <eos>: inputs drop the last token, targets the first
    assert batch.tokens[0].tolist() == [BOS_ID, 4, 5, sep, 6, 7]
    assert batch.targets[0].tolist() == [4, 5, sep, 6, 7, EOS_ID]
    assert batch.loss_mask[0].tolist() == [False, False, False, True, True, True]
    assert batch.loss_mask[1].tolist() == [False, False, True, True, False, False]
    assert batch.mask[1].tolist() == [True, True, True, True, False, False]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 50), min_size=1, max_size=300),
       batch_size=st.integers(1, 32), bucket=st.sampled_from([None, 0, 10, 1000]),
       shuffle=st.booleans(), seed=st.integers(0, 1000))
def test_bucket_sampler_yields_every_index_once_per_epoch(lengths, batch_size, bucket, shuffle,
                                                          seed):
    sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, bucket_size=bucket,
                                 seed=seed)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert len(batches) == len(sampler)
    assert all(1 <= len(b) <= batch_size for b in batches)


def test_buckets_sort_by_length_so_batches_need_little_padding():
    lengths = torch.randint(1, 100, (2000,), generator=torch.Generator().manual_seed(0)).tolist()

    def mean_spread(sampler: BucketBatchSampler) -> float:
        spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in sampler]
        return sum(spreads) / len(spreads)

    assert mean_spread(BucketBatchSampler(lengths, 32, shuffle=True, seed=0)) < 4
    assert mean_spread(BucketBatchSampler(lengths, 32, shuffle=True, bucket_size=0)) > 80


def test_buckets_are_shuffled_with_a_seed_and_every_epoch_differs():
    lengths = list(range(1, 501))
    a = BucketBatchSampler(lengths, 10, seed=3, bucket_size=50)
    b = BucketBatchSampler(lengths, 10, seed=3, bucket_size=50)
    first, second = list(a), list(a)
    assert first == list(b) and second == list(b)  # the same sequence of epochs
    assert first != second  # but each epoch is new
    assert list(BucketBatchSampler(lengths, 10, seed=4, bucket_size=50)) != first
    a.set_epoch(0)
    assert list(a) == first


def test_without_shuffle_batches_follow_the_data_order():
    sampler = BucketBatchSampler([3, 1, 2, 5, 4], 2, shuffle=False, bucket_size=0)
    assert list(sampler) == [[0, 1], [2, 3], [4]]


def test_drop_last_drops_only_the_last_partial_batch():
    sampler = BucketBatchSampler(list(range(1, 104)), 10, shuffle=True, bucket_size=25,
                                 drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    assert all(len(b) == 10 for b in batches)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler([1, 2], 0)
