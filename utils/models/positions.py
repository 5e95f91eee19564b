"""Positions (lesson 06): attention is permutation-equivariant, so order must be added.

- sinusoidal encodings (Vaswani et al. 2017, section 3.5), added to the embeddings;
- learned position embeddings (one trained vector per position, as in BERT and GPT-2);
- rotary embeddings, RoPE (Su et al. 2021, "RoFormer"), which rotate q and k so that
  q·k depends on the positions only through their offset.

Shape letters: B batch, T length, D model width (`d_model`), H heads, Dh head width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sinusoidal_positional_encoding(
    seq_len: int,
    d_model: int,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """(T, D) table: PE[pos, 2i] = sin(pos / base^(2i/D)), PE[pos, 2i+1] = cos(same)."""
    if seq_len < 0 or d_model < 1:
        raise ValueError(f"need seq_len >= 0 and d_model >= 1, got {seq_len=} {d_model=}")
    # Computed in float64: at long positions float32 angles lose the low frequencies' digits.
    positions = torch.arange(seq_len, device=device, dtype=torch.float64)  # (T,)
    two_i = torch.arange(0, d_model, 2, device=device, dtype=torch.float64)  # (ceil(D/2),)
    # Wavelengths grow geometrically from 2π to base·2π: each pair of features is a clock
    # ticking at its own speed, and a fixed offset is a linear map of them (the paper's aim).
    angles = positions[:, None] / base ** (two_i / d_model)  # (T, ceil(D/2))
    pe = torch.zeros(seq_len, d_model, device=device, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # odd D: one cosine fewer
    return pe.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[offset : offset + T] on (B, T, D), then dropout (Vaswani et al. 2017, 3.5)."""

    def __init__(
        self, d_model: int, max_len: int = 4096, dropout: float = 0.0, base: float = 10000.0
    ):
        super().__init__()
        self.max_len = max_len
        # A buffer: moves with .to(device) but is not trained, and not saved (recomputable).
        self.register_buffer(
            "pe", sinusoidal_positional_encoding(max_len, d_model, base), persistent=False
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """(B, T, D) -> (B, T, D); `offset` is the position of x[:, 0] (for a KV cache)."""
        _check_positions(x, offset, self.max_len, self.pe.shape[1])
        pe = self.pe[offset : offset + x.shape[1]]  # (T, D)
        return self.dropout(x + pe.to(x.dtype))  # broadcasts over the batch


class LearnedPositionalEmbedding(nn.Module):
    """x + E[offset : offset + T] on (B, T, D), with E a trained (max_len, D) table."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        # Small initial values, as GPT-2 does: positions start as a gentle nudge.
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """(B, T, D) -> (B, T, D); `offset` is the position of x[:, 0] (for a KV cache)."""
        _check_positions(x, offset, self.max_len, self.embedding.embedding_dim)
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)  # (T,)
        return x + self.embedding(positions)  # (T, D) broadcasts over the batch


def _check_positions(x: Tensor, offset: int, max_len: int, d_model: int) -> None:
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"expected x of shape (B, T, d_model={d_model}), got {tuple(x.shape)}")
    if offset < 0 or offset + x.shape[1] > max_len:
        raise ValueError(
            f"positions {offset}..{offset + x.shape[1] - 1} do not fit in max_len={max_len}; "
            "build the module with a larger max_len"
        )


# --------------------------------------------------------------------------------------
# Rotary position embeddings (RoPE)
# --------------------------------------------------------------------------------------


def rotary_cos_sin(
    seq_len: int,
    head_dim: int,
    base: float = 10000.0,
    offset: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles m·θ_i, each (T, Dh/2), θ_i = base^(-2i/Dh)."""
    if head_dim % 2 != 0:
        raise ValueError(f"RoPE rotates pairs of features: head_dim must be even, got {head_dim}")
    theta = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float64) / head_dim)
    positions = torch.arange(offset, offset + seq_len, device=device, dtype=torch.float64)
    angles = positions[:, None] * theta[None, :]  # (T, Dh/2): position m turns pair i by m·θ_i
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


def apply_rotary_embedding(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each feature pair (x[2i], x[2i+1]) of x (..., T, Dh) by its angle: same shape."""
    expected = (x.shape[-2], x.shape[-1] // 2)  # (T, Dh/2)
    if x.shape[-1] % 2 != 0 or tuple(cos.shape) != expected or tuple(sin.shape) != expected:
        raise ValueError(
            f"x (..., T, Dh) = {tuple(x.shape)} needs cos and sin of shape (T, Dh/2) = "
            f"({x.shape[-2]}, {x.shape[-1] // 2}), got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    pairs = x.unflatten(-1, (-1, 2))  # (..., T, Dh/2, 2): the paper's pairs (x_2i, x_2i+1)
    x1, x2 = pairs[..., 0], pairs[..., 1]  # (..., T, Dh/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    # The 2-D rotation [[cos, -sin], [sin, cos]] of eq. (34) in Su et al., pair by pair.
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (..., T, Dh/2, 2)
    return rotated.flatten(-2)  # (..., T, Dh)


class RotaryEmbedding(nn.Module):
    """RoPE (Su et al. 2021) for q, k of shape (B, H, T, Dh): rotate both, before q·kᵀ."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(
                f"RoPE rotates pairs of features: head_dim must be even, not {head_dim}"
            )
        self.head_dim = head_dim
        self.base = base

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        """(B, H, Tq, Dh), (B, H, Tk, Dh) -> same shapes, rotated for positions offset, offset+1...

        With a KV cache, rotate the new tokens' q and k at offset = number of cached tokens,
        and cache the rotated k.
        """
        for name, x in (("q", q), ("k", k)):
            if x.shape[-1] != self.head_dim:
                raise ValueError(f"{name} must be (..., T, {self.head_dim}), got {tuple(x.shape)}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        dtype = torch.promote_types(q.dtype, torch.float32)  # angles in at least float32
        rotated = []
        for x in (q, k):
            T = x.shape[-2]
            cos, sin = rotary_cos_sin(T, self.head_dim, self.base, offset, x.device, dtype)
            rotated.append(apply_rotary_embedding(x, cos, sin))  # (B, H, T, Dh)
        return rotated[0], rotated[1]
