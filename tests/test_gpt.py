"""utils.models.gpt and utils.sampling: the decoder-only model of lesson 09 and its KV cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.models.attention import KVCache, MultiHeadAttention
from utils.models.gpt import GPT, GPTConfig, cached_self_attention, gpt_block, parameter_count
from utils.models.translation_transformer import Transformer, TransformerConfig
from utils.sampling import sample_next, top_k_filter
from utils.training import count_parameters


def _gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    sizes = dict(vocab_size=37, max_len=48, d_model=32, num_heads=4, num_layers=2, d_ff=64)
    return GPT(GPTConfig(**{**sizes, **overrides})).eval()


def test_logits_have_one_distribution_per_position() -> None:
    assert _gpt()(torch.randint(1, 37, (3, 9))).shape == (3, 9, 37)


def test_changing_a_future_token_never_changes_an_earlier_output() -> None:
    model = _gpt()
    ids = torch.randint(1, 37, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = torch.randint(1, 37, (2, 4))
    torch.testing.assert_close(model(ids)[:, :6], model(changed)[:, :6])


def test_right_padding_never_changes_real_positions() -> None:
    model = _gpt()
    ids = torch.randint(1, 37, (1, 7))
    padded = F.pad(ids, (0, 5))  # pad id 0 after the real tokens
    torch.testing.assert_close(model(padded)[:, :7], model(ids), atol=1e-5, rtol=1e-4)


def test_loss_with_targets_is_cross_entropy_ignoring_minus_100() -> None:
    model = _gpt()
    ids = torch.randint(1, 37, (2, 8))
    targets = torch.randint(1, 37, (2, 8))
    targets[:, :3] = -100  # the prompt carries no loss
    logits = model(ids)
    expected = F.cross_entropy(logits[:, 3:].flatten(0, 1), targets[:, 3:].flatten())
    torch.testing.assert_close(model(ids, targets), expected)


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_parameter_count_matches_the_formula(tie: bool) -> None:
    model = _gpt(tie_embeddings=tie, num_layers=3)
    assert count_parameters(model) == parameter_count(model.config)


def test_cached_attention_equals_full_causal_attention() -> None:
    torch.manual_seed(0)
    block = gpt_block(32, 4, 64).eval()
    x = torch.randn(2, 9, 32)
    full, _ = block.self_attn(x, x, x, is_causal=True)
    first, past = cached_self_attention(block.self_attn, x[:, :5])  # a prompt of 5 tokens
    steps = [first]
    for t in range(5, 9):  # then one token at a time
        out, past = cached_self_attention(block.self_attn, x[:, t : t + 1], past)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)
    assert past[0].shape == (2, 4, 9, 8)  # (B, H, T, Dh)


def test_forward_cached_in_chunks_equals_forward() -> None:
    model = _gpt()
    ids = torch.randint(1, 37, (2, 12))
    logits_a, past = model.forward_cached(ids[:, :4])
    logits_b, past = model.forward_cached(ids[:, 4:9], past)
    logits_c, _ = model.forward_cached(ids[:, 9:], past)
    torch.testing.assert_close(torch.cat([logits_a, logits_b, logits_c], 1), model(ids),
                               atol=1e-5, rtol=1e-4)


def test_the_gpt_and_the_translation_decoder_share_one_kv_cache_type() -> None:
    _, gpt_cache = _gpt().forward_cached(torch.randint(1, 37, (2, 3)))
    translator = Transformer(TransformerConfig(20, 20, d_model=16, num_heads=2, d_ff=32, dropout=0.0))
    state = translator.start(torch.randint(3, 20, (2, 5)))
    assert type(gpt_cache) is type(state["cache"]) is type(state["memory_cache"]) is KVCache
    assert gpt_cache.length() == 3 and state["memory_cache"].length() == 5


def test_forward_cached_leaves_the_callers_cache_as_it_was() -> None:
    model = _gpt()
    _, past = model.forward_cached(torch.randint(1, 37, (2, 4)))
    _, longer = model.forward_cached(torch.randint(1, 37, (2, 2)), past)
    assert past.length() == 4 and longer.length() == 6


def test_cached_rotary_attention_equals_full_causal_attention() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 2, rotary=True).eval()
    x = torch.randn(2, 7, 16)
    full, _ = attn(x, x, x, is_causal=True)
    cache = KVCache()
    chunks = [attn(x[:, a:b], x[:, a:b], x[:, a:b], is_causal=True, cache=cache)[0]
              for a, b in ((0, 3), (3, 4), (4, 7))]  # the rotary offset is the cache's length
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (1.0, None), (0.8, 5)],
                         ids=["greedy", "sampled", "top-k"])
def test_cached_and_uncached_generation_give_identical_tokens(temperature: float, top_k) -> None:
    model = _gpt()
    prompt = torch.randint(1, 37, (3, 5))
    outputs = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(1)
        outputs.append(model.generate(prompt, 30, temperature=temperature, top_k=top_k,
                                      use_cache=use_cache, generator=generator))
    assert outputs[0].shape == (3, 35)
    assert torch.equal(outputs[0], outputs[1])


def test_generation_stops_at_eos_and_pads_with_it() -> None:
    model = _gpt()
    prompt = torch.randint(1, 37, (4, 3))
    out = model.generate(prompt, 20, temperature=1.0, eos_id=5, generator=torch.Generator().manual_seed(0))
    for row in out[:, 3:].tolist():
        if 5 in row:
            assert all(t == 5 for t in row[row.index(5):])
    assert (out[:, -1] == 5).all() or out.shape[1] == 23


def test_generation_refuses_to_outgrow_the_context() -> None:
    with pytest.raises(ValueError, match="max_len"):
        _gpt().generate(torch.ones(1, 40, dtype=torch.long), 20)


def test_top_k_keeps_only_the_k_largest_logits() -> None:
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0]])
    kept = top_k_filter(logits, 2)
    assert torch.isinf(kept[0, [0, 2]]).all() and torch.equal(kept[0, [1, 3]], logits[0, [1, 3]])


def test_temperature_zero_is_greedy_and_top_k_one_is_greedy() -> None:
    logits = torch.randn(6, 10)
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 1.0, top_k=1), logits.argmax(-1))


def test_low_temperature_concentrates_the_samples() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]]).expand(2000, -1)
    generator = torch.Generator().manual_seed(0)
    cold = sample_next(logits, 0.3, generator=generator)
    warm = sample_next(logits, 3.0, generator=generator)
    assert (cold == 0).float().mean() > 0.9 > (warm == 0).float().mean()


@pytest.mark.parametrize("num_kv_heads, window", [(2, None), (1, 4)], ids=["GQA", "MQA-windowed"])
def test_parameter_count_matches_the_formula_with_fewer_kv_heads(num_kv_heads: int, window) -> None:
    model = _gpt(num_kv_heads=num_kv_heads, window=window)
    assert count_parameters(model) == parameter_count(model.config)


def test_the_default_config_builds_the_same_model_as_before_the_variants() -> None:
    # num_kv_heads=None and window=None: plain multi-head attention, same weights for a seed.
    default, explicit = _gpt(), _gpt(num_kv_heads=4)
    assert type(default.blocks[0].self_attn) is MultiHeadAttention
    assert default.blocks[0].self_attn.num_kv_heads == 4 and default.blocks[0].self_attn.window is None
    for (name, a), (_, b) in zip(default.state_dict().items(), explicit.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_generate_with_top_p_gives_identical_tokens_with_and_without_the_cache() -> None:
    model = _gpt()
    prompt = torch.randint(1, 37, (2, 4))
    outputs = [model.generate(prompt, 20, temperature=1.0, top_p=0.8, use_cache=c,
                              generator=torch.Generator().manual_seed(3)) for c in (True, False)]
    assert torch.equal(*outputs)
