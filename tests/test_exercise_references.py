"""The references in utils that exercises are compared against (and must not call), where they are
not covered by their module's own tests: each equals what PyTorch or the course already computes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.data.batching import collate_seq2seq, shift_right
from utils.distributed import train
from utils.memory import score_matrix_bytes
from utils.models import attention, cnn
from utils.models.seq2seq import sequence_loss


def test_attention_scores_are_scaled_dot_products() -> None:
    q, k = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 4, 8)
    assert torch.allclose(attention.attention_scores(q, k), q @ k.transpose(-2, -1) / 8**0.5, atol=1e-6)
    assert torch.allclose(attention.attention_scores(q, k, scale=1.0), q @ k.transpose(-2, -1))


def test_causal_conv1d_pads_on_the_left_only() -> None:
    conv = nn.Conv1d(3, 4, kernel_size=3, dilation=2)
    x = torch.randn(2, 7, 3)
    with torch.no_grad():
        expected = conv(F.pad(x.transpose(1, 2), (4, 0))).transpose(1, 2)
        assert torch.allclose(cnn.causal_conv1d(x, conv.weight, conv.bias, dilation=2), expected, atol=1e-6)


@pytest.mark.parametrize(("length", "kernel_size", "expected"), [
    (1, 3, []), (3, 3, [1]), (15, 3, [1, 2, 4]), (24, 3, [1, 2, 4, 8]), (30, 5, [1, 2, 4, 8])])
def test_doubling_dilations_are_the_fewest_that_cover_the_length(length, kernel_size, expected) -> None:
    assert cnn.doubling_dilations(length, kernel_size) == expected


def test_shift_right_gives_the_collated_decoder_inputs() -> None:
    batch = collate_seq2seq([([4, 5], [6, 7, 8]), ([4], [9])])
    assert torch.equal(shift_right(batch.tgt_out), batch.tgt_in)


def test_sequence_loss_averages_over_real_tokens_only() -> None:
    logits, tgt = torch.randn(2, 4, 6), torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0]])
    keep = tgt != 0
    assert torch.allclose(sequence_loss(logits, tgt, pad_id=0), F.cross_entropy(logits[keep], tgt[keep]))


def test_score_matrix_bytes_counts_length_squared_elements() -> None:
    assert score_matrix_bytes(2, 3, 10, torch.bfloat16) == 2 * 3 * 100 * 2
    assert score_matrix_bytes(1, 1, 7) == 49 * 4


def test_accumulated_gradients_equal_the_whole_batchs() -> None:
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    x, y = torch.randn(6, 4), torch.randn(6, 2)
    whole = copy.deepcopy(net)
    F.mse_loss(whole(x), y).backward()
    loss = train.accumulate_gradients(net, list(zip(x.chunk(3), y.chunk(3), strict=True)),
                                      lambda m, b: F.mse_loss(m(b[0]), b[1]))
    assert torch.allclose(net.weight.grad, whole.weight.grad, atol=1e-6)
    assert abs(loss - F.mse_loss(whole(x), y).item()) < 1e-5
