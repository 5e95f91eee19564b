"""utils.models.attention, lesson 05: scaled dot-product attention and its masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.models.attention import (
    attention_weights,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12)}


def qkv(*lead: int, lq: int = 5, lk: int = 7, d: int = 8, dv: int = 6, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(*lead, lq, d, generator=gen, dtype=dtype)
    k = torch.randn(*lead, lk, d, generator=gen, dtype=dtype)
    v = torch.randn(*lead, lk, dv, generator=gen, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_output_equals_torch_sdpa(dtype: torch.dtype, is_causal: bool) -> None:
    q, k, v = qkv(2, 3, dtype=dtype)
    out, _ = scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_with_a_padding_mask_equals_torch_sdpa(dtype: torch.dtype) -> None:
    q, k, v = qkv(2, 3, dtype=dtype)
    mask = padding_mask(torch.tensor([7, 4]))  # (2, 1, 1, 7)
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL[dtype]
    )


def test_gradients_equal_torch_sdpa() -> None:
    q, k, v = (x.requires_grad_() for x in qkv(2, 3, dtype=torch.float64))
    mask = padding_mask(torch.tensor([7, 3]))
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal_mask(5, 7))
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(expected, (q, k, v), grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


def test_weights_are_a_distribution_over_keys() -> None:
    q, k, v = qkv(2)
    _, weights = scaled_dot_product_attention(q, k, v)
    assert weights.shape == (2, 5, 7)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))


def test_scores_are_scaled_by_the_square_root_of_the_head_dim() -> None:
    q, k, _ = qkv(lq=3, lk=4, d=16)
    expected = torch.softmax(q @ k.T / 4.0, dim=-1)
    torch.testing.assert_close(attention_weights(q, k), expected)


def test_masked_key_never_receives_weight() -> None:
    q, k, v = qkv(2, 3)
    mask = torch.ones(7, dtype=torch.bool)
    mask[[1, 4]] = False
    _, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (weights[..., [1, 4]] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))


def test_masked_key_value_does_not_change_the_output() -> None:
    q, k, v = qkv(2)
    mask = padding_mask(torch.tensor([7, 5]))[:, 0]  # (2, 1, 7)
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    v2 = v.clone()
    v2[1, 5:] = 1e6  # values behind the padding
    out2, _ = scaled_dot_product_attention(q, k, v2, mask=mask)
    torch.testing.assert_close(out, out2)


def test_causal_mask_hides_future_tokens() -> None:
    q, k, v = qkv(lq=6, lk=6)
    _, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    future = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)
    assert (weights[future] == 0).all()
    assert (weights[~future] > 0).all()


@pytest.mark.parametrize(("lq", "lk"), [(3, 7), (7, 3)])
def test_causal_is_top_left_aligned_like_torch_sdpa(lq: int, lk: int) -> None:
    q, k, v = qkv(2, lq=lq, lk=lk)
    out, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert weights[:, 0, 1:].eq(0).all()  # query 0 sees key 0 only, whatever Lk is


def test_causal_and_mask_both_apply() -> None:
    q, k, v = qkv(2, 3, lq=7, lk=7)
    pad = padding_mask(torch.tensor([7, 4]))
    out, _ = scaled_dot_product_attention(q, k, v, mask=pad, is_causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=pad & causal_mask(7, 7))
    torch.testing.assert_close(out, expected)


def test_query_with_no_visible_key_gets_zero_output_and_weights() -> None:
    q, k, v = (x.requires_grad_() for x in qkv(lq=3, lk=4))
    mask = torch.tensor([[True, False, True, False], [False] * 4, [True] * 4])
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (out[1] == 0).all() and (weights[1] == 0).all()
    out.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))
    assert (q.grad[1] == 0).all()


def test_leading_dims_broadcast_between_q_k_v() -> None:
    q, k, v = qkv(2, 3)
    out, _ = scaled_dot_product_attention(q, k[:1], v[:1])  # keys shared across the batch
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k[:1].expand_as(k), v[:1].expand_as(v))
    )


def test_attention_without_positions_is_permutation_equivariant() -> None:
    x = torch.randn(6, 8)
    perm = torch.randperm(6)
    out, _ = scaled_dot_product_attention(x, x, x)
    out_perm, _ = scaled_dot_product_attention(x[perm], x[perm], x[perm])
    torch.testing.assert_close(out_perm, out[perm])


# --- errors that teach -------------------------------------------------------------------


def test_mismatched_head_dims_name_both_shapes() -> None:
    q, k, v = qkv(2, d=8)
    with pytest.raises(ValueError, match=r"q \(2, 5, 8\) and k \(2, 7, 4\)"):
        scaled_dot_product_attention(q, k[..., :4], v)


def test_key_value_length_mismatch_names_both_shapes() -> None:
    q, k, v = qkv(2)
    with pytest.raises(ValueError, match=r"k \(2, 7, 8\) and v \(2, 6, 6\)"):
        scaled_dot_product_attention(q, k, v[:, :6])


@pytest.mark.parametrize("dtype", [torch.float32, torch.long])
def test_non_bool_mask_is_rejected_with_the_convention(dtype: torch.dtype) -> None:
    q, k, v = qkv()
    with pytest.raises(TypeError, match="mask must be bool, True = may attend"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 7, dtype=dtype))


def test_mask_that_does_not_broadcast_names_the_scores_shape() -> None:
    q, k, v = qkv(2)
    with pytest.raises(ValueError, match=r"mask of shape \(2, 5\).*\(2, 5, 7\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 5, dtype=torch.bool))


def test_mask_that_would_grow_the_batch_is_rejected() -> None:
    q, k, v = qkv()  # no batch dim
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 5, 7, dtype=torch.bool))


def test_mixed_dtypes_are_rejected() -> None:
    q, k, v = qkv()
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(q, k.double(), v)


# --- mask helpers ------------------------------------------------------------------------


def test_causal_mask_allows_the_past_and_the_present() -> None:
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(causal_mask(3, 4), expected)
    assert causal_mask(5).shape == (5, 5)


def test_padding_mask_from_lengths_marks_real_tokens() -> None:
    mask = padding_mask(torch.tensor([3, 1]), max_len=4)
    assert mask.shape == (2, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]


def test_padding_mask_from_a_token_mask_equals_the_one_from_lengths() -> None:
    tokens = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.equal(padding_mask(tokens), padding_mask(torch.tensor([2, 3])))


def test_padding_mask_rejects_a_length_beyond_max_len() -> None:
    with pytest.raises(ValueError, match="exceeds max_len=3"):
        padding_mask(torch.tensor([4, 2]), max_len=3)


def test_padding_mask_rejects_float_lengths() -> None:
    with pytest.raises(ValueError, match="integer lengths"):
        padding_mask(torch.tensor([2.0, 3.0]))
