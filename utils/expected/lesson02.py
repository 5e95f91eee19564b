"""What the visible checks of lesson 02 compare against, kept out of the cells.

The right answers come from the course's reference (`utils.models.cnn`); this module holds the
classic *wrong* ones. Each `*_mistakes` function returns a dict from a hint (the mistake, in the
words a student reads) to the output that mistake gives on the check's inputs; `looks_like`
finds the one a student's output equals, whatever its shape. `conv_errors` and
`gradient_errors` turn the exceptions this lesson's classic slips raise (and that
`checks.diagnose_exception` does not know) into a hint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.checks import known_slips
from utils.models.cnn import reachable_inputs, receptive_field


def _same(a: Any, b: Any) -> bool:
    """Equal values: tensors of one shape (any dtype) within float tolerance, or equal plain values."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or a.shape != b.shape:
            return False
        return torch.allclose(a.detach().cpu().double(), b.detach().cpu().double(), atol=1e-5, rtol=1e-4)
    return type(a) is type(b) and a == b


def looks_like(got: Any, right: Any, mistakes: Mapping[str, Any]) -> str | None:
    """The hint of the first mistake whose output `got` equals (any shape); None if `got` is right
    or matches none. Mistakes that give the right output on these inputs are skipped."""
    if _same(got, right):
        return None
    for hint, wrong in mistakes.items():
        if not _same(wrong, right) and _same(got, wrong):
            return hint
    return None


def feedback(call: str, got: Any, right: Any, mistakes: Mapping[str, Any]) -> str | None:
    """None if `got` is right, else what a student reads: `call` should give `right`, and why not."""
    if _same(got, right):
        return None
    hint = looks_like(got, right, mistakes)
    return f"{call} should be {right}, got {got}" + (f": {hint}" if hint else "")


# ---------------------------------------------------------------- causal_conv1d


def causal_conv_mistakes(x: Tensor, weight: Tensor, bias: Tensor, dilation: int) -> dict[str, Tensor]:
    """Outputs of the classic mistakes in a causal dilated convolution of x (B, T, D_in); some of
    them have another length than T, or another layout than (B, T, D_out)."""
    k = weight.shape[-1]
    total = (k - 1) * dilation  # the right amount of padding
    h = x.transpose(1, 2)  # (B, D_in, T)

    def conv(left: int, right: int, dil: int = dilation, b: Tensor | None = bias, inp: Tensor = h) -> Tensor:
        return F.conv1d(F.pad(inp, (left, right)), weight, b, dilation=dil).transpose(1, 2)

    scrambled = x.reshape(x.shape[0], x.shape[2], x.shape[1])  # (B, D_in, T), values out of place
    return {
        "a centred window: the zeros were split between both sides, so output t sees inputs after t; "
        "a causal convolution puts all (k - 1) * dilation zeros on the left":
            conv(total // 2, total - total // 2),
        "the zeros went on the right, so output t sees inputs t .. t + (k - 1) * dilation, the future: "
        "pad on the left": conv(0, total),
        "the padding forgot the dilation: with dilation d the k taps span (k - 1) * d + 1 positions, "
        "so pad (k - 1) * dilation zeros, not k - 1": conv(k - 1, 0),
        "k * dilation zeros of padding: the window spans (k - 1) * dilation + 1 positions, so pad "
        "(k - 1) * dilation": conv(k * dilation, 0),
        "F.conv1d was not given dilation=dilation, so its taps sit next to each other": conv(total, 0, dil=1),
        "(k - 1) * dilation zeros on both sides: a causal convolution pads the left only": conv(total, total),
        "the bias is missing: pass it to F.conv1d": conv(total, 0, b=None),
        "x was reshaped (view/reshape) to (B, D_in, T), which scrambles the values: swap the time and "
        "channel dims with x.transpose(1, 2)": conv(total, 0, inp=scrambled),
    }


# ---------------------------------------------------------------- receptive_field


def receptive_field_mistakes(kernel_size: int, dilations: Sequence[int]) -> dict[str, int]:
    """What the classic mistakes in the receptive-field formula give for one stack."""
    k, ds = kernel_size, list(dilations)
    return {
        "off by one: the output's own position counts too": receptive_field(k, ds) - 1,
        "a layer adds (k - 1) gaps of d positions, not k gaps": 1 + k * sum(ds),
        "a layer adds (k - 1) gaps of d positions, not k, and the output's own position counts once":
            k * sum(ds),
        "the dilations are ignored: a layer with dilation d spreads its k taps d positions apart":
            receptive_field(k, [1] * len(ds)),
        "only the widest layer was counted: every layer widens the window by its own (k - 1) * d":
            receptive_field(k, [max(ds)] if ds else []),
    }


# ---------------------------------------------------------------- reach_by_gradient


def reach_mistakes(encoder: nn.Module, seq_len: int, position: int, d_model: int) -> dict[str, Tensor]:
    """(T,) or (T, D) bool answers of the classic mistakes in measuring which inputs reach `position`."""
    reach = reachable_inputs(encoder, seq_len, position, d_model)  # (T,)
    return {
        "every input reaches it: backpropagate from the output vector at `position` only (the "
        "encoder's output is (1, T, D): index it [0, position]), not from the whole output":
            torch.ones(seq_len, dtype=torch.bool),
        "the inputs that reach the last output, not the output at `position`":
            reachable_inputs(encoder, seq_len, seq_len - 1, d_model),
        "one bool per input feature (T, D): reduce over the feature dim too (dim=-1), so a position "
        "counts when any of its features gets a gradient": reach[:, None].expand(seq_len, d_model),
        "one bool per feature (D,): reduce over the features (dim=-1), not over time":
            torch.ones(d_model, dtype=torch.bool),
    }


# ---------------------------------------------------------------- doubling_dilations


def _grow(length: int, kernel_size: int, *, covers: Callable[[int, int], bool] = lambda rf, n: rf >= n,
          dilation: Callable[[int], int] = lambda i: 2**i, start: Sequence[int] = ()) -> list[int]:
    dilations = list(start)
    while not covers(receptive_field(kernel_size, dilations), length) and len(dilations) < 64:
        dilations.append(dilation(len(dilations)))
    return dilations


def doubling_dilation_mistakes(length: int, kernel_size: int = 3) -> dict[str, list[int]]:
    """What the classic mistakes in "fewest doubling layers that cover `length`" return."""
    k = kernel_size
    mistakes = {
        "a first layer even where none is needed: one token (length <= 1) needs no layer, []":
            _grow(length, k, start=[1]),
        "one layer too many: a receptive field of exactly `length` already covers it; stop as soon as "
        "1 + (k - 1) * sum(dilations) is at least `length` (the 1 is the output's own position)":
            _grow(length, k, covers=lambda rf, n: rf > n),
        "the dilations start at 2: the first layer has dilation 1 (2 ** 0)":
            _grow(length, k, dilation=lambda i: 2 ** (i + 1)),
        "dilations that grow by one (1, 2, 3, ...): double them (1, 2, 4, ...)":
            _grow(length, k, dilation=lambda i: i + 1),
    }
    if k != 3:
        mistakes["the kernel size was ignored (kernel 3 assumed): with kernel k each layer adds "
                 "(k - 1) * d tokens"] = _grow(length, 3)
    return mistakes


# ---------------------------------------------------------------- exceptions


conv_errors = partial(known_slips, [
    (RuntimeError, r"expected input\[.*\] to have \d+ channels",
     "F.conv1d got time where it wants channels: it takes (B, D_in, T), channels before time, so "
     "transpose x (B, T, D_in) with x.transpose(1, 2) before the convolution (and the output back)."),
])
conv_errors.__doc__ = "Inside a check: F.conv1d's layout error becomes a CheckFailed with a hint."

gradient_errors = partial(known_slips, [
    (TypeError, r"'NoneType' object",
     "x.grad is None: autograd fills .grad only for a tensor created with requires_grad=True "
     "(torch.randn(..., requires_grad=True)), and only after backward()."),
    (RuntimeError, r"grad can be implicitly created only for scalar outputs",
     "backward() on a vector: without an argument it needs a scalar, so sum the output vector at "
     "`position` first (`.sum().backward()`)."),
    (RuntimeError, r"does not require grad and does not have a grad_fn",
     "nothing to differentiate: create the input with requires_grad=True, and do not run the "
     "encoder under torch.no_grad()."),
])
gradient_errors.__doc__ = "Inside a check: the classic autograd slips become a CheckFailed with a hint."
