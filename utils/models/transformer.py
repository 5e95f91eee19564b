"""The Transformer's building blocks (Vaswani et al. 2017), shared by lessons 07 to 12.

- `FeedForward`: the position-wise two-layer MLP (section 3.3).
- `EncoderBlock`: self-attention + feed-forward, each in a residual branch with LayerNorm,
  either post-norm (the paper: `norm(x + f(x))`) or pre-norm (`x + f(norm(x))`, Xiong et al.
  2020, which trains stably without a long warm-up); `rotary=True` gives its attention
  rotary positions (RoPE, Su et al. 2021).
- `CausalSelfAttentionBlock`: the same with causal self-attention, the block of a
  decoder-only GPT (and a KV cache for generation).
- `DecoderBlock`: causal self-attention, cross-attention over the encoder's output, and
  feed-forward (section 3.1).
- `TokenEmbedding`: token embedding scaled by sqrt(d_model), plus positions (section 3.4),
  or none when the attention layers carry them (`positions="none"` with `rotary=True`).

Masks follow the course convention: bool, True = may attend. A key padding mask arrives as
(B, Lk) (True = real token) and is broadcast to (B, 1, 1, Lk) over heads and queries.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from utils.models.attention import KVCache, MultiHeadAttention, padding_mask
from utils.models.positions import LearnedPositionalEmbedding, SinusoidalPositionalEncoding


class FeedForward(nn.Module):
    """Position-wise MLP: (B, T, D) -> (B, T, D) through a (B, T, d_ff) hidden layer."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        activations = {"relu": nn.ReLU(), "gelu": nn.GELU()}
        if activation not in activations:
            raise ValueError(f"activation must be one of {sorted(activations)}, got {activation!r}")
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ff), activations[activation], nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def key_mask(token_mask: Tensor | None) -> Tensor | None:
    """(B, Lk) True = real token -> (B, 1, 1, Lk), broadcastable over heads and queries."""
    return None if token_mask is None else padding_mask(token_mask)


class _Residual(nn.Module):
    """One residual branch with LayerNorm, pre-norm or post-norm, and dropout on the branch."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, branch) -> Tensor:
        if self.norm_first:  # x + f(norm(x)): the residual stream is never normalised
            return x + self.dropout(branch(self.norm(x)))
        return self.norm(x + self.dropout(branch(x)))  # norm(x + f(x)), as in the paper


class EncoderBlock(nn.Module):
    """Self-attention over every position, then feed-forward, each residual: (B, T, D) -> (B, T, D).

    `rotary=True` rotates the queries and keys by their positions 0..T-1 (RoPE), for models
    that put no positions in their embeddings.
    """

    causal = False  # every position sees every other one

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = True, activation: str = "relu", rotary: bool = False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout, rotary=rotary)
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.attn_branch = _Residual(d_model, dropout, norm_first)
        self.ff_branch = _Residual(d_model, dropout, norm_first)

    def forward(self, x: Tensor, token_mask: Tensor | None = None, need_weights: bool = False) -> Tensor:
        """x (B, T, D), token_mask (B, T) True = real token -> (B, T, D)."""
        return self._attend_then_feed_forward(x, key_mask(token_mask), need_weights)

    def _attend_then_feed_forward(self, x: Tensor, mask: Tensor | None, need_weights: bool = False,
                                  cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = self.attn_branch(x, lambda h: self.self_attn(
            h, h, h, mask=mask, is_causal=self.causal, need_weights=need_weights, cache=cache,
            layer=layer)[0])
        return self.ff_branch(x, self.feed_forward)


class CausalSelfAttentionBlock(EncoderBlock):
    """The block of a decoder-only model (GPT): causal self-attention, where position t sees
    positions 0..t only, then feed-forward, each residual: (B, T, D) -> (B, T, D). A decoder
    block without cross-attention; the same parameters as `EncoderBlock`."""

    causal = True

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, t, D) -> (B, t, D). With a `cache`, x holds the tokens after the P cached ones
        (positions P..P+t-1), and their keys and values join `layer` of the cache."""
        return self._attend_then_feed_forward(x, None, cache=cache, layer=layer)


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder, feed-forward: (B, T, D) -> (B, T, D)."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = True, activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.self_branch = _Residual(d_model, dropout, norm_first)
        self.cross_branch = _Residual(d_model, dropout, norm_first)
        self.ff_branch = _Residual(d_model, dropout, norm_first)

    def forward(self, y: Tensor, memory: Tensor | None, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, cache: KVCache | None = None,
                memory_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """y (B, T, D) targets so far, memory (B, S, D) encoder output; masks (B, T), (B, S).

        With a `cache`, y holds the positions after the cached ones, whose self-attention
        keys and values join `layer` of the cache; with a `memory_cache` (holding the memory's
        keys and values, see `MultiHeadAttention.keys_values`), `memory` may be None.
        """
        self_mask, cross_mask = key_mask(tgt_mask), key_mask(memory_mask)
        y = self.self_branch(y, lambda h: self.self_attn(
            h, h, h, mask=self_mask, is_causal=True, need_weights=False, cache=cache, layer=layer)[0])
        y = self.cross_branch(y, lambda h: self.cross_attn(
            h, memory, memory, mask=cross_mask, need_weights=False, cache=memory_cache, layer=layer)[0])
        return self.ff_branch(y, self.feed_forward)


class TokenEmbedding(nn.Module):
    """Token ids (B, T) -> vectors (B, T, D): embedding * sqrt(D) plus positions, then dropout."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int = 512, dropout: float = 0.0,
                 positions: str = "sinusoidal", padding_idx: int | None = 0):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        if positions == "sinusoidal":
            self.positions: nn.Module = SinusoidalPositionalEncoding(d_model, max_len)
        elif positions == "learned":
            self.positions = LearnedPositionalEmbedding(max_len, d_model)
        elif positions == "none":  # the attention layers add positions themselves (RoPE)
            self.positions = _NoPositions()
        else:
            raise ValueError(f"positions must be 'sinusoidal', 'learned' or 'none', got {positions!r}")
        self.scale = math.sqrt(d_model)  # keeps token vectors on the scale of the positions
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor, offset: int = 0) -> Tensor:
        """(B, T) long -> (B, T, D); `offset` is the position of ids[:, 0] (for a KV cache)."""
        return self.dropout(self.positions(self.tokens(ids) * self.scale, offset=offset))


class _NoPositions(nn.Module):
    """TokenEmbedding's position table when positions come from RoPE: adds nothing."""

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        return x


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Small normal weights and zero biases (GPT-2's scheme), for `model.apply(init_weights)`."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
