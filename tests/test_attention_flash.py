"""utils.models.attention, lesson 10: FlashAttention in PyTorch equals SDPA, in less memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.bench.attention import peak_memory_bytes
from utils.models import attention
from utils.models.attention import flash_attention, online_softmax_update

TOL = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}


def random_qkv(lead, lq, lk, d, dv, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, lq, d, generator=gen, dtype=dtype).requires_grad_()
    k = torch.randn(*lead, lk, d, generator=gen, dtype=dtype).requires_grad_()
    v = torch.randn(*lead, lk, dv, generator=gen, dtype=dtype).requires_grad_()
    return q, k, v


def assert_same_as_sdpa(q, k, v, block_size, is_causal):
    out = flash_attention(q, k, v, block_size=block_size, is_causal=is_causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    tol = TOL[q.dtype]
    torch.testing.assert_close(out, expected, **tol)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(expected, (q, k, v), grad)
    for name, a, b in zip("qkv", ours, theirs, strict=True):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"d{name}: {m}")


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 2),
    heads=st.integers(1, 3),
    lq=st.integers(1, 40),
    lk=st.integers(1, 40),
    d=st.sampled_from([1, 4, 16]),
    dv=st.sampled_from([3, 16]),
    block_size=st.sampled_from([4, 7, 16, 64]),
    is_causal=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_values_and_gradients_equal_sdpa_on_random_shapes(
    batch, heads, lq, lk, d, dv, block_size, is_causal, dtype
) -> None:
    q, k, v = random_qkv((batch, heads), lq, lk, d, dv, dtype)
    assert_same_as_sdpa(q, k, v, block_size, is_causal)


@pytest.mark.parametrize(("lq", "lk"), [(10, 23), (23, 10)])
def test_causal_with_lq_not_lk_is_top_left_aligned_like_sdpa(lq: int, lk: int) -> None:
    q, k, v = random_qkv((2,), lq, lk, 8, 8, torch.float64)
    assert_same_as_sdpa(q, k, v, block_size=4, is_causal=True)
    out = flash_attention(q, k, v, block_size=4, is_causal=True)
    torch.testing.assert_close(out[:, 0], v[:, 0])  # query 0 sees key 0 only


def test_gradcheck_passes() -> None:
    q, k, v = random_qkv((2,), 5, 6, 3, 2, torch.float64)
    assert torch.autograd.gradcheck(lambda q, k, v: flash_attention(q, k, v, 2, True), (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_accumulated_in_float32(dtype: torch.dtype) -> None:
    q, k, v = random_qkv((2,), 33, 33, 16, 16, torch.float32)
    out = flash_attention(q.to(dtype), k.to(dtype), v.to(dtype), block_size=8)
    assert out.dtype == dtype
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)


def test_leading_dims_broadcast_and_gradients_sum_over_them() -> None:
    q, _, _ = random_qkv((2, 3), 9, 9, 4, 4, torch.float64)
    _, k, v = random_qkv((1, 3), 9, 9, 4, 4, torch.float64, seed=1)  # shared over the batch
    assert_same_as_sdpa(q, k, v, block_size=4, is_causal=False)


def test_non_contiguous_inputs_are_accepted() -> None:
    # (B, L, H, Dh) tensors seen as (B, H, L, Dh), as split_heads leaves them
    q, k, v = (
        torch.randn(2, 9, 3, 8, dtype=torch.float64).transpose(1, 2).requires_grad_()
        for _ in range(3)
    )
    assert not q.is_contiguous()
    assert_same_as_sdpa(q, k, v, block_size=4, is_causal=True)


def test_causal_skips_key_blocks_above_the_diagonal(monkeypatch) -> None:
    calls = []

    def counting(*args):
        calls.append(1)
        return online_softmax_update(*args)

    monkeypatch.setattr(attention, "online_softmax_update", counting)
    q, k, v = random_qkv((1,), 32, 32, 4, 4, torch.float32)
    flash_attention(q, k, v, block_size=8, is_causal=True)
    assert len(calls) == 1 + 2 + 3 + 4  # query block i visits key blocks 0..i only
    calls.clear()
    flash_attention(q, k, v, block_size=8, is_causal=False)
    assert len(calls) == 4 * 4


# --- the online softmax step (lesson 10's exercise) ---------------------------------------


def test_online_softmax_over_blocks_equals_softmax_then_matmul() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 5, 12, generator=gen, dtype=torch.float64) * 10
    v = torch.randn(3, 12, 4, generator=gen, dtype=torch.float64)
    m = torch.full((3, 5), float("-inf"), dtype=torch.float64)
    l = torch.zeros(3, 5, dtype=torch.float64)
    acc = torch.zeros(3, 5, 4, dtype=torch.float64)
    for start in range(0, 12, 5):  # blocks of 5, 5 and 2 keys
        m, l, acc = online_softmax_update(
            m, l, acc, scores[..., start : start + 5], v[:, start : start + 5]
        )
    torch.testing.assert_close(m, scores.amax(-1))
    torch.testing.assert_close(l, torch.exp(scores - m[..., None]).sum(-1))
    torch.testing.assert_close(acc / l[..., None], torch.softmax(scores, -1) @ v)


def test_online_softmax_survives_a_block_with_every_key_masked() -> None:
    scores = torch.randn(2, 6)
    scores[0, :3] = float("-inf")  # row 0: its first block is all masked
    v = torch.randn(6, 3)
    m, l, acc = torch.full((2,), float("-inf")), torch.zeros(2), torch.zeros(2, 3)
    m, l, acc = online_softmax_update(m, l, acc, scores[:, :3], v[:3])
    assert torch.isfinite(l).all() and torch.isfinite(acc).all() and l[0] == 0
    m, l, acc = online_softmax_update(m, l, acc, scores[:, 3:], v[3:])
    torch.testing.assert_close(acc / l[:, None], torch.softmax(scores, -1) @ v)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [0, -1, 2.5, True])
def test_bad_block_size_is_rejected(block_size) -> None:
    q, k, v = random_qkv((1,), 4, 4, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        flash_attention(q, k, v, block_size=block_size)


def test_integer_tensors_are_rejected() -> None:
    q = torch.ones(4, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="floating-point"):
        flash_attention(q, q, q)


def test_mismatched_dtypes_are_rejected() -> None:
    q, k, v = random_qkv((1,), 4, 4, 4, 4, torch.float32)
    with pytest.raises(TypeError, match="one dtype"):
        flash_attention(q, k.double(), v)


def test_mismatched_devices_are_rejected() -> None:
    q, k, v = random_qkv((1,), 4, 4, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="one device"):
        flash_attention(q, k.to("meta"), v)


def test_mismatched_head_dims_are_rejected() -> None:
    q, k, v = random_qkv((1,), 4, 4, 4, 4, torch.float32)
    with pytest.raises(ValueError, match=r"q \(1, 4, 4\) and k \(1, 4, 3\)"):
        flash_attention(q, k[..., :3], v)


def test_no_keys_is_rejected() -> None:
    q, k, v = random_qkv((1,), 4, 0, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="at least one key"):
        flash_attention(q, k, v)


# --- memory ------------------------------------------------------------------------------


@pytest.mark.slow
def test_peak_memory_at_4096_is_10x_below_naive_attention() -> None:
    shape = dict(batch=1, heads=1, length=4096, head_dim=64, dtype=torch.float32)
    naive = peak_memory_bytes("naive", **shape)
    flash = peak_memory_bytes("flash", **shape, block_size=64)
    assert naive > 4096 * 4096 * 4  # at least one (L, L) float32 matrix: the measure works
    assert flash * 10 <= naive, f"flash {flash / 2**20:.1f} MiB vs naive {naive / 2**20:.1f} MiB"


def test_key_blocks_cover_exactly_the_visible_keys_and_mask_only_the_diagonal() -> None:
    length, size = 20, 6
    for causal in (False, True):
        for q_start in range(0, length, size):
            q_end = min(q_start + size, length)
            blocks = attention.key_blocks(q_start, q_end, length, size, causal)
            covered = [j for start, end, _ in blocks for j in range(start, end)]
            visible = range(q_end) if causal else range(length)  # some query of the block sees key j
            assert covered == list(visible)
            for start, end, needs_mask in blocks:
                hidden = any(j > i for i in range(q_start, q_end) for j in range(start, end))
                assert needs_mask == (causal and hidden)
