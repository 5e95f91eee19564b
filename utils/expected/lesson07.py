"""What the visible checks of lesson 07 compare against, kept out of the cells.

The expected values come from the references (`F.layer_norm`, the course's transformer blocks,
`encoder_classifier.masked_mean`); the functions here give the outputs of classic mistakes, as
dicts from a hint's text to the output that mistake gives on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.checks import Slip, known_slips
from utils.models import attention, transformer

# ---------------------------------------------------------------- layer_norm


def _normed(x: Tensor, gamma: Tensor, beta: Tensor, dims: int, unbiased: bool = False) -> Tensor:
    mu = x.mean(dims, keepdim=True)
    return (x - mu) / torch.sqrt(x.var(dims, keepdim=True, unbiased=unbiased) + 1e-5) * gamma + beta


def layer_norm_mistakes(x: Tensor, gamma: Tensor, beta: Tensor) -> dict[str, Tensor]:
    """Wrong layer norms of x (B, T, D) with scale gamma and shift beta (D,)."""
    return {
        "the statistics were taken over the batch (dim 0), as batch norm does; LayerNorm uses "
        "each vector's own D features (dim=-1)": _normed(x, gamma, beta, 0),
        "the statistics were taken over the positions (dim 1); use the features (dim=-1)":
            _normed(x, gamma, beta, 1),
        "the unbiased variance (divides by D - 1); LayerNorm divides by D: "
        "use ((x - mean) ** 2).mean(-1) or x.var(-1, unbiased=False)":
            _normed(x, gamma, beta, -1, unbiased=True),
        "gamma and beta were not applied": F.layer_norm(x, x.shape[-1:]),
    }


def layer_norm_eps_mistakes(x: Tensor) -> dict[str, Tensor]:
    """Wrong placements of eps, on a nearly constant x (N, D) with unit scale and no shift."""
    centred = x - x.mean(-1, keepdim=True)
    std = x.var(-1, keepdim=True, unbiased=False).sqrt()
    return {
        "eps is missing: add it to the variance, inside the sqrt": centred / std,
        "eps was added outside the square root (std + eps); add it to the variance, inside the "
        "sqrt: sqrt(var + eps)": centred / (std + 1e-5),
    }


# ---------------------------------------------------------------- residual


def residual_reference(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module,
                       norm_first: bool) -> Tensor:
    """One residual branch of the course's transformer blocks (`transformer._Residual`), with `norm`."""
    branch = transformer._Residual(x.shape[-1], 0.0, norm_first).eval()
    branch.norm = norm
    return branch(x, sublayer)


def residual_mistakes(x: Tensor, f: Callable[[Tensor], Tensor], norm: nn.Module,
                      norm_first: bool) -> dict[str, Tensor]:
    """Wrong residual branches around the sub-layer f, in the pre-norm or the post-norm order."""
    if norm_first:
        return {
            "that is the post-norm order: with norm_first, normalise the sub-layer's *input*, "
            "and add the unnormalised x": norm(x + f(x)),
            "the residual connection is missing: add x back": f(norm(x)),
            "the sum was normalised too: the pre-norm residual path stays unnormalised": norm(x + f(norm(x))),
            "the normalised x was added: the residual path carries x itself, unnormalised":
                norm(x) + f(norm(x)),
        }
    return {
        "that is the pre-norm order: post-norm adds first, then normalises the sum": x + f(norm(x)),
        "the residual connection is missing: normalise x + sublayer(x)": norm(f(x)),
        "the sub-layer read the normalised x: in post-norm it reads x itself, and only the sum is "
        "normalised": norm(x + f(norm(x))),
    }


# ---------------------------------------------------------------- encoder block


@torch.no_grad()
def encoder_block_mistakes(ref: transformer.EncoderBlock, x: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
    """Wrong pre-norm blocks with the weights of `ref`, on x (B, T, D) with token_mask (B, T);
    zero at padded positions, which the checks do not compare (nothing reads them)."""
    n1, n2, ff = ref.attn_branch.norm, ref.ff_branch.norm, ref.feed_forward
    mask = attention.padding_mask(token_mask)  # (B, 1, 1, T)

    def attend(h: Tensor, m: Tensor | None = mask) -> Tensor:
        return ref.self_attn(h, h, h, mask=m)[0]

    def pre_norm(m: Tensor | None = mask, norm2: nn.Module = n2, attn_residual: bool = True,
                 ff_residual: bool = True) -> Tensor:
        h = attend(n1(x), m) + (x if attn_residual else 0)
        return ff(norm2(h)) + (h if ff_residual else 0)

    h = n1(x + attend(x))
    variants = {
        "that is the post-norm order (LN after adding); this block is pre-norm: x + f(LN(x))": n2(h + ff(h)),
        "the padding mask was ignored: pass attention.padding_mask(token_mask) to the attention":
            pre_norm(m=None),
        "the mask is inverted: padding_mask expects True = real token, as token_mask already is":
            pre_norm(m=attention.padding_mask(~token_mask)),
        "the residual connections are missing: add each sub-layer's output to its input":
            pre_norm(attn_residual=False, ff_residual=False),
        "the attention's residual connection is missing: add x to the attention's output":
            pre_norm(attn_residual=False),
        "the feed-forward's residual connection is missing: add its input back": pre_norm(ff_residual=False),
        "norm1 was used twice: the feed-forward branch has its own LayerNorm, norm2": pre_norm(norm2=n1),
    }
    real = token_mask[..., None]  # (B, T, 1)
    return {hint: out * real for hint, out in variants.items()}


_TUPLE_SLIP: tuple[Slip, ...] = ((TypeError, r"tuple",
                                  "the attention's result was used as a tensor: self.self_attn(...) returns "
                                  "a pair (output, weights); take its output, [0]."),)


def run_block(block: nn.Module, x: Tensor, token_mask: Tensor | None = None) -> Tensor:
    """`block(x, token_mask)`; a tuple used as a tensor (attention returns a pair) is named."""
    with known_slips(_TUPLE_SLIP, who="forward"):
        return block(x, token_mask)


# ---------------------------------------------------------------- pooling


def masked_mean_mistakes(h: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
    """Wrong poolings of h (B, T, D) over the real tokens of token_mask (B, T)."""
    real = token_mask[..., None].to(h.dtype)  # (B, T, 1)
    return {
        "a plain mean over every position, padding included": h.mean(1),
        "the sum over real tokens was divided by T (all positions), not by the number of real tokens":
            (h * real).sum(1) / h.shape[1],
        "the mask is inverted: average where token_mask is True": (h * (1 - real)).sum(1) / (1 - real).sum(1),
    }
