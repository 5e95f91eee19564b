"""What the visible checks of lesson 04 compare against, kept out of the cells.

The right answers come from the course's references (`utils.models.seq2seq`,
`utils.data.alignment_agreement`); this module holds the classic *wrong* ones. Each function
returns a dict from a hint (the mistake, in the words a student reads) to the output that
mistake gives on the check's inputs, for `checks.check_close(..., mistakes=...)`.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from utils.checks import known_slips
from utils.data import alignment_agreement
from utils.data.alignment import alignment_matrix
from utils.models.seq2seq import AdditiveAttention, DotProductAttention, masked_softmax


def additive_score_mistakes(attn: AdditiveAttention, query: Tensor, keys: Tensor) -> dict[str, Tensor]:
    """Scores (B, T, S) of the classic mistakes in vᵀ tanh(W_q q + W_k k + b), with `attn`'s weights."""
    q = attn.query_proj(query)[:, :, None, :]  # (B, T, 1, A)
    k = attn.key_proj(keys)[:, None, :, :]  # (B, 1, S, A), bias included
    bias, v = attn.key_proj.bias, attn.v.weight[0]  # (A,), (A,)
    return {
        "the tanh is missing: additive attention is a hidden layer, vᵀ tanh(...)": (q + k) @ v,
        "the bias b is missing (add b_key to the projected keys)": torch.tanh(q + k - bias) @ v,
        "tanh was applied to the queries and the keys separately: apply it once, to their sum":
            (torch.tanh(q) + torch.tanh(k)) @ v,
        "the hidden units were summed instead of weighted by v: finish with `@ v`": torch.tanh(q + k).sum(-1),
    }


def dot_score_mistakes(attn: DotProductAttention, query: Tensor, keys: Tensor) -> dict[str, Tensor]:
    """Scores (B, T, S) of the classic mistakes in qᵀ W k, with `attn`'s W."""
    scores = attn.scores(query, keys)  # (B, T, S)
    return {
        "the scores are transposed, (B, S, T) (keys @ queryᵀ): rows must index the queries":
            scores.transpose(1, 2),
        "the scores were divided by sqrt(Dq): Luong's general score q^T W k has no scale "
        "(that comes with the Transformer, lesson 05)": scores / query.shape[-1] ** 0.5,
    }


def attend_weight_mistakes(scores: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Weights (B, T, S) of the classic mistakes in a masked softmax; `mask` (B, S), True = real token."""
    hidden = ~mask[:, None, :]  # (B, 1, S): the padded positions
    return {
        "padding was not masked: padded source positions must get weight 0 (masked_fill returns a new "
        "tensor: assign its result)": torch.softmax(scores, -1),
        "the mask is inverted: True marks real tokens, which must keep their scores":
            torch.softmax(scores.masked_fill(~hidden, float("-inf")), -1),
        "padded scores were set to 0 instead of -inf: exp(0) = 1 still gives them weight":
            torch.softmax(scores.masked_fill(hidden, 0.0), -1),
        "the weights were masked after the softmax, so rows no longer sum to 1: "
        "set padded scores to -inf before it": torch.softmax(scores, -1) * ~hidden,
    }


# A softmax over the target positions meets the all -inf column of a padded source position (a
# NaN, so no mistake's output can match it): the hint for non-finite weights names it.
NONFINITE_MASK_HINT = ("NaN here has two usual causes: a softmax over the target positions (dim 1), which "
                       "meets a column of padding that is all -inf (0/0), so take it over the source "
                       "(dim -1); or a mask multiplied by -inf, which gives 0 × -inf = NaN at the real "
                       "positions, so fill the padded scores with -inf (masked_fill) instead")


def context(scores: Tensor, values: Tensor, mask: Tensor) -> Tensor:
    """The right context (B, T, Dv): the course's masked softmax over the source, applied to `values`."""
    return masked_softmax(scores, mask) @ values


def alignment_accuracy_mistakes(weights: Tensor, alignment: list[tuple[int, int]]) -> dict[str, float]:
    """Shares of the classic mistakes in `alignment_accuracy` for (T, S) `weights`."""
    T, S = weights.shape
    gold = alignment_matrix(alignment, S, T)  # (T, S)
    hits = gold[torch.arange(T), weights.argmax(dim=1)]  # (T,)
    return {
        "rows without any aligned source token were counted: leave them out of the share":
            hits.float().mean().item(),
        "a count, not a share: divide the hits by the number of aligned rows (a mean)":
            float(hits[gold.any(dim=1)].sum()),
        "the pairs were read as (target, source): `alignment` holds (source_index, target_index)":
            alignment_agreement(weights, [(t, s) for s, t in alignment]),
    }



# ---------------------------------------------------------------- exceptions

alignment_errors = partial(known_slips, [
    (IndexError, r"indexing tensors could not be broadcast",
     "an argmax over the wrong dim: `weights` is (T, S), one row per target word, so the source "
     "word each row looks at most is weights.argmax(dim=1), (T,); argmax(dim=0) gives one index per "
     "source word, (S,)."),
])
alignment_errors.__doc__ = "Inside alignment_accuracy's check: an index of the wrong length becomes a hint."
