"""utils.models.attention, lesson 06: MultiHeadAttention equals nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.models.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    split_heads,
)

D_MODEL, HEADS = 16, 4
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12)}


def pair(dtype: torch.dtype = torch.float32, bias: bool = True):
    """nn.MultiheadAttention (batch first) and ours with the same weights, in eval mode."""
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(D_MODEL, HEADS, bias=bias, batch_first=True).to(dtype)
    if bias:  # PyTorch starts the biases at zero; make them count
        nn.init.normal_(theirs.in_proj_bias)
        nn.init.normal_(theirs.out_proj.bias)
    return theirs.eval(), MultiHeadAttention.from_torch(theirs).eval()


def inputs(batch: int = 2, lq: int = 5, lk: int = 7, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(1)
    query = torch.randn(batch, lq, D_MODEL, generator=gen, dtype=dtype)
    memory = torch.randn(batch, lk, D_MODEL, generator=gen, dtype=dtype)
    return query, memory


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_equals_nn_multihead_attention(dtype: torch.dtype, bias: bool) -> None:
    theirs, ours = pair(dtype, bias)
    x, _ = inputs(dtype=dtype)
    out, weights = ours(x, x, x)
    expected, expected_weights = theirs(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, expected, **TOL[dtype])
    torch.testing.assert_close(weights, expected_weights, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_attention_with_key_padding_equals_nn_multihead_attention(dtype: torch.dtype) -> None:
    theirs, ours = pair(dtype)
    query, memory = inputs(dtype=dtype)
    lengths = torch.tensor([7, 4])
    out, weights = ours(query, memory, memory, mask=padding_mask(lengths))
    # nn.MultiheadAttention's key_padding_mask is the opposite: True = padding, ignore it.
    ignore = ~padding_mask(lengths)[:, 0, 0]  # (B, Lk)
    expected, expected_weights = theirs(
        query, memory, memory, key_padding_mask=ignore, average_attn_weights=False
    )
    torch.testing.assert_close(out, expected, **TOL[dtype])
    torch.testing.assert_close(weights, expected_weights, **TOL[dtype])


def test_causal_self_attention_equals_nn_multihead_attention_with_attn_mask() -> None:
    theirs, ours = pair()
    x, _ = inputs(lq=6)
    out, _ = ours(x, x, x, is_causal=True)
    # attn_mask is also "True = not allowed" in nn.MultiheadAttention.
    expected, _ = theirs(x, x, x, attn_mask=~causal_mask(6))
    torch.testing.assert_close(out, expected, **TOL[torch.float32])


def test_gradients_equal_nn_multihead_attention() -> None:
    theirs, ours = pair(torch.float64)
    x, _ = inputs(dtype=torch.float64)
    ours(x, x, x, is_causal=True)[0].square().sum().backward()
    theirs(x, x, x, attn_mask=~causal_mask(5))[0].square().sum().backward()
    theirs_q, theirs_k, theirs_v = theirs.in_proj_weight.grad.chunk(3)
    for ours_grad, theirs_grad in [
        (ours.q_proj.weight.grad, theirs_q),
        (ours.k_proj.weight.grad, theirs_k),
        (ours.v_proj.weight.grad, theirs_v),
        (ours.out_proj.weight.grad, theirs.out_proj.weight.grad),
        (ours.out_proj.bias.grad, theirs.out_proj.bias.grad),
    ]:
        torch.testing.assert_close(ours_grad, theirs_grad, **TOL[torch.float64])


def test_output_and_weights_have_batch_first_shapes() -> None:
    _, ours = pair()
    query, memory = inputs(batch=3, lq=5, lk=9)
    out, weights = ours(query, memory, memory)
    assert out.shape == (3, 5, D_MODEL)
    assert weights.shape == (3, HEADS, 5, 9)


@pytest.mark.parametrize("is_causal", [False, True])
def test_fast_path_equals_the_explicit_path(is_causal: bool) -> None:
    _, ours = pair(torch.float64)
    x, _ = inputs(lq=7, dtype=torch.float64)
    mask = padding_mask(torch.tensor([7, 3]))
    explicit, _ = ours(x, x, x, mask=mask, is_causal=is_causal)
    fast, weights = ours(x, x, x, mask=mask, is_causal=is_causal, need_weights=False)
    assert weights is None
    torch.testing.assert_close(fast, explicit, **TOL[torch.float64])


def test_fast_path_keeps_zero_output_for_a_query_with_no_visible_key() -> None:
    _, ours = pair(torch.float64)
    x, _ = inputs(lq=4, lk=4, dtype=torch.float64)
    x.requires_grad_()
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[2] = False  # query 2 may see nothing
    explicit, _ = ours(x, x, x, mask=mask)
    fast, _ = ours(x, x, x, mask=mask, need_weights=False)
    torch.testing.assert_close(fast, explicit, **TOL[torch.float64])
    fast.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_dropout_acts_only_in_training() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_MODEL, HEADS, dropout=0.5)
    x, _ = inputs()
    mha.eval()
    assert torch.equal(mha(x, x, x)[0], mha(x, x, x)[0])
    mha.train()
    assert not torch.equal(mha(x, x, x)[0], mha(x, x, x)[0])


def test_to_torch_gives_back_the_same_module() -> None:
    _, ours = pair()
    x, _ = inputs()
    theirs = ours.to_torch().eval()
    torch.testing.assert_close(theirs(x, x, x)[0], ours(x, x, x)[0], **TOL[torch.float32])


def test_d_model_not_divisible_by_num_heads_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"d_model=10 must be divisible by num_heads=4.*\[1, 2, 5, 10\]"
    ):
        MultiHeadAttention(10, 4)


def test_sequence_first_input_is_rejected_with_a_hint() -> None:
    _, ours = pair()
    with pytest.raises(ValueError, match=r"\(B, T, d_model=16\).*got \(2, 5\)"):
        ours(torch.randn(2, 5), torch.randn(2, 5), torch.randn(2, 5))


def test_key_and_value_of_different_lengths_are_rejected() -> None:
    _, ours = pair()
    query, memory = inputs()
    with pytest.raises(ValueError, match="key and value must have the same length"):
        ours(query, memory, memory[:, :3])


def test_split_heads_gives_each_head_its_slice_of_features() -> None:
    x = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)  # (B, T, D)
    heads = split_heads(x, num_heads=4)
    assert heads.shape == (2, 4, 3, 2)  # (B, H, T, Dh)
    torch.testing.assert_close(heads[:, 1], x[..., 2:4])  # head 1 holds features 2..3


def test_merge_heads_undoes_split_heads() -> None:
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(merge_heads(split_heads(x, 4)), x)
