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
from torch import Tensor, nn

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


class EncoderClassifier(nn.Module):
    """Sequence classifier: ids (B, T) and token_mask (B, T) -> logits (B, num_classes)."""

    def __init__(self, config: EncoderClassifierConfig):
        super().__init__()
        c = self.config = config
        # With [CLS] the sequence grows by one position, so the position table does too.
        # "rotary": no absolute positions in the embedding; every attention layer rotates its
        # queries and keys instead.
        rotary = c.positions == "rotary"
        self.embed = TokenEmbedding(c.vocab_size, c.d_model, max_len=c.max_len + (c.pooling == "cls"),
                                    dropout=c.dropout, positions="none" if rotary else c.positions,
                                    padding_idx=c.padding_idx)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model)) if c.pooling == "cls" else None
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, norm_first=c.norm_first, rotary=rotary)
            for _ in range(c.num_layers)
        )
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
