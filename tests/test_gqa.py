"""Grouped-query and multi-query attention (Ainslie et al. 2023; Shazeer 2019): K/V heads
shared by groups of query heads, and a KV cache that stores only the K/V heads."""

from __future__ import annotations

import pytest
import torch

from utils.models.attention import KVCache, MultiHeadAttention
from utils.models.gpt import GPT, GPTConfig, kv_cache_bytes_per_token


def test_as_many_kv_heads_as_heads_is_the_plain_module_bit_for_bit() -> None:
    torch.manual_seed(0)
    plain = MultiHeadAttention(32, 4).eval()
    grouped = MultiHeadAttention(32, 4, num_kv_heads=4).eval()
    grouped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 7, 32)
    for need_weights in (True, False):
        a, _ = plain(x, x, x, is_causal=True, need_weights=need_weights)
        b, _ = grouped(x, x, x, is_causal=True, need_weights=need_weights)
        assert torch.equal(a, b)


@pytest.mark.parametrize("num_kv_heads", [1, 2], ids=["MQA", "GQA"])
def test_gqa_equals_mha_whose_kv_weights_are_the_repeated_kv_heads(num_kv_heads: int) -> None:
    torch.manual_seed(0)
    d_model, heads = 32, 4
    head_dim, group = d_model // heads, heads // num_kv_heads
    gqa = MultiHeadAttention(d_model, heads, num_kv_heads=num_kv_heads).eval()
    assert gqa.k_proj.weight.shape == (num_kv_heads * head_dim, d_model)
    mha = MultiHeadAttention(d_model, heads).eval()
    state = dict(gqa.state_dict())
    for name in ("k_proj", "v_proj"):  # query head h reads K/V head h // group
        w = state[f"{name}.weight"].view(num_kv_heads, head_dim, d_model)
        state[f"{name}.weight"] = w.repeat_interleave(group, 0).reshape(d_model, d_model)
        b = state[f"{name}.bias"].view(num_kv_heads, head_dim)
        state[f"{name}.bias"] = b.repeat_interleave(group, 0).flatten()
    mha.load_state_dict(state)
    x = torch.randn(2, 6, d_model)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, None, :]  # (B, 1, 1, Lk)
    for need_weights in (True, False):
        torch.testing.assert_close(gqa(x, x, x, mask=mask, need_weights=need_weights)[0],
                                   mha(x, x, x, mask=mask, need_weights=need_weights)[0])


def test_num_heads_not_divisible_by_kv_heads_is_refused() -> None:
    with pytest.raises(ValueError, match="divisible by num_kv_heads=3"):
        MultiHeadAttention(32, 4, num_kv_heads=3)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_cached_grouped_generation_equals_uncached(num_kv_heads: int) -> None:
    torch.manual_seed(0)
    config = GPTConfig(37, max_len=40, d_model=32, num_heads=4, num_layers=2, d_ff=64,
                       num_kv_heads=num_kv_heads)
    model = GPT(config).eval()
    prompt = torch.randint(1, 37, (3, 5))
    outputs = [model.generate(prompt, 25, temperature=1.0, top_p=0.9, use_cache=c,
                              generator=torch.Generator().manual_seed(1)) for c in (True, False)]
    assert torch.equal(*outputs)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_the_cache_holds_only_the_kv_heads_as_the_formula_says(num_kv_heads: int) -> None:
    config = GPTConfig(37, max_len=40, d_model=32, num_heads=4, num_layers=3, d_ff=64,
                       num_kv_heads=num_kv_heads)
    _, cache = GPT(config).eval().forward_cached(torch.randint(1, 37, (2, 11)))
    assert cache.layers[0][0].shape == (2, num_kv_heads, 11, 8)  # (B, Hkv, T, Dh)
    assert cache.nbytes() == 2 * 11 * kv_cache_bytes_per_token(config)  # B · T · per token


def test_the_formula_at_gpt2_small_shape() -> None:
    def per_token(kv: int | None) -> int:
        config = GPTConfig(50257, max_len=1024, d_model=768, num_heads=12, num_layers=12, num_kv_heads=kv)
        return kv_cache_bytes_per_token(config, torch.float16)
    assert (per_token(None), per_token(4), per_token(1)) == (36864, 12288, 3072)  # 2·12·Hkv·64·2


def test_cached_attention_with_one_kv_head_equals_full_attention() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, num_kv_heads=1, rotary=True).eval()
    x = torch.randn(2, 7, 16)
    full, _ = attn(x, x, x, is_causal=True)
    cache = KVCache()
    chunks = [attn(x[:, a:b], x[:, a:b], x[:, a:b], is_causal=True, cache=cache)[0]
              for a, b in ((0, 3), (3, 4), (4, 7))]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-4)
    assert cache.layers[0][0].shape == (2, 1, 7, 4)
