"""Sliding-window attention (Beltagy et al. 2020; Jiang et al. 2023): query i sees keys
i - W < j <= i, and its KV cache keeps only the last W - 1 positions."""

from __future__ import annotations

import pytest
import torch

from utils.models.attention import KVCache, MultiHeadAttention, sliding_window_mask
from utils.models.gpt import GPT, GPTConfig, kv_cache_bytes_per_token


@pytest.mark.parametrize("seq_len, window", [(1, 1), (6, 1), (6, 3), (9, 4), (5, 8)])
def test_the_mask_matches_a_brute_force_loop(seq_len: int, window: int) -> None:
    expected = torch.tensor([[i - window < j <= i for j in range(seq_len)] for i in range(seq_len)])
    assert torch.equal(sliding_window_mask(seq_len, window), expected)


def test_the_mask_after_a_cache_lines_up_with_the_kept_keys() -> None:
    # 3 queries at positions 10..12, over the last 6 keys (positions 7..12), window 4.
    expected = torch.tensor([[i - 4 < j <= i for j in range(7, 13)] for i in range(10, 13)])
    assert torch.equal(sliding_window_mask(3, 4, offset=10, seq_len_k=6), expected)


def test_a_window_as_long_as_the_text_is_plain_causal_attention() -> None:
    torch.manual_seed(0)
    full = MultiHeadAttention(16, 2).eval()
    windowed = MultiHeadAttention(16, 2, window=9).eval()
    windowed.load_state_dict(full.state_dict())
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(windowed(x, x, x, is_causal=True)[0], full(x, x, x, is_causal=True)[0])


@pytest.mark.parametrize("rotary", [False, True], ids=["plain", "rotary"])
def test_cached_windowed_attention_equals_uncached_over_the_full_sequence(rotary: bool) -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, num_kv_heads=2, rotary=rotary, window=3).eval()
    x = torch.randn(2, 12, 16)
    full, _ = attn(x, x, x, is_causal=True)
    cache = KVCache()
    chunks = [attn(x[:, a:b], x[:, a:b], x[:, a:b], is_causal=True, need_weights=False, cache=cache)[0]
              for a, b in ((0, 4), (4, 5), (5, 9), (9, 10), (10, 11), (11, 12))]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-4)
    assert cache.length() == 12 and cache.layers[0][0].shape[2] == 2  # W - 1 kept


def test_windowed_cached_generation_equals_uncached() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(37, max_len=48, d_model=32, num_heads=4, num_layers=2, d_ff=64, window=5)).eval()
    prompt = torch.randint(1, 37, (3, 7))
    outputs = [model.generate(prompt, 30, temperature=1.0, use_cache=c,
                              generator=torch.Generator().manual_seed(2)) for c in (True, False)]
    assert torch.equal(*outputs)


def test_the_windowed_cache_memory_stays_bounded_by_the_window() -> None:
    config = GPTConfig(37, max_len=64, d_model=32, num_heads=4, num_layers=2, d_ff=64, window=6)
    model = GPT(config).eval()
    _, cache = model.forward_cached(torch.randint(1, 37, (1, 10)))
    sizes = []
    for _ in range(40):
        _, cache = model.forward_cached(torch.randint(1, 37, (1, 1)), cache)
        sizes.append(sum(x.untyped_storage().nbytes() for kv in cache.layers for x in kv))
    assert cache.length() == 50
    assert max(sizes) == cache.nbytes() == 5 * kv_cache_bytes_per_token(config)  # W - 1 tokens


def test_a_window_needs_causal_attention() -> None:
    attn = MultiHeadAttention(16, 2, window=3)
    x = torch.randn(1, 4, 16)
    with pytest.raises(ValueError, match="is_causal=True"):
        attn(x, x, x)
