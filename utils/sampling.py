"""Choosing the next token from a model's logits (lesson 09): greedy, temperature, top-k.

Temperature τ divides the logits before the softmax: τ < 1 sharpens the distribution
towards the most likely token (τ -> 0 is greedy), τ > 1 flattens it. Top-k keeps the k most
likely tokens and renormalises over them (Fan et al. 2018, "Hierarchical Neural Story
Generation"), so that the long tail of unlikely tokens is never drawn.
"""

from __future__ import annotations

import torch
from torch import Tensor


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """(..., V) -> (..., V): logits outside the k largest of each row set to -inf."""
    if k is None or k >= logits.shape[-1]:
        return logits
    if k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no filter), got {k}")
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest logit
    return logits.masked_fill(logits < kth, float("-inf"))


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row: logits (N, V) -> ids (N,). temperature=0 means greedy."""
    if logits.dim() != 2:
        raise ValueError(f"sample_next takes logits of shape (N, V), got {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = top_k_filter(logits.float() / temperature, top_k)  # (N, V)
    probs = torch.softmax(filtered, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (N,)
