"""Lesson 06: more heads mean more (L, L) scores, so the attention's peak memory grows with H."""

from __future__ import annotations

import pytest

from utils import memory
from utils.memory import AttentionCall

linux_only = pytest.mark.skipif(not memory.can_measure("cpu"), reason="the CPU measurement needs Linux /proc")


@linux_only
def test_attention_peak_memory_grows_in_proportion_to_the_number_of_heads() -> None:
    length, d_model = 512, 64  # the same width for every H: only the (1, H, L, L) tensors change
    sweep = [AttentionCall("naive", length, heads=h, head_dim=d_model // h, is_causal=False) for h in (1, 4)]
    # the first call of a fresh process also allocates a library workspace once: measured, dropped
    one_head, four_heads = memory.measure_peaks(sweep[:1] + sweep, "cpu")[1:]
    assert 3 <= four_heads / one_head <= 5, (one_head, four_heads)
    scores = memory.score_matrix_bytes(1, 4, length)  # one (1, H, L, L) float32 tensor
    assert 1.5 <= four_heads / scores <= 2.5, "the scores and the weights, each (1, H, L, L)"
