"""What the visible checks of lesson 05 compare against, kept out of the cells.

The right answers come from the course's reference (`utils.models.attention`); this module
holds the classic *wrong* ones. Each function returns a dict from a hint (the mistake, in the
words a student reads) to the output that mistake gives on the check's inputs, for
`checks.check_close(..., mistakes=...)`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from utils.models import attention


def _softmax_of(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """softmax over `dim` of `scores`, with the keys `mask` hides (True = may attend) set to -inf."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim)


def attention_weight_mistakes(q: Tensor, k: Tensor) -> dict[str, Tensor]:
    """Weights (..., Lq, Lk) of the classic mistakes in softmax(q kᵀ / √d), for q, k (..., L, d).

    (A softmax over the wrong dim is caught before, by the check that each row sums to 1.)
    """
    d, length = q.shape[-1], q.shape[-2]
    raw = attention.attention_scores(q, k, scale=1.0)  # (..., Lq, Lk), unscaled
    return {
        "the scores were not divided by sqrt(d): softmax(q kᵀ) saturates as d grows (section 2)":
            _softmax_of(raw),
        "the scores were divided by d, not by its square root sqrt(d)": _softmax_of(raw / d),
        "the scores were multiplied by sqrt(d) instead of divided by it": _softmax_of(raw * d**0.5),
        "the scale used the sequence length (q.shape[1] or q.shape[-2]), not the width "
        "d = q.shape[-1] of q and k": _softmax_of(raw / length**0.5),
        "kᵀ q instead of q kᵀ, so the weights came out transposed: rows must index queries and "
        "columns keys": _softmax_of(raw.transpose(-2, -1) / d**0.5),
    }


def attention_output_mistakes(q: Tensor, k: Tensor, v: Tensor) -> dict[str, Tensor]:
    """Outputs (..., Lq, Dv) of the classic mistakes in `weights @ v`."""
    _, weights = attention.scaled_dot_product_attention(q, k, v)  # (..., Lq, Lk)
    return {
        "weightsᵀ @ v: the weights were transposed, but they are already (queries, keys)":
            weights.transpose(-2, -1) @ v,
    }


def causal_mask_mistakes(seq_len: int) -> dict[str, Tensor]:
    """(T, T) bool masks of the classic mistakes in "True where key j <= query i"."""
    ones = torch.ones(seq_len, seq_len, dtype=torch.bool)
    return {
        "an inverted mask: True must mark the keys a query MAY see (the past), not the hidden ones":
            ones.triu(1),
        "the mask is transposed (upper triangle): row i is query i, and it may see columns j <= i":
            ones.triu(),
        "the diagonal is hidden: a token may attend to itself (j <= i, not j < i)": ones.tril(-1),
        "one future key is visible (j <= i + 1): query i may see keys up to i, no further":
            ones.tril(1),
    }


def masked_weight_mistakes(q: Tensor, k: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Weights (..., Lq, Lk) of the classic mistakes in masking, for a bool `mask` (True = may attend)."""
    d = q.shape[-1]
    scores = attention.attention_scores(q, k)  # (..., Lq, Lk), divided by sqrt(d)
    plain = torch.softmax(scores, dim=-1)
    return {
        "an inverted mask: True marks the keys a query MAY attend to, so hide where the mask is False "
        "(~mask)": _softmax_of(scores, mask=~mask),
        "the mask was ignored (masked_fill returns a new tensor: assign its result)": plain,
        "the weights were masked after the softmax, so they no longer sum to 1: "
        "mask the scores with -inf before the softmax": plain * mask,
        "hidden scores were set to 0 instead of -inf: exp(0) = 1 still gives hidden keys weight":
            torch.softmax(scores.masked_fill(~mask, 0.0), dim=-1),
        "the scores were not divided by sqrt(d)": _softmax_of(scores * d**0.5, mask=mask),
    }


# A softmax over the queries meets the all -inf column of a padded key (a NaN, so no mistake's
# output can match it): the hint for non-finite weights names it, next to the additive-mask slip.
NONFINITE_MASK_HINT = ("NaN here has two usual causes: a softmax over the queries (dim=-2), which meets a "
                      "column of hidden keys that is all -inf (0/0), so take it over the keys (dim=-1); or "
                      "a mask multiplied by -inf, which gives 0 × -inf = NaN at the visible keys, so hide "
                      "keys with masked_fill(~mask, float(\"-inf\")) instead")


def self_attention_weight_mistakes(layer: nn.Module, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Weights (B, T, T) of the classic mistakes in `SelfAttention.forward`, for `layer`'s own projections."""
    q, k = layer.q_proj(x), layer.k_proj(x)  # (B, T, D) each
    return {
        "the mask was ignored (masked_fill returns a new tensor: assign its result)":
            attention.attention_weights(q, k),
        "an inverted mask: hide the keys where the mask is False (~mask)":
            attention.attention_weights(q, k, mask=~mask),
        "queries and keys are swapped (k_proj made the queries, q_proj the keys)":
            attention.attention_weights(k, q, mask=mask),
        "the keys were made with q_proj: each of q, k, v has its own projection, use k_proj for k":
            attention.attention_weights(q, q, mask=mask),
        "the queries and keys were not projected (x was used as q and k)":
            attention.attention_weights(x, x, mask=mask),
    }


def self_attention_output_mistakes(layer: nn.Module, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Outputs (B, T, D) of the classic mistakes in `SelfAttention.forward` once the weights are right."""
    q, k = layer.q_proj(x), layer.k_proj(x)  # (B, T, D) each
    weights = attention.attention_weights(q, k, mask=mask)  # (B, T, T)
    return {
        "the values were not projected (x was used as v): use v_proj(x)": weights @ x,
        "the values were made with k_proj: use v_proj(x) for v": weights @ k,
    }
