"""FlashAttention's forward pass as a Triton kernel (lesson 10).

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

Triton is optional: importing this module works without it, and `triton_flash_attention`
then raises an error that says what to install. On a machine without a GPU, run the
kernel in Triton's interpreter (float32 only): set `TRITON_INTERPRET=1` *before* this
module is imported, since Triton reads it when the kernels are decorated. (Triton 3.9's
interpreter works; 3.6's fails under NumPy >= 2.5, which no longer lets it call int() on a
one-element array.)

Measured on an H200 (torch 2.11, Triton 3.6, bf16, B=4, H=16, head_dim 64, causal, with
`python -m utils.bench attention`): about 390 TFLOP/s at L=4096 and 410 at L=16384, within
about 5% of `F.scaled_dot_product_attention` (64x64 tiles; `--sweep` times other configs).
"""

from __future__ import annotations  # kernel annotations stay strings: defined without Triton

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

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


def _check_config(config: TritonAttentionConfig) -> None:
    bm, bn = config.block_m, config.block_n
    powers_of_two = all(b >= 16 and b & (b - 1) == 0 for b in (bm, bn))
    if not powers_of_two or bm % bn != 0:
        raise ValueError(
            f"block_m and block_n must be powers of two >= 16 with block_m a multiple of "
            f"block_n (the causal split needs it), got {config}"
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


def triton_flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    is_causal: bool = False,
    config: TritonAttentionConfig | None = None,
) -> Tensor:
    """FlashAttention forward in Triton: q (B, H, Lq, D), k and v (B, H, Lk, D) -> (B, H, Lq, D).

    Equals `F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)` (causal is
    top-left aligned). D in {16, 32, 64, 128}; float16, bfloat16 or float32 on CUDA
    (float32 with exact, not TF32, products); float32 on the CPU under TRITON_INTERPRET=1.
    Forward only: no gradients flow through it. Any strides are accepted.
    """
    _check_inputs(q, k, v)
    config = config or default_config(q.shape[-1], q.dtype, q.device)
    _check_config(config)
    _check_device(q)
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    out = torch.empty_like(q)  # (B, H, Lq, D)
    if out.numel() == 0:
        return out
    grid = (triton.cdiv(Lq, config.block_m), B * H)  # one program per (query tile, batch·head)
    qk_scale = LOG2_E / math.sqrt(D)  # softmax's 1/√D and the exp -> exp2 change of base
    _flash_attention_forward_kernel[grid](
        q, k, v, out,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        H, Lq, Lk, qk_scale,
        HEAD_DIM=D,
        BLOCK_M=config.block_m,
        BLOCK_N=config.block_n,
        IS_CAUSAL=bool(is_causal),
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",  # tf32: unused for 16-bit
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )  # fmt: skip
    return out
