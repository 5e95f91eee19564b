"""A Transformer encoder that classifies a whole sequence (lesson 07): the sentiment model.

Token ids -> `TokenEmbedding` (scaled embedding + positions) -> a stack of `EncoderBlock`s
-> one vector per sequence (masked mean pooling, or a learned [CLS] vector read at
position 0, as in BERT) -> a linear head over the classes.

Padding never changes the logits: the blocks mask padded keys, and the pooling reads only
real tokens. Shape letters: B batch, T length, D `d_model`, H heads, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.models.attention import MultiHeadAttention, attention_weights, merge_heads, split_heads
from utils.models.positions import RotaryEmbedding
from utils.models.transformer import EncoderBlock, TokenEmbedding, init_weights

POOLINGS = ("mean", "cls")
POSITIONS = ("sinusoidal", "learned", "rotary")


@dataclass(frozen=True)
class EncoderClassifierConfig:
    """Sizes of an `EncoderClassifier`; names as in the paper and in PyTorch."""

    vocab_size: int
    num_classes: int = 2
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    max_len: int = 512
    pooling: str = "mean"  # "mean" over real tokens, or "cls": a learned vector at position 0
    norm_first: bool = True  # pre-norm (Xiong et al. 2020); False = post-norm, as in the paper
    # "sinusoidal" or "learned" are added to the embeddings; "rotary" (RoPE) rotates every
    # layer's queries and keys instead, so attention sees relative offsets directly.
    positions: str = "sinusoidal"
    padding_idx: int = 0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.num_layers < 1 or self.num_classes < 2 or self.vocab_size < 1:
            raise ValueError(
                f"need num_layers >= 1, num_classes >= 2 and vocab_size >= 1, got "
                f"{self.num_layers=}, {self.num_classes=}, {self.vocab_size=}"
            )


def masked_mean(h: Tensor, token_mask: Tensor | None) -> Tensor:
    """Mean over the real tokens of each sequence: h (B, T, D), token_mask (B, T) -> (B, D)."""
    if token_mask is None:
        return h.mean(dim=1)
    if token_mask.dtype != torch.bool or token_mask.shape != h.shape[:2]:
        raise ValueError(
            f"token_mask must be a bool (B, T) = {tuple(h.shape[:2])} tensor, True = real token; "
            f"got {token_mask.dtype} {tuple(token_mask.shape)}"
        )
    weights = token_mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1): 1 at real tokens, 0 at padding
    count = weights.sum(dim=1).clamp_min(1.0)  # (B, 1): an all-padding row gives zeros, not NaN
    return (h * weights).sum(dim=1) / count  # (B, D)


class RotaryMultiHeadAttention(MultiHeadAttention):
    """`MultiHeadAttention` whose queries and keys are rotated by RoPE (Su et al. 2021)
    before q·kᵀ, so that scores depend on positions only through their offset.
    Same interface and parameters: (B, Lq, D), (B, Lk, D), (B, Lk, D) -> ((B, Lq, D), weights)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 base: float = 10000.0):
        super().__init__(d_model, num_heads, dropout, bias)
        self.rotary = RotaryEmbedding(self.head_dim, base)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None,
                is_causal: bool = False, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Positions 0..Lq-1 for the queries and 0..Lk-1 for the keys (self-attention)."""
        self._check_inputs(query, key, value)
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, H, Lq, Dh)
        k = split_heads(self.k_proj(key), self.num_heads)  # (B, H, Lk, Dh)
        v = split_heads(self.v_proj(value), self.num_heads)  # (B, H, Lk, Dh)
        q, k = self.rotary(q, k)  # (B, H, L, Dh): each pair of features turned by its angle
        if need_weights or not self._fused_ok(mask, is_causal):
            weights = attention_weights(q, k, mask, is_causal)  # (B, H, Lq, Lk)
            out = self.dropout(weights) @ v  # (B, H, Lq, Dh)
        else:  # PyTorch's fused kernel: same result, never stores the (Lq, Lk) weights
            dropout_p = self.dropout.p if self.training else 0.0
            weights, out = None, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                                                is_causal=is_causal)
        return self.out_proj(merge_heads(out)), weights  # (B, Lq, D)

    @staticmethod
    def _fused_ok(mask: Tensor | None, is_causal: bool) -> bool:
        """The fused kernel takes one of mask / is_causal, and gives NaN to a query that sees
        no key: use it only where neither can happen (the explicit path handles both)."""
        if mask is None:
            return True
        return not is_causal and mask.dtype == torch.bool and bool(mask.any(dim=-1).all())


class _NoPositions(nn.Module):
    """Stands in for TokenEmbedding's position table when positions come from RoPE."""

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        return x


class EncoderClassifier(nn.Module):
    """Sequence classifier: ids (B, T) and token_mask (B, T) -> logits (B, num_classes)."""

    def __init__(self, config: EncoderClassifierConfig):
        super().__init__()
        c = self.config = config
        # With [CLS] the sequence grows by one position, so the position table does too.
        rotary = c.positions == "rotary"
        self.embed = TokenEmbedding(c.vocab_size, c.d_model, max_len=c.max_len + (c.pooling == "cls"),
                                    dropout=c.dropout, positions="learned" if rotary else c.positions,
                                    padding_idx=c.padding_idx)
        if rotary:  # no absolute positions: every attention layer rotates q and k instead
            self.embed.positions = _NoPositions()
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model)) if c.pooling == "cls" else None
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, norm_first=c.norm_first)
            for _ in range(c.num_layers)
        )
        if rotary:
            for block in self.blocks:
                block.self_attn = RotaryMultiHeadAttention(c.d_model, c.num_heads, c.dropout)
        # A pre-norm stack leaves its residual stream unnormalised: one LayerNorm at the end
        # (as GPT-2 does). Post-norm blocks already end with one.
        self.final_norm = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.head = nn.Linear(c.d_model, c.num_classes)
        self.apply(init_weights)
        # TokenEmbedding multiplies by √D; init_weights' std of 0.02 would then leave token
        # vectors ~10x smaller than the positions (entries of size ~1), drowning the words.
        # std D^-1/2 makes scaled token vectors unit-variance, on a par with the positions.
        nn.init.normal_(self.embed.tokens.weight, std=c.d_model**-0.5)
        with torch.no_grad():
            self.embed.tokens.weight[c.padding_idx].zero_()
        if self.cls is not None:
            nn.init.normal_(self.cls, std=0.02)

    def encode(self, ids: Tensor, token_mask: Tensor | None = None,
               need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Contextual vectors: ids (B, T) -> (h (B, T', D), token_mask (B, T')); T' = T + 1 with [CLS].

        `need_weights=True` runs attention's explicit path, which keeps the weights (slower).
        """
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"ids must be integer token ids (B, T), got {ids.dtype} {tuple(ids.shape)}")
        if token_mask is not None and token_mask.shape != ids.shape:
            raise ValueError(
                f"token_mask {tuple(token_mask.shape)} must have the shape of ids {tuple(ids.shape)}")
        if self.cls is None:
            h = self.embed(ids)  # (B, T, D), positions 0..T-1
        else:
            tokens = self.embed(ids, offset=1)  # (B, T, D), positions 1..T
            cls = self.cls.expand(ids.shape[0], 1, -1) + self.embed.positions(
                torch.zeros_like(self.cls), offset=0)  # (B, 1, D): [CLS] sits at position 0
            h = torch.cat([cls, tokens], dim=1)  # (B, T + 1, D)
            if token_mask is not None:
                always = torch.ones_like(token_mask[:, :1])  # (B, 1): [CLS] is always real
                token_mask = torch.cat([always, token_mask], dim=1)  # (B, T + 1)
        for block in self.blocks:
            h = block(h, token_mask, need_weights=need_weights)  # (B, T', D)
        return self.final_norm(h), token_mask

    def forward(self, ids: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """ids (B, T) long, token_mask (B, T) bool True = real token -> logits (B, num_classes)."""
        h, token_mask = self.encode(ids, token_mask)  # (B, T', D)
        pooled = h[:, 0] if self.cls is not None else masked_mean(h, token_mask)  # (B, D)
        return self.head(pooled)  # (B, C)

    @torch.no_grad()
    def attention_maps(self, ids: Tensor, token_mask: Tensor | None = None) -> list[Tensor]:
        """Every block's attention weights, one (B, H, T', T') tensor per layer (for heat maps)."""
        maps: list[Tensor] = []
        hooks = [block.self_attn.register_forward_hook(lambda _m, _i, out: maps.append(out[1]))
                 for block in self.blocks]
        try:
            self.encode(ids, token_mask, need_weights=True)
        finally:
            for hook in hooks:
                hook.remove()
        return maps
