"""Tensor-parallel attention: the heads of one layer split across ranks (lesson 12).

Data parallelism copies the whole model to every rank; when one layer no longer fits, or
is too slow for one device, its *weights* are split instead (Shoeybi et al. 2019,
"Megatron-LM: Training multi-billion parameter language models using model parallelism").
Attention splits naturally by heads, which never look at each other:

- `q_proj`, `k_proj`, `v_proj` are *column-parallel*: rank r keeps the rows of each weight
  (output features) that belong to its H/N heads, so it computes q, k, v for its heads only;
- attention runs per head, locally, with no communication;
- `out_proj` is *row-parallel*: rank r keeps the columns (input features) of its heads, so it
  produces a partial output of full width D; the sum over ranks, one `all_reduce`, is the
  layer's output. The bias is added once, after the sum.

One all-reduce in the forward pass, and one in the backward pass (for the gradient of the
input, which every rank used): `_CopyToRanks` and `_SumOverRanks` below are the two
autograd functions Megatron-LM calls f and g.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from utils.models.attention import MultiHeadAttention, attend_heads, merge_heads, split_heads


class _CopyToRanks(torch.autograd.Function):
    """Identity forward; all-reduce backward: every rank's use of x adds to x's gradient."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: ANN001
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: ANN001
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _SumOverRanks(torch.autograd.Function):
    """All-reduce forward; identity backward: each partial output gets the output's gradient."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: ANN001
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: ANN001
        return grad


def head_slice(num_heads: int, head_dim: int, rank: int, world_size: int) -> slice:
    """The features (rows of q/k/v, columns of out_proj) of rank `rank`'s heads."""
    if num_heads % world_size != 0:
        raise ValueError(f"num_heads={num_heads} must be divisible by the world size {world_size} so "
                         "that every rank gets the same number of whole heads")
    local = num_heads // world_size * head_dim
    return slice(rank * local, (rank + 1) * local)


class TensorParallelAttention(nn.Module):
    """Multi-head self-attention with H/N heads on each of N ranks: (B, T, D) -> (B, T, D).

    Every rank gets the same input and returns the same (full) output.
    """

    def __init__(self, d_model: int, num_heads: int, rank: int, world_size: int, bias: bool = True):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.rank, self.world_size = rank, world_size
        cols = head_slice(num_heads, self.head_dim, rank, world_size)
        self.local_heads = num_heads // world_size
        local_dim = cols.stop - cols.start  # H/N * Dh
        self.q_proj = nn.Linear(d_model, local_dim, bias=bias)  # column-parallel
        self.k_proj = nn.Linear(d_model, local_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, local_dim, bias=bias)
        self.out_proj = nn.Linear(local_dim, d_model, bias=False)  # row-parallel: no bias here...
        self.out_bias = nn.Parameter(torch.zeros(d_model)) if bias else None  # ...added once, after the sum

    @classmethod
    def from_full(cls, mha: MultiHeadAttention, rank: int, world_size: int) -> TensorParallelAttention:
        """Rank `rank`'s share of a `MultiHeadAttention`'s weights (copies)."""
        bias = mha.q_proj.bias is not None
        tp = cls(mha.d_model, mha.num_heads, rank, world_size, bias=bias).to(mha.q_proj.weight)
        cols = head_slice(mha.num_heads, mha.head_dim, rank, world_size)
        with torch.no_grad():
            for name in ("q_proj", "k_proj", "v_proj"):
                full, part = getattr(mha, name), getattr(tp, name)
                part.weight.copy_(full.weight[cols])  # (H/N*Dh, D): the rows of this rank's heads
                if bias:
                    part.bias.copy_(full.bias[cols])
            tp.out_proj.weight.copy_(mha.out_proj.weight[:, cols])  # (D, H/N*Dh): its columns
            if bias:
                tp.out_bias.copy_(mha.out_proj.bias)
        return tp

    def forward(self, x: Tensor, is_causal: bool = False) -> Tensor:
        """x (B, T, D), the same on every rank -> (B, T, D), the same on every rank."""
        x = _CopyToRanks.apply(x) if self.world_size > 1 else x
        projections = [(p.weight, p.bias) for p in (self.q_proj, self.k_proj, self.v_proj)]
        heads = _local_heads(x, projections, self.local_heads, is_causal)  # (B, T, H/N*Dh)
        partial = self.out_proj(heads)  # (B, T, D): this rank's heads' share
        out = _SumOverRanks.apply(partial) if self.world_size > 1 else partial
        return out if self.out_bias is None else out + self.out_bias


def _local_heads(x: Tensor, projections: list[tuple[Tensor, Tensor | None]], num_heads: int,
                 is_causal: bool) -> Tensor:
    """Attention of one rank's heads, before out_proj: x (B, T, D) and the (weight, bias) of
    its q, k, v projections -> the heads' outputs side by side, (B, T, H/N*Dh)."""
    q, k, v = (split_heads(F.linear(x, w, b), num_heads) for w, b in projections)  # (B, H/N, T, Dh)
    return merge_heads(attend_heads(q, k, v, is_causal=is_causal)[0])


def partial_outputs(mha: MultiHeadAttention, x: Tensor, world_size: int,
                    is_causal: bool = False) -> list[Tensor]:
    """Every rank's share of the output before the all-reduce and the bias: x (B, T, D) ->
    `world_size` tensors (B, T, D) whose sum, plus out_proj's bias, is mha's output."""
    parts = []
    with torch.no_grad():
        for rank in range(world_size):
            cols = head_slice(mha.num_heads, mha.head_dim, rank, world_size)
            projections = [(p.weight[cols], None if p.bias is None else p.bias[cols])
                           for p in (mha.q_proj, mha.k_proj, mha.v_proj)]
            heads = _local_heads(x, projections, mha.num_heads // world_size, is_causal)
            parts.append(heads @ mha.out_proj.weight[:, cols].T)  # (B, T, D)
    return parts
