"""FlashAttention's forward and backward passes as Triton kernels (lesson 10).

The same algorithm as `utils.models.attention.flash_attention_forward` (Dao et al. 2022;
loop order of FlashAttention-2, Dao 2023), but one GPU program now owns a tile of
BLOCK_M queries and keeps its running max `m`, running sum `l` and accumulator `acc` in
registers while it streams the keys and values through in blocks of BLOCK_N. The
(L, L) score matrix never exists, not even in the GPU's main memory.

Two tricks that the PyTorch version does not need:
- exp2 instead of exp: e^x = 2^(x·log2 e), and the GPU has a fast 2^x instruction; we fold
  log2 e into the softmax scale once (`qk_scale`);
- causal attention visits the key blocks left of the diagonal without any masking (every
  key there is visible to every query of the tile), then the few blocks on the diagonal
  with the mask: the common case pays nothing for the mask.

The backward pass (FlashAttention-2's, Dao 2023) stores nothing of size L²: the forward
saves one log-sum-exp per query row (in base 2, `lse2`), from which each tile's
probabilities are recomputed. Two kernels, each the only writer of what it computes (no
atomics, deterministic): one per block of keys accumulates dK and dV over the query blocks,
one per block of queries accumulates dQ over the key blocks. `triton_flash_attention`
returns a tensor with this backward whenever q, k or v requires grad (`TritonFlashAttention`).
Causal attention is top-left aligned, like SDPA's is_causal: query i sees keys j <= i, so
every row sees key 0 and has a finite lse2, even when Lq > Lk.

Triton is optional: importing this module works without it, and `triton_flash_attention`
then raises an error that says what to install. On a machine without a GPU, run the
kernel in Triton's interpreter (float32 only): set `TRITON_INTERPRET=1` *before* this
module is imported, since Triton reads it when the kernels are decorated. (Triton 3.9's
interpreter works; 3.6's fails under NumPy >= 2.5, which no longer lets it call int() on a
one-element array.)

Measured on an H200 (torch 2.11, Triton 3.6, bf16, B=4, H=16, head_dim 64, causal, with
`python -m utils.bench attention`): about 390 TFLOP/s at L=4096 and 410 at L=16384, within
about 5% of `F.scaled_dot_product_attention` (64x64 tiles; `--sweep` times other configs).
Forward + backward against SDPA: `python -m utils.bench flash_backward` (`--sweep` times
the backward configs of SWEEP).
"""

from __future__ import annotations  # kernel annotations stay strings: defined without Triton

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton ships with PyTorch's CUDA wheels on Linux; elsewhere it may be absent
    triton = None
    tl = None

SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
LOG2_E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2_E)


def _jit(fn: Callable) -> Callable:
    """`triton.jit` where Triton is installed; elsewhere the plain function (never launched)."""
    return fn if triton is None else triton.jit(fn)


@_jit
def _attend_to_key_blocks(
    acc,  # (BLOCK_M, HEAD_DIM) float32: running Σ exp2(s - m) · v for each query row
    l_i,  # (BLOCK_M,) float32: running Σ exp2(s - m)
    m_i,  # (BLOCK_M,) float32: running max of the (log2-scaled) scores
    q,  # (BLOCK_M, HEAD_DIM): this program's queries, loaded once
    k_base,  # pointer to key 0 of this (batch, head)
    v_base,  # pointer to value 0 of this (batch, head)
    stride_kn,
    stride_kd,
    stride_vn,
    stride_vd,
    offs_m,  # (BLOCK_M,) the query rows' positions
    offs_d,  # (HEAD_DIM,) feature indices
    key_start,  # first key to visit, a multiple of BLOCK_N
    key_end,  # one past the last key to visit
    seq_len_k,
    qk_scale,  # softmax scale times log2(e)
    BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,  # False: every key in range is in bounds and visible to every row
    IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Fold keys key_start..key_end-1 into (acc, l_i, m_i), BLOCK_N keys at a time."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(key_start, key_end, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)  # lets Triton use wide, aligned loads
        cols = start_n + offs_n  # (BLOCK_N,) the keys' positions
        k_ptrs = k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd
        v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd

        # 1. Scores of the tile, S = Q Kᵀ, accumulated in float32 on the tensor cores.
        if MASKED:
            in_bounds = cols < seq_len_k  # the last block may stick out past the keys
            k = tl.load(k_ptrs, mask=in_bounds[:, None], other=0.0)
        else:
            k = tl.load(k_ptrs)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)  # (BLOCK_M, BLOCK_N)

        # 2. New running max per row, then the tile's probabilities relative to it.
        #    Scaling by qk_scale > 0 commutes with max, so unmasked tiles scale once, fused
        #    into the subtraction; masked tiles first put -inf where a key is hidden.
        if MASKED:
            visible = in_bounds[None, :]
            if IS_CAUSAL:
                visible = visible & (cols[None, :] <= offs_m[:, None])  # key j <= query i
            s = tl.where(visible, s * qk_scale, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.math.exp2(s - m_new[:, None])  # exp2(-inf) = 0 for hidden keys
        else:
            m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
            p = tl.math.exp2(s * qk_scale - m_new[:, None])  # (BLOCK_M, BLOCK_N)

        # 3. Rescale what was accumulated under the old max: alpha = 2^(m_old - m_new) <= 1.
        #    (A tile always has a visible key for each row, so m_new is finite; m_i starts at
        #    -inf, which gives alpha = 0 on the first tile.)
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]

        # 4. Add this tile's share of the output, P V, again on the tensor cores.
        if MASKED:
            v = tl.load(v_ptrs, mask=in_bounds[:, None], other=0.0)
        else:
            v = tl.load(v_ptrs)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@_jit
def _flash_attention_forward_kernel(
    Q,
    K,
    V,
    Out,
    Lse,  # (B, H, Lq) float32, written when STORE_LSE: the backward's row statistics
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_om,
    stride_od,
    num_heads,
    seq_len_q,
    seq_len_k,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,  # BLOCK_M must be a multiple of BLOCK_N (see the causal split)
    IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    STORE_LSE: tl.constexpr,  # False when no gradient is needed: nothing extra is written
):
    """One program: BLOCK_M query rows of one (batch, head) -> their BLOCK_M output rows."""
    # Which tile is ours. Causal tiles further down do more work (they see more keys):
    # start those first, so that the last programs to finish are short ones.
    pid_m = tl.program_id(0)
    if IS_CAUSAL:
        pid_m = tl.num_programs(0) - 1 - pid_m
    pid_bh = tl.program_id(1)
    batch = (pid_bh // num_heads).to(tl.int64)  # 64-bit: B·H·L·D can pass 2^31 elements
    head = (pid_bh % num_heads).to(tl.int64)
    q_base = Q + batch * stride_qb + head * stride_qh
    k_base = K + batch * stride_kb + head * stride_kh
    v_base = V + batch * stride_vb + head * stride_vh
    o_base = Out + batch * stride_ob + head * stride_oh

    # Load this tile's queries once; they stay in registers for the whole key loop.
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    q_ptrs = q_base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    row_ok = offs_m[:, None] < seq_len_q  # the last tile may stick out past the queries
    q = tl.load(q_ptrs, mask=row_ok, other=0.0)

    # The online softmax's state (Dao et al. 2022, algorithm 1), in float32.
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # Split the keys into a part that needs no mask and a part that does.
    whole_blocks_end = (seq_len_k // BLOCK_N) * BLOCK_N  # keys in complete blocks
    if IS_CAUSAL:
        # Keys j < start_m are visible to every row i >= start_m (top-left alignment, like
        # SDPA); keys j >= start_m + BLOCK_M to none, so those blocks are never visited.
        unmasked_end = tl.minimum(start_m, whole_blocks_end)
        masked_end = tl.minimum(start_m + BLOCK_M, seq_len_k)
    else:
        unmasked_end = whole_blocks_end
        masked_end = seq_len_k  # at most one partial block at the end
    # Stage 1: the fully visible blocks, without masks.
    acc, l_i, m_i = _attend_to_key_blocks(
        acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        offs_m, offs_d, 0, unmasked_end, seq_len_k, qk_scale,
        BLOCK_N, False, IS_CAUSAL, DOT_PRECISION,
    )  # fmt: skip
    # Stage 2: the diagonal blocks (causal) and the partial last block, with masks.
    acc, l_i, m_i = _attend_to_key_blocks(
        acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        offs_m, offs_d, unmasked_end, masked_end, seq_len_k, qk_scale,
        BLOCK_N, True, IS_CAUSAL, DOT_PRECISION,
    )  # fmt: skip

    # Normalise once at the end (not per tile) and write the tile's output rows.
    out = acc / l_i[:, None]
    o_ptrs = o_base + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=row_ok)
    if STORE_LSE:
        # For the backward: the log-sum-exp of each row, in the kernel's base-2 units,
        # lse2 = log2 Σ_j 2^(s_j·qk_scale) = m + log2(l), so that P = exp2(s·qk_scale - lse2).
        # One float per query row instead of the (Lq, Lk) probabilities.
        lse_ptrs = Lse + pid_bh.to(tl.int64) * seq_len_q + offs_m  # Lse is (B·H, Lq), contiguous
        tl.store(lse_ptrs, m_i + tl.math.log2(l_i), mask=offs_m < seq_len_q)


# --------------------------------------------------------------------------------------
# The backward pass (FlashAttention-2's, Dao 2023, section 3.1.2)
# --------------------------------------------------------------------------------------
#
# With S = Q Kᵀ / √D and P = softmax(S) row by row, O = P V. Given dO = ∂loss/∂O:
#     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP - Δ),   dQ = dS K / √D,   dK = dSᵀ Q / √D,
# with Δ_i = Σ_j P_ij dP_ij = Σ_d dO_id O_id (one number per query row). P is never stored:
# each tile recomputes it from Q, K and the forward's lse2, P = exp2(s·qk_scale - lse2).
# dK and dV sum over queries, dQ over keys, so two kernels each own what they write (no
# atomics, deterministic): one per block of keys (dK, dV), one per block of queries (dQ).


@_jit
def _flash_attention_backward_delta_kernel(
    Out,
    DO,
    Delta,  # (B·H, Lq) float32, written here
    stride_ob,
    stride_oh,
    stride_om,
    stride_od,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dod,
    num_heads,
    seq_len_q,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """One program: Δ = rowsum(dO ∘ O) for BLOCK_M query rows of one (batch, head)."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    batch = (pid_bh // num_heads).to(tl.int64)
    head = (pid_bh % num_heads).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    row_ok = offs_m < seq_len_q
    o_ptrs = Out + batch * stride_ob + head * stride_oh
    o_ptrs += offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    do_ptrs = DO + batch * stride_dob + head * stride_doh
    do_ptrs += offs_m[:, None] * stride_dom + offs_d[None, :] * stride_dod
    o = tl.load(o_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)  # (BLOCK_M, HEAD_DIM)
    do = tl.load(do_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    delta = tl.sum(o * do, 1)  # (BLOCK_M,)
    tl.store(Delta + pid_bh.to(tl.int64) * seq_len_q + offs_m, delta, mask=row_ok)


@_jit
def _dkdv_from_query_blocks(
    dk,  # (BLOCK_N, HEAD_DIM) float32: running Σ_i dS_ij q_i for this program's keys
    dv,  # (BLOCK_N, HEAD_DIM) float32: running Σ_i P_ij dO_i
    k,  # (BLOCK_N, HEAD_DIM): this program's keys, loaded once
    v,  # (BLOCK_N, HEAD_DIM): this program's values, loaded once
    q_base,  # pointer to query 0 of this (batch, head)
    do_base,  # pointer to dO's row 0 of this (batch, head)
    lse_base,  # pointer to lse2 of query 0 of this (batch, head)
    delta_base,  # pointer to Δ of query 0 of this (batch, head)
    stride_qm,
    stride_qd,
    stride_dom,
    stride_dod,
    offs_n,  # (BLOCK_N,) the keys' positions
    offs_d,  # (HEAD_DIM,) feature indices
    query_start,  # first query to visit, a multiple of BLOCK_M
    query_end,  # one past the last query to visit
    seq_len_q,
    qk_scale,  # softmax scale times log2(e)
    BLOCK_M: tl.constexpr,
    MASKED: tl.constexpr,  # False: every query in range is in bounds and sees every key
    IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Add the share of queries query_start..query_end-1 to (dk, dv), BLOCK_M queries at a time."""
    offs_m = tl.arange(0, BLOCK_M)
    for start_m in range(query_start, query_end, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        rows = start_m + offs_m  # (BLOCK_M,) the queries' positions
        q_ptrs = q_base + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd
        do_ptrs = do_base + rows[:, None] * stride_dom + offs_d[None, :] * stride_dod
        if MASKED:
            in_bounds = rows < seq_len_q  # the last block may stick out past the queries
            q = tl.load(q_ptrs, mask=in_bounds[:, None], other=0.0)
            do = tl.load(do_ptrs, mask=in_bounds[:, None], other=0.0)
            lse = tl.load(lse_base + rows, mask=in_bounds, other=0.0)
            delta = tl.load(delta_base + rows, mask=in_bounds, other=0.0)
        else:
            q = tl.load(q_ptrs)
            do = tl.load(do_ptrs)
            lse = tl.load(lse_base + rows)
            delta = tl.load(delta_base + rows)

        # 1. The tile's probabilities, recomputed and transposed: Pᵀ (BLOCK_N, BLOCK_M), keys
        #    down the rows, so that dV += Pᵀ dO and dK += dSᵀ Q need no transpose of P.
        s_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION)  # (BLOCK_N, BLOCK_M)
        if MASKED:
            visible = in_bounds[None, :]  # a query past the end must add nothing
            if IS_CAUSAL:
                visible = visible & (offs_n[:, None] <= rows[None, :])  # key j <= query i
            s_t = tl.where(visible, s_t * qk_scale, float("-inf"))
            p_t = tl.math.exp2(s_t - lse[None, :])  # exp2(-inf) = 0 for hidden pairs
        else:
            p_t = tl.math.exp2(s_t * qk_scale - lse[None, :])  # (BLOCK_N, BLOCK_M)

        # 2. dV += Pᵀ dO, on the tensor cores (P rounded to the inputs' dtype, as in the forward).
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=DOT_PRECISION)

        # 3. dPᵀ = V dOᵀ, then the softmax's backward: dSᵀ = Pᵀ ∘ (dPᵀ - Δ), Δ along the rows.
        dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # (BLOCK_N, BLOCK_M)
        ds_t = p_t * (dp_t - delta[None, :])

        # 4. dK += dSᵀ Q (the 1/√D is applied once, at the end).
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=DOT_PRECISION)
    return dk, dv


@_jit
def _flash_attention_backward_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    Lse,  # (B·H, Lq) float32: the forward's lse2
    Delta,  # (B·H, Lq) float32: rowsum(dO ∘ O)
    DK,
    DV,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dod,
    stride_dkb,
    stride_dkh,
    stride_dkn,
    stride_dkd,
    stride_dvb,
    stride_dvh,
    stride_dvn,
    stride_dvd,
    num_heads,
    seq_len_q,
    seq_len_k,
    qk_scale,
    sm_scale,  # 1/√D
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,  # queries per step
    BLOCK_N: tl.constexpr,  # keys per program, a multiple of BLOCK_M (see the causal split)
    IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One program: BLOCK_N keys of one (batch, head) -> their rows of dK and dV."""
    # In causal attention the first key blocks are seen by the most queries: they are the
    # long programs here, and program 0 starts first.
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    batch = (pid_bh // num_heads).to(tl.int64)  # 64-bit: B·H·L·D can pass 2^31 elements
    head = (pid_bh % num_heads).to(tl.int64)
    q_base = Q + batch * stride_qb + head * stride_qh
    do_base = DO + batch * stride_dob + head * stride_doh
    lse_base = Lse + pid_bh.to(tl.int64) * seq_len_q
    delta_base = Delta + pid_bh.to(tl.int64) * seq_len_q

    # Load this program's keys and values once. Keys past the end load as zeros; their rows
    # of dk and dv fill with garbage that is never stored (a key's gradient depends only on
    # its own column of P), so the loops need no key mask.
    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    col_ok = offs_n[:, None] < seq_len_k
    k_ptrs = K + batch * stride_kb + head * stride_kh
    k_ptrs += offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd
    k = tl.load(k_ptrs, mask=col_ok, other=0.0)  # (BLOCK_N, HEAD_DIM)
    v_ptrs = V + batch * stride_vb + head * stride_vh
    v_ptrs += offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    v = tl.load(v_ptrs, mask=col_ok, other=0.0)  # (BLOCK_N, HEAD_DIM)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    # Split the queries into a part that needs no mask and parts that do.
    whole_blocks_end = (seq_len_q // BLOCK_M) * BLOCK_M  # queries in complete blocks
    if IS_CAUSAL:
        # Query i sees key j iff j <= i (top-left, like SDPA): queries i < start_n see none of
        # our keys and are never visited; queries i >= start_n + BLOCK_N see all of them.
        unmasked_start = start_n + BLOCK_N
        # Stage 1: the diagonal blocks, with the mask.
        dk, dv = _dkdv_from_query_blocks(
            dk, dv, k, v, q_base, do_base, lse_base, delta_base,
            stride_qm, stride_qd, stride_dom, stride_dod, offs_n, offs_d,
            start_n, tl.minimum(unmasked_start, seq_len_q), seq_len_q, qk_scale,
            BLOCK_M, True, IS_CAUSAL, DOT_PRECISION,
        )  # fmt: skip
        # (When the partial last block would start before unmasked_start, stage 1 has
        # covered it and stage 3's range is empty.)
        tail_start = tl.maximum(unmasked_start, whole_blocks_end)
    else:
        unmasked_start = 0
        tail_start = whole_blocks_end
    # Stage 2: the fully visible blocks, without masks.
    dk, dv = _dkdv_from_query_blocks(
        dk, dv, k, v, q_base, do_base, lse_base, delta_base,
        stride_qm, stride_qd, stride_dom, stride_dod, offs_n, offs_d,
        unmasked_start, whole_blocks_end, seq_len_q, qk_scale,
        BLOCK_M, False, IS_CAUSAL, DOT_PRECISION,
    )  # fmt: skip
    # Stage 3: the partial last block of queries, with the mask.
    dk, dv = _dkdv_from_query_blocks(
        dk, dv, k, v, q_base, do_base, lse_base, delta_base,
        stride_qm, stride_qd, stride_dom, stride_dod, offs_n, offs_d,
        tail_start, seq_len_q, seq_len_q, qk_scale,
        BLOCK_M, True, IS_CAUSAL, DOT_PRECISION,
    )  # fmt: skip

    # dS is the gradient of the *scaled* scores S/√D: the chain rule brings one more 1/√D.
    dk_ptrs = DK + batch * stride_dkb + head * stride_dkh
    dk_ptrs += offs_n[:, None] * stride_dkn + offs_d[None, :] * stride_dkd
    tl.store(dk_ptrs, (dk * sm_scale).to(DK.dtype.element_ty), mask=col_ok)
    dv_ptrs = DV + batch * stride_dvb + head * stride_dvh
    dv_ptrs += offs_n[:, None] * stride_dvn + offs_d[None, :] * stride_dvd
    tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=col_ok)


@_jit
def _dq_from_key_blocks(
    dq,  # (BLOCK_M, HEAD_DIM) float32: running Σ_j dS_ij k_j for this program's queries
    q,  # (BLOCK_M, HEAD_DIM): this program's queries, loaded once
    do,  # (BLOCK_M, HEAD_DIM): their rows of dO, loaded once
    lse,  # (BLOCK_M,) float32: their lse2
    delta,  # (BLOCK_M,) float32: their Δ
    k_base,
    v_base,
    stride_kn,
    stride_kd,
    stride_vn,
    stride_vd,
    offs_m,  # (BLOCK_M,) the query rows' positions
    offs_d,  # (HEAD_DIM,) feature indices
    key_start,  # first key to visit, a multiple of BLOCK_N
    key_end,  # one past the last key to visit
    seq_len_k,
    qk_scale,
    BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,  # False: every key in range is in bounds and visible to every row
    IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Add the share of keys key_start..key_end-1 to dq, BLOCK_N keys at a time."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(key_start, key_end, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n  # (BLOCK_N,) the keys' positions
        k_ptrs = k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd
        v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd
        if MASKED:
            in_bounds = cols < seq_len_k
            k = tl.load(k_ptrs, mask=in_bounds[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=in_bounds[:, None], other=0.0)
        else:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)

        # The same tile as the forward's, P (BLOCK_M, BLOCK_N), recomputed from lse2.
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)  # (BLOCK_M, BLOCK_N)
        if MASKED:
            visible = in_bounds[None, :]
            if IS_CAUSAL:
                visible = visible & (cols[None, :] <= offs_m[:, None])  # key j <= query i
            s = tl.where(visible, s * qk_scale, float("-inf"))
            p = tl.math.exp2(s - lse[:, None])  # 0 for hidden keys
        else:
            p = tl.math.exp2(s * qk_scale - lse[:, None])

        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=DOT_PRECISION)  # (BLOCK_M, HEAD_DIM)
    return dq


@_jit
def _flash_attention_backward_dq_kernel(
    Q,
    K,
    V,
    DO,
    Lse,
    Delta,
    DQ,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dod,
    stride_dqb,
    stride_dqh,
    stride_dqm,
    stride_dqd,
    num_heads,
    seq_len_q,
    seq_len_k,
    qk_scale,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,  # queries per program
    BLOCK_N: tl.constexpr,  # keys per step; BLOCK_M must be a multiple of BLOCK_N
    IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One program: BLOCK_M query rows of one (batch, head) -> their rows of dQ."""
    # The forward's loop again, with dq as the state: causal tiles further down see more
    # keys, so they start first.
    pid_m = tl.program_id(0)
    if IS_CAUSAL:
        pid_m = tl.num_programs(0) - 1 - pid_m
    pid_bh = tl.program_id(1)
    batch = (pid_bh // num_heads).to(tl.int64)
    head = (pid_bh % num_heads).to(tl.int64)
    k_base = K + batch * stride_kb + head * stride_kh
    v_base = V + batch * stride_vb + head * stride_vh

    # This program's queries, their dO rows, lse2 and Δ: loaded once, kept in registers.
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    row_ok = offs_m < seq_len_q
    q_ptrs = Q + batch * stride_qb + head * stride_qh
    q_ptrs += offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, HEAD_DIM)
    do_ptrs = DO + batch * stride_dob + head * stride_doh
    do_ptrs += offs_m[:, None] * stride_dom + offs_d[None, :] * stride_dod
    do = tl.load(do_ptrs, mask=row_ok[:, None], other=0.0)  # (BLOCK_M, HEAD_DIM)
    lse = tl.load(Lse + pid_bh.to(tl.int64) * seq_len_q + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(Delta + pid_bh.to(tl.int64) * seq_len_q + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # The forward's split of the keys: unmasked blocks first, then the diagonal and the
    # partial last block with masks.
    whole_blocks_end = (seq_len_k // BLOCK_N) * BLOCK_N
    if IS_CAUSAL:
        unmasked_end = tl.minimum(start_m, whole_blocks_end)
        masked_end = tl.minimum(start_m + BLOCK_M, seq_len_k)
    else:
        unmasked_end = whole_blocks_end
        masked_end = seq_len_k
    dq = _dq_from_key_blocks(
        dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        offs_m, offs_d, 0, unmasked_end, seq_len_k, qk_scale,
        BLOCK_N, False, IS_CAUSAL, DOT_PRECISION,
    )  # fmt: skip
    dq = _dq_from_key_blocks(
        dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        offs_m, offs_d, unmasked_end, masked_end, seq_len_k, qk_scale,
        BLOCK_N, True, IS_CAUSAL, DOT_PRECISION,
    )  # fmt: skip

    dq_ptrs = DQ + batch * stride_dqb + head * stride_dqh
    dq_ptrs += offs_m[:, None] * stride_dqm + offs_d[None, :] * stride_dqd
    tl.store(dq_ptrs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])


# --------------------------------------------------------------------------------------
# The Python side: configurations, checks and the launch
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TritonAttentionConfig:
    """Tile sizes and launch settings: BLOCK_M queries x BLOCK_N keys per step."""

    block_m: int = 128
    block_n: int = 64
    num_warps: int = 4  # 4 warps = 1 warpgroup, what Hopper's wgmma instructions use
    num_stages: int = 3  # how many key/value blocks the loads run ahead (software pipeline)

    def __str__(self) -> str:
        return f"M{self.block_m} N{self.block_n} w{self.num_warps} s{self.num_stages}"


# Configurations that `python -m utils.bench attention --sweep` times, for head_dim 64.
SWEEP_CONFIGS = (
    TritonAttentionConfig(64, 64, 4, 3),
    TritonAttentionConfig(64, 64, 4, 4),
    TritonAttentionConfig(64, 64, 4, 2),
    TritonAttentionConfig(64, 64, 8, 3),
    TritonAttentionConfig(64, 32, 4, 3),
    TritonAttentionConfig(128, 64, 4, 3),
    TritonAttentionConfig(128, 64, 8, 3),
    TritonAttentionConfig(128, 128, 8, 3),
)


def default_config(
    head_dim: int, dtype: torch.dtype, device: torch.device
) -> TritonAttentionConfig:
    """A config that fits the device's shared memory for this head_dim and dtype."""
    if device.type != "cuda":  # the interpreter: small tiles keep the tests quick
        return TritonAttentionConfig(32, 16, 4, 1)
    major, _ = torch.cuda.get_device_capability(device)
    if dtype == torch.float32:  # 4-byte elements, and no tensor cores (exact products)
        return TritonAttentionConfig(64, 32, 4, 2)
    if major >= 9:
        # Hopper (H100, H200), measured on an H200 with `--sweep` (bf16, B=4, H=16, causal,
        # L=4096): 64x64 tiles, 4 warps, 3 stages were fastest for head_dim 64 and 128.
        return TritonAttentionConfig(64, 64, 4, 3)
    if major == 8:  # Ampere, Ada (100-164 KB of shared memory); not measured here
        return TritonAttentionConfig(64, 64, 4, 2)
    return TritonAttentionConfig(64, 32, 4, 2)  # Turing (Colab's T4): 64 KB


@dataclass(frozen=True)
class TritonBackwardConfig:
    """Tiles of the backward's two kernels. dK/dV: each program owns block_n_kv keys and
    streams block_m_kv queries per step; dQ: each owns block_m_q queries and streams
    block_n_q keys per step."""

    block_n_kv: int = 128  # keys per dK/dV program (a multiple of block_m_kv)
    block_m_kv: int = 64  # queries per step of the dK/dV loop
    block_m_q: int = 128  # queries per dQ program (a multiple of block_n_q)
    block_n_q: int = 64  # keys per step of the dQ loop
    num_warps: int = 8  # both kernels; 8 warps = 2 warpgroups share a 128-row tile
    num_stages: int = 2  # how many streamed blocks the loads run ahead

    def __str__(self) -> str:
        return (
            f"dKdV N{self.block_n_kv} M{self.block_m_kv} dQ M{self.block_m_q} "
            f"N{self.block_n_q} w{self.num_warps} s{self.num_stages}"
        )


# Backward configurations that `python -m utils.bench flash_backward --sweep` times
# (head_dim 64, bf16): FlashAttention-2's shapes of tiles, a 128-key block per dK/dV program
# and 128 queries per dQ program, against smaller and deeper-pipelined variants.
SWEEP = (
    TritonBackwardConfig(128, 64, 128, 64, 8, 2),
    TritonBackwardConfig(128, 64, 128, 64, 8, 3),
    TritonBackwardConfig(128, 32, 128, 32, 8, 3),
    TritonBackwardConfig(128, 32, 128, 32, 4, 4),
    TritonBackwardConfig(64, 64, 64, 64, 4, 2),
    TritonBackwardConfig(64, 32, 64, 32, 4, 3),
)


def _shared_memory_bytes(device: torch.device) -> int:
    """Shared memory one program may use on this GPU (opt-in maximum per block)."""
    props = torch.cuda.get_device_properties(device)
    optin = getattr(props, "shared_memory_per_block_optin", None)  # recent torch only
    if optin:
        return int(optin)
    major, minor = props.major, props.minor
    if major >= 9:
        return 227 * 1024  # Hopper: 228 KB per SM, 227 KB per block
    if (major, minor) == (8, 0):
        return 163 * 1024  # A100
    if major == 8:
        return 99 * 1024  # consumer Ampere and Ada (A10, L4, RTX 30xx/40xx)
    if major == 7 and minor == 0:
        return 96 * 1024  # V100
    return 64 * 1024  # Turing (Colab's T4) and older


def backward_shared_bytes(config: TritonBackwardConfig, head_dim: int, element_size: int) -> int:
    """A rough upper bound of the shared memory the backward's bigger kernel needs.

    The streamed tiles (q and dO for dK/dV; k and v for dQ) sit in shared memory once per
    pipeline stage; the resident tiles (k and v; q and dO) may too; and one float32 tile of
    scores may pass through it when the compiler changes its layout between two products.
    """
    def kernel(owned: int, streamed: int) -> int:
        pipeline = config.num_stages * 2 * streamed * head_dim * element_size
        resident = 2 * owned * head_dim * element_size
        return pipeline + resident + owned * streamed * 4

    dkdv = kernel(config.block_n_kv, config.block_m_kv)
    dq = kernel(config.block_m_q, config.block_n_q)
    return max(dkdv, dq)


def default_backward_config(
    head_dim: int, dtype: torch.dtype, device: torch.device
) -> TritonBackwardConfig:
    """A backward config that fits the device's shared memory for this head_dim and dtype."""
    if device.type != "cuda":  # the interpreter: small tiles keep the tests quick
        return TritonBackwardConfig(32, 16, 32, 16, 4, 1)
    if dtype == torch.float32:  # 4-byte elements, no tensor cores: small tiles
        # (8 warps for head_dim 128 share the float32 dk and dv accumulators' registers.)
        candidates = [TritonBackwardConfig(64, 32, 64, 32, 8 if head_dim > 64 else 4, 2)]
    elif head_dim <= 64:
        # FlashAttention-2's tiles (Dao 2023): 128 keys per dK/dV program, 128 queries per
        # dQ program, 8 warps. Not yet measured against SWEEP on this device.
        candidates = [TritonBackwardConfig(128, 64, 128, 64, 8, 2)]
    else:  # head_dim 128: two (128, 128) float32 accumulators would spill registers
        candidates = [TritonBackwardConfig(64, 64, 64, 64, 8, 2)]
    candidates += [TritonBackwardConfig(64, 32, 64, 32, 4, 2), TritonBackwardConfig(32, 16, 32, 16, 4, 1)]
    budget = _shared_memory_bytes(device)
    element_size = torch.empty((), dtype=dtype).element_size()
    for config in candidates:  # the first that fits
        if backward_shared_bytes(config, head_dim, element_size) <= budget:
            return config
    return candidates[-1]


def _is_interpreted() -> bool:
    """True when the kernels were decorated under TRITON_INTERPRET=1 (they run on the CPU)."""
    return type(_flash_attention_forward_kernel).__name__ == "InterpretedFunction"


def _check_inputs(q: Tensor, k: Tensor, v: Tensor) -> None:
    if triton is None:
        raise RuntimeError(
            "triton_flash_attention needs Triton, which is not installed here. It comes with "
            "PyTorch's CUDA wheels on Linux (or: pip install triton). Without it, use "
            "utils.models.attention.flash_attention or F.scaled_dot_product_attention."
        )
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a (B, H, L, D) tensor, got {shape}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        raise ValueError(
            "expected q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, D) with the same B, H and "
            f"Lk, got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if not (q.shape[-1] == k.shape[-1] == v.shape[-1]):
        raise ValueError(
            f"q, k, v must share the head dim D, got {q.shape[-1]}, {k.shape[-1]}, {v.shape[-1]}"
        )
    if q.shape[-1] not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"head dim {q.shape[-1]} is not supported: the kernel takes D in "
            f"{SUPPORTED_HEAD_DIMS} (tensor-core tiles need a power of two >= 16); "
            "pad the heads or use F.scaled_dot_product_attention"
        )
    if k.shape[2] == 0:
        raise ValueError(f"need at least one key, got k of shape {tuple(k.shape)}")
    if q.shape[0] * q.shape[1] > 65535:
        raise ValueError(f"B * H = {q.shape[0] * q.shape[1]} exceeds the grid's limit of 65535")


def _powers_of_two(*blocks: int) -> bool:
    """Tile sizes tensor cores take: powers of two, at least 16."""
    return all(b >= 16 and b & (b - 1) == 0 for b in blocks)


def _check_config(config: TritonAttentionConfig) -> None:
    bm, bn = config.block_m, config.block_n
    if not _powers_of_two(bm, bn) or bm % bn != 0:
        raise ValueError(
            f"block_m and block_n must be powers of two >= 16 with block_m a multiple of "
            f"block_n (the causal split needs it), got {config}"
        )


def _check_backward_config(config: TritonBackwardConfig) -> None:
    blocks = (config.block_n_kv, config.block_m_kv, config.block_m_q, config.block_n_q)
    if (
        not _powers_of_two(*blocks)
        or config.block_n_kv % config.block_m_kv != 0
        or config.block_m_q % config.block_n_q != 0
    ):
        raise ValueError(
            "backward blocks must be powers of two >= 16, with block_n_kv a multiple of "
            "block_m_kv and block_m_q a multiple of block_n_q (the causal split needs it), "
            f"got {config}"
        )


def _check_device(q: Tensor) -> None:
    if q.device.type == "cuda":
        if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise TypeError(f"on CUDA the kernel takes float16, bfloat16 or float32, got {q.dtype}")
        if q.dtype == torch.bfloat16 and torch.cuda.get_device_capability(q.device)[0] < 8:
            raise TypeError("bfloat16 needs an Ampere or newer GPU; use float16 on this one")
    elif _is_interpreted():
        if q.dtype != torch.float32:
            raise TypeError(f"Triton's interpreter (CPU) takes float32 only, got {q.dtype}")
    else:
        raise RuntimeError(
            f"tensors on {q.device} need a CUDA GPU, or Triton's interpreter: set the "
            "environment variable TRITON_INTERPRET=1 before utils.models.triton_attention "
            "is imported (in a fresh process), then pass float32 CPU tensors"
        )


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # tf32: unused for 16-bit inputs


def _forward(
    q: Tensor, k: Tensor, v: Tensor, is_causal: bool, config: TritonAttentionConfig, with_lse: bool
) -> tuple[Tensor, Tensor | None]:
    """Launch the forward kernel: -> out (B, H, Lq, D), and lse2 (B, H, Lq) float32 if asked."""
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    out = torch.empty_like(q)  # (B, H, Lq, D)
    # lse2 = log2 Σ_j 2^(s_ij·qk_scale), i.e. log2(e) times the natural log-sum-exp of the
    # scaled scores: what the backward needs to recompute P.
    lse = q.new_empty(B, H, Lq, dtype=torch.float32) if with_lse else None  # (B, H, Lq)
    if out.numel() == 0:
        return out, lse
    grid = (triton.cdiv(Lq, config.block_m), B * H)  # one program per (query tile, batch·head)
    qk_scale = LOG2_E / math.sqrt(D)  # softmax's 1/√D and the exp -> exp2 change of base
    _flash_attention_forward_kernel[grid](
        q, k, v, out, out if lse is None else lse,  # (an unused pointer when not with_lse)
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        H, Lq, Lk, qk_scale,
        HEAD_DIM=D,
        BLOCK_M=config.block_m,
        BLOCK_N=config.block_n,
        IS_CAUSAL=bool(is_causal),
        DOT_PRECISION=_dot_precision(q.dtype),
        STORE_LSE=with_lse,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )  # fmt: skip
    return out, lse


DELTA_BLOCK_M = 64  # rows per program of the Δ kernel (one config for all: it is cheap)


def _backward_delta(out: Tensor, grad_out: Tensor) -> Tensor:
    """Δ = rowsum(dO ∘ O): out and grad_out (B, H, Lq, D) -> (B, H, Lq) float32."""
    B, H, Lq, D = out.shape
    delta = out.new_empty(B, H, Lq, dtype=torch.float32)
    if delta.numel() == 0:
        return delta
    _flash_attention_backward_delta_kernel[(triton.cdiv(Lq, DELTA_BLOCK_M), B * H)](
        out, grad_out, delta, *out.stride(), *grad_out.stride(), H, Lq,
        HEAD_DIM=D, BLOCK_M=DELTA_BLOCK_M, num_warps=4, num_stages=1,
    )  # fmt: skip
    return delta


def _backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    is_causal: bool,
    config: TritonBackwardConfig,
    need_dq: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor]:
    """Launch the backward: dO (B, H, Lq, D) and the forward's tensors -> dq, dk, dv."""
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    dq = torch.empty_like(q) if need_dq else None  # (B, H, Lq, D)
    dk, dv = torch.empty_like(k), torch.empty_like(v)  # (B, H, Lk, D)
    if grad_out.numel() == 0:  # no queries (or no heads): no key gets a gradient
        return dq, dk.zero_(), dv.zero_()
    delta = _backward_delta(out, grad_out)  # (B, H, Lq) float32
    sm_scale = 1.0 / math.sqrt(D)
    qk_scale = LOG2_E * sm_scale
    launch = dict(
        HEAD_DIM=D,
        IS_CAUSAL=bool(is_causal),
        DOT_PRECISION=_dot_precision(q.dtype),
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    _flash_attention_backward_dkdv_kernel[(triton.cdiv(Lk, config.block_n_kv), B * H)](
        q, k, v, grad_out, lse, delta, dk, dv,
        *q.stride(), *k.stride(), *v.stride(), *grad_out.stride(), *dk.stride(), *dv.stride(),
        H, Lq, Lk, qk_scale, sm_scale,
        BLOCK_M=config.block_m_kv, BLOCK_N=config.block_n_kv, **launch,
    )  # fmt: skip
    if need_dq:
        _flash_attention_backward_dq_kernel[(triton.cdiv(Lq, config.block_m_q), B * H)](
            q, k, v, grad_out, lse, delta, dq,
            *q.stride(), *k.stride(), *v.stride(), *grad_out.stride(), *dq.stride(),
            H, Lq, Lk, qk_scale, sm_scale,
            BLOCK_M=config.block_m_q, BLOCK_N=config.block_n_q, **launch,
        )  # fmt: skip
    return dq, dk, dv


class TritonFlashAttention(torch.autograd.Function):
    """Autograd for the Triton kernels: the forward saves q, k, v, the output and one lse2
    per query row, never the (Lq, Lk) probabilities; the backward recomputes them per tile."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        is_causal: bool,
        config: TritonAttentionConfig,
        backward_config: TritonBackwardConfig,
    ) -> Tensor:
        """(B, H, Lq, D), (B, H, Lk, D), (B, H, Lk, D) -> (B, H, Lq, D)."""
        out, lse = _forward(q, k, v, is_causal, config, with_lse=True)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.is_causal, ctx.backward_config = is_causal, backward_config
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """(B, H, Lq, D) -> (dq, dk, dv, None, None, None)."""
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(
            grad_out, q, k, v, out, lse, ctx.is_causal, ctx.backward_config,
            need_dq=ctx.needs_input_grad[0],
        )  # fmt: skip
        return dq, dk, dv, None, None, None


def triton_flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    is_causal: bool = False,
    config: TritonAttentionConfig | None = None,
    backward_config: TritonBackwardConfig | None = None,
) -> Tensor:
    """FlashAttention in Triton: q (B, H, Lq, D), k and v (B, H, Lk, D) -> (B, H, Lq, D).

    Equals `F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)` (causal is
    top-left aligned), in values and gradients: when q, k or v requires grad, the output
    has a backward of Triton kernels too (FlashAttention-2's). D in {16, 32, 64, 128};
    float16, bfloat16 or float32 on CUDA (float32 with exact, not TF32, products); float32
    on the CPU under TRITON_INTERPRET=1. Any strides are accepted.
    """
    _check_inputs(q, k, v)
    config = config or default_config(q.shape[-1], q.dtype, q.device)
    _check_config(config)
    if backward_config is not None:
        _check_backward_config(backward_config)
    _check_device(q)
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    if not needs_grad:  # inference: no lse2 written, nothing saved
        return _forward(q, k, v, is_causal, config, with_lse=False)[0]
    backward_config = backward_config or default_backward_config(q.shape[-1], q.dtype, q.device)
    return TritonFlashAttention.apply(q, k, v, bool(is_causal), config, backward_config)
