"""Choosing the next token from a model's logits (lesson 09): greedy, temperature, top-k, top-p.

Temperature τ divides the logits before the softmax: τ < 1 sharpens the distribution
towards the most likely token (τ -> 0 is greedy), τ > 1 flattens it. Top-k keeps the k most
likely tokens and renormalises over them (Fan et al. 2018, "Hierarchical Neural Story
Generation"), so that the long tail of unlikely tokens is never drawn. Top-p ("nucleus"
sampling, Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration") keeps the
smallest set of most likely tokens whose probability mass reaches p: few tokens where the
model is sure, many where it is not.
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


def top_p_filter(logits: Tensor, p: float | None) -> Tensor:
    """(..., V) -> (..., V): logits outside each row's nucleus set to -inf; the nucleus is the
    smallest set of most likely tokens whose probability mass reaches p.

    Ties: a token as likely as the least likely member of the nucleus is kept too, so the
    result never depends on how a sort orders equal logits (as `top_k_filter` keeps ties).
    Then the kept mass is >= p, and the mass of the tokens strictly more likely than the
    least likely kept one is < p.
    """
    if p is None:
        return logits
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (the probability mass to keep), got {p!r}")
    if p == 1:  # every token; no float sum near 1 may drop one
        return logits
    probs = torch.softmax(logits.double(), dim=-1)  # float64: cumulative sums that do not drift
    sorted_probs = probs.sort(dim=-1, descending=True).values  # (..., V)
    running = sorted_probs.cumsum(-1)  # (..., V)
    # The mass of the likelier ranks: the running sum shifted right by one rank.
    mass_before = torch.cat([torch.zeros_like(running[..., :1]), running[..., :-1]], -1)  # (..., V)
    # A rank is needed while the likelier ranks hold less than p: the first rank whose
    # running mass reaches p is the last one kept.
    needed = mass_before < p  # (..., V); rank 0 always
    threshold = sorted_probs.masked_fill(~needed, 2.0).amin(-1, keepdim=True)  # (..., 1)
    return logits.masked_fill(probs < threshold, float("-inf"))


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None, *, top_p: float | None = None) -> Tensor:
    """Draw one token per row: logits (N, V) -> ids (N,). temperature=0 means greedy;
    otherwise temperature, then top-k, then top-p filter the distribution."""
    if logits.dim() != 2:
        raise ValueError(f"sample_next takes logits of shape (N, V), got {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = top_p_filter(top_k_filter(logits.float() / temperature, top_k), top_p)  # (N, V)
    probs = torch.softmax(filtered, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (N,)
