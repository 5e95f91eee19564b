"""What the visible checks of lesson 06 compare against, kept out of the cells.

The expected values come from the references in `utils` (`attention.split_heads`, ...); the
functions here give the outputs of classic mistakes, as dicts from a hint's text to the output
that mistake gives on the same inputs, and `run_attention` names the usual causes when a
student's multi-head attention raises.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from utils.checks import CheckFailed, explained
from utils.models import attention, positions

# ---------------------------------------------------------------- split_heads, merge_heads


def split_heads_mistakes(x: Tensor, num_heads: int) -> dict[str, Tensor]:
    """Wrong splits of x (B, T, D) into (B, H, T, Dh)."""
    B, T, D = x.shape
    return {
        "a view straight to (B, H, T, Dh): that deals each head consecutive *tokens*; view to "
        "(B, T, H, Dh) first, then transpose(1, 2)": x.reshape(B, num_heads, T, D // num_heads),
    }


def merge_heads_mistakes(heads: Tensor) -> dict[str, Tensor]:
    """Wrong merges of heads (B, H, T, Dh) into (B, T, D)."""
    B, H, T, Dh = heads.shape
    return {
        "the heads were merged without transposing back: reshape (B, H, T, Dh) -> (B, T, D) "
        "mixes tokens across heads; transpose(1, 2) to (B, T, H, Dh) first (and keep its result: "
        "transpose returns a new tensor, it does not change x)": heads.reshape(B, T, H * Dh),
        "the wrong dims were transposed (T with Dh): undo split_heads' transpose(1, 2), which "
        "moved the heads before the tokens": heads.transpose(2, 3).reshape(B, T, H * Dh),
    }


# ---------------------------------------------------------------- sinusoidal positions


def _interleave(even: Tensor, odd: Tensor) -> Tensor:
    """(T, D/2), (T, D/2) -> (T, D) with `even` at features 0, 2, ... and `odd` at 1, 3, ..."""
    return torch.stack([even, odd], dim=-1).flatten(1)


def sinusoidal_mistakes(seq_len: int, d_model: int) -> dict[str, Tensor]:
    """Wrong (T, D) tables of sinusoidal positions (in float32, as a student computes them: the
    angles of a mistake can be large, and their rounding must be the student's)."""
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # (D/2,)
    angles = pos / 10000 ** (two_i / d_model)  # (T, D/2)
    i_over_d = pos / 10000 ** (two_i / 2 / d_model)
    from_one = (pos + 1) / 10000 ** (two_i / d_model)
    times = pos * 10000 ** (two_i / d_model)
    return {
        "sin and cos are swapped: sines go to the even features (0, 2, ...), cosines to the odd":
            _interleave(angles.cos(), angles.sin()),
        "the sines and cosines are concatenated in two halves; the paper interleaves them "
        "(sin at 2i, cos at 2i+1)": torch.cat([angles.sin(), angles.cos()], dim=1),
        "the exponent uses i/D; it should be 2i/D, where 2i is the even feature index "
        "(torch.arange(0, d_model, 2))": _interleave(i_over_d.sin(), i_over_d.cos()),
        "the positions start at 1; the first token is at position 0 (torch.arange(seq_len))":
            _interleave(from_one.sin(), from_one.cos()),
        "the position was multiplied by 10000^(2i/D); divide it: the clocks slow down as i grows":
            _interleave(times.sin(), times.cos()),
    }


# ---------------------------------------------------------------- rotary embeddings


def rotary_mistakes(x: Tensor, cos: Tensor, sin: Tensor) -> dict[str, Tensor]:
    """Wrong rotations of x (..., T, Dh) by the angles of cos, sin (T, Dh/2)."""
    even, odd = x[..., 0::2], x[..., 1::2]
    first, second = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    rotate = lambda a, b: (a * cos - b * sin, a * sin + b * cos)  # noqa: E731
    interleave = lambda pair: torch.stack(pair, dim=-1).flatten(-2)  # noqa: E731
    return {
        "the rotation goes the wrong way (by -angle): the first coordinate is "
        "x_even*cos - x_odd*sin, the second x_even*sin + x_odd*cos":
            positions.apply_rotary_embedding(x, cos, -sin),
        "the first half of the features was paired with the second half: a valid convention "
        "(GPT-NeoX's), but not this exercise's: pair adjacent features (0, 1), (2, 3), ...":
            torch.cat(rotate(first, second), -1),
        "the first half of the features was paired with the second half (then interleaved); pair "
        "adjacent features: x[..., 0::2] with x[..., 1::2]": interleave(rotate(first, second)),
        "the rotated pairs were concatenated, not interleaved: stack them on a new last dim, "
        "then flatten": torch.cat(rotate(even, odd), -1),
        "the two coordinates of each pair are swapped: x[..., 0::2] is the first (even) "
        "coordinate, x[..., 1::2] the second": interleave(rotate(odd, even)),
    }


# ---------------------------------------------------------------- multi-head attention


def _heads(x: Tensor, proj: nn.Linear, num_heads: int) -> Tensor:
    return attention.split_heads(proj(x), num_heads)  # (B, H, L, Dh)


def _weights(q: Tensor, k: Tensor, mask: Tensor | None, scale: float, dim: int = -1,
             fill: Tensor | None = None) -> Tensor:
    """softmax over `dim` of the scaled scores, -inf where `mask` is False, 0 where `fill` is False."""
    scores = q @ k.transpose(-2, -1) * scale  # (B, H, Lq, Lk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if fill is not None:
        scores = scores.masked_fill(~fill, 0.0)
    return torch.softmax(scores, dim=dim)


@torch.no_grad()
def mha_mistakes(ref: attention.MultiHeadAttention, query: Tensor, key: Tensor, value: Tensor,
                 mask: Tensor | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(mistakes in the weights (B, H, Lq, Lk), mistakes in the output (B, Lq, D)) of a
    multi-head attention with the weights of `ref`."""
    H, Dh, D = ref.num_heads, ref.head_dim, ref.d_model
    q, k, v = (_heads(x, p, H) for x, p in ((query, ref.q_proj), (key, ref.k_proj), (value, ref.v_proj)))
    weights = {
        "the scores were divided by sqrt(d_model); each head compares vectors of head_dim = "
        "d_model / num_heads features, so divide by sqrt(head_dim)": _weights(q, k, mask, D ** -0.5),
        "the scores were not scaled: divide them by sqrt(head_dim)": _weights(q, k, mask, 1.0),
        "the softmax ran over the queries (dim -2); each query's weights sum to 1 over the "
        "keys (dim -1)": _weights(q, k, mask, Dh ** -0.5, dim=-2),
    }
    if mask is not None:
        weights.update({
            "the mask was ignored: hide the keys where it is False (masked_fill with -inf before "
            "the softmax)": _weights(q, k, None, Dh ** -0.5),
            "an inverted mask: True marks the keys a query MAY attend to, so hide where the mask "
            "is False": _weights(q, k, ~mask, Dh ** -0.5),
            "the hidden keys' scores were set to 0, not -inf: exp(0) = 1, so they still get weight; "
            "masked_fill(~mask, float('-inf'))": _weights(q, k, None, Dh ** -0.5, fill=mask),
        })
    heads = _weights(q, k, mask, Dh ** -0.5) @ v  # (B, H, Lq, Dh): the right heads' outputs
    B, Lq = query.shape[:2]
    output = {
        "out_proj was not applied: the heads' outputs, side by side, still need W_O "
        "(self.out_proj), which mixes what the heads found": attention.merge_heads(heads),
        "the heads were merged without transposing back: (B, H, Lq, Dh) -> transpose(1, 2) -> "
        "(B, Lq, H, Dh), then reshape to (B, Lq, D)": ref.out_proj(heads.reshape(B, Lq, D)),
    }
    return weights, output


_PROJECTION = ("mat1 and mat2 shapes cannot be multiplied",)
_SHAPES = ("must match the size of tensor", "is invalid for input of size", "Expected size for first two",
           "does not broadcast", "cannot be broadcast", "Number of dimensions of repeat dims")


def _attention_hint(err: Exception, query: Tensor, key: Tensor, mask: Tensor | None) -> str | None:
    message = str(err)
    if any(p in message for p in _PROJECTION):
        return ("a Linear layer (q_proj, k_proj, v_proj, out_proj: nn.Linear(D, D)) got a tensor whose "
                f"last dim is not d_model = {query.shape[-1]}: project the full-width (B, L, D) inputs "
                "before splitting into heads, and merge the heads back to (B, Lq, D) before out_proj.")
    if not any(p in message for p in _SHAPES):
        return None
    Lq, Lk = query.shape[1], key.shape[1]
    if Lq != Lk:  # self-attention passed before this call
        return (f"this is cross-attention (Lq = {Lq} queries, Lk = {Lk} keys): the queries come from "
                "`query`, the keys and values from `key` and `value`. Check which input each "
                "projection reads, and which length each view uses.")
    if mask is not None:  # the same call without a mask passed before this one
        return (f"the mask {tuple(mask.shape)} could not be applied to the scores (B, H, Lq, Lk): "
                "it already broadcasts over the heads (a padding mask is (B, 1, 1, Lk), a causal "
                "one (Lq, Lk)); use it as given, without an unsqueeze or a reshape.")
    return None


def run_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                  mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`module(query, key, value, mask=mask)`, which must return (output, weights); when it raises a
    shape error, the failure names multi-head attention's usual causes."""
    try:
        result = module(query, key, value, mask=mask)
    except NotImplementedError:
        raise  # not attempted (or a library's own), as the exercise's check expects
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        hint = _attention_hint(err, query, key, mask)
        if hint is None:
            raise
        raise CheckFailed(explained(err, hint, who="forward")) from err
    if not (isinstance(result, tuple) and len(result) == 2):
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise CheckFailed(f"forward should return a pair (output, weights), got {got}: "
                          "return self.out_proj(...), weights")
    return result
