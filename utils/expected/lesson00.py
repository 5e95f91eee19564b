"""What the visible checks of lesson 00 compare against, kept out of the cells.

The right answers come from the course's references (`utils.models.attention`, `torch.softmax`);
this module holds the classic *wrong* ones. Each function returns a dict from a hint (the
mistake, in the words a student reads) to the output that mistake gives on the check's inputs,
for `checks.check_close(..., mistakes=...)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from utils.models import attention


def attention_score_mistakes(q: Tensor, k: Tensor) -> dict[str, Tensor]:
    """Scores (B, L, L) of the classic mistakes in every query against every key, for square q, k."""
    raw = attention.attention_scores(q, k, scale=1.0)  # (B, Lq, Lk), unscaled
    return {
        "k @ qᵀ: the operands are swapped, so rows index keys instead of queries": raw.transpose(-2, -1),
        "the scores were divided by sqrt(D): this exercise asks for the raw dot products "
        "(the scale comes in section 4)": raw / q.shape[-1] ** 0.5,
    }


def padding_mask_mistakes(lengths: Tensor, max_len: int) -> dict[str, Tensor]:
    """(B, max_len) bool masks of the classic mistakes in "True where position < length"."""
    right = attention.padding_mask(lengths, max_len)[:, 0, 0]  # (B, L)
    one_more = attention.padding_mask(lengths + 1, max_len + 1)[:, 0, 0, :max_len]  # (B, L)
    return {
        "an inverted mask: True must mark real tokens, not padding": ~right,
        "an off-by-one: use `<`, not `<=` (position 0 is the first token, so a sequence of length n "
        "fills positions 0 .. n - 1)": one_more,
    }


def _normalised(exps: Tensor, dim: int) -> Tensor:
    return exps / exps.sum(dim=dim, keepdim=True)


def softmax_mistakes(x: Tensor, dim: int = -1) -> dict[str, Tensor]:
    """Outputs of the classic mistakes in a stable softmax along `dim`, for a square 2-D `x`."""
    other = 0 if dim in (-1, 1) else -1  # the dim the softmax must NOT run along
    shifted = x - x.amax(dim=dim, keepdim=True)
    return {
        f"a softmax along dim {other}: normalise along `dim` (the last one by default)":
            torch.softmax(x, dim=other),
        "the sum lost its dim (no keepdim=True), so it broadcast along the other axis and each "
        "entry was divided by another slice's sum: use .sum(dim=dim, keepdim=True)":
            shifted.exp() / shifted.exp().sum(dim=dim),
        "the maximum lost its dim (no keepdim=True), so each entry was shifted by another slice's "
        "maximum: use .amax(dim=dim, keepdim=True)": _normalised((x - x.amax(dim=dim)).exp(), dim),
        f"the maximum was taken along `dim` but the sum along dim {other}: both run along `dim`":
            _normalised(shifted.exp(), other),
        "the exponentials were not divided by their sum: each slice along `dim` must sum to 1":
            shifted.exp(),
    }


NONFINITE_SOFTMAX_HINT = ("exp overflowed to inf (or a whole slice underflowed to 0, and 0/0 is NaN): "
                          "subtract the maximum of each slice along `dim` (keepdim=True) before "
                          "exponentiating, so that the largest exponent is e^0 = 1")


def ignored_dim_mistakes(x: Tensor, dim: int) -> dict[str, Tensor]:
    """Outputs of a softmax that ignores its `dim` argument, for a check along a `dim` other than -1."""
    return {
        "the `dim` argument was ignored (always the last dim): use `dim` in the max and the sum":
            torch.softmax(x, dim=-1),
        "the sum ignores the `dim` argument (always the last dim): sum along `dim`":
            _normalised((x - x.amax(dim=dim, keepdim=True)).exp(), -1),
        "the maximum ignores the `dim` argument (always the last dim): take it along `dim`":
            _normalised((x - x.amax(dim=-1, keepdim=True)).exp(), dim),
    }


def multihead_score_mistakes(q: Tensor, k: Tensor) -> dict[str, Tensor]:
    """Scores (B, H, L, L) of the classic mistakes in einsum scores scaled by 1/sqrt(Dh), square q, k."""
    raw = attention.attention_scores(q, k, scale=1.0)  # (B, H, Lq, Lk)
    head_dim, length = q.shape[-1], q.shape[-2]
    return {
        "unscaled scores: divide by sqrt(Dh)": raw,
        "scores divided by Dh: divide by its square root, sqrt(Dh)": raw / head_dim,
        "scores multiplied by sqrt(Dh): divide by it": raw * head_dim**0.5,
        "the scale used the length L (q.shape[-2]), not the head width Dh = q.shape[-1]":
            raw / length**0.5,
        "the output is transposed (keys, queries): write the query letter before the key letter "
        "after the arrow, e.g. ...->bhqk": raw.transpose(-2, -1) / head_dim**0.5,
    }
