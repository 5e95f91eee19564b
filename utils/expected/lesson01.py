"""What the visible checks of lesson 01 compare against, kept out of the cells.

The right answers come from the course's references (`utils.data.pad`, `nn.RNN`,
`utils.models.rnn`); this module holds the classic *wrong* ones. Each function returns a dict
from a hint (the mistake, in the words a student reads) to the output that mistake gives on the
check's inputs, for `checks.check_close(..., mistakes=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from utils.checks import known_slips
from utils.data import pad
from utils.models.rnn import lengths_from_mask


def encode_mask_mistakes(texts: list[str], vocab) -> dict[str, Tensor]:
    """Masks (B, T) of the classic mistakes in "True at the real tokens" for `texts`."""
    ids, mask = pad([vocab.encode(t) for t in texts])  # (B, T), (B, T)
    one_more = torch.cat([mask[:, :1], mask[:, :-1]], dim=1) | mask  # (B, T): True one step further
    return {
        "an inverted mask: True must mark real tokens, not padding": ~mask,
        "an off-by-one (`<=` instead of `<`): a text of n tokens fills positions 0 .. n - 1": one_more,
    }


def encode_id_mistakes(texts: list[str], vocab) -> dict[str, Tensor]:
    """Ids (B, T) of the classic mistakes in padding the encoded `texts` at the end."""
    ids, mask = pad([vocab.encode(t) for t in texts])  # (B, T), (B, T)
    padded_first = torch.stack([torch.cat([row[~m], row[m]])  # the padding moved to the front
                                for row, m in zip(ids, mask, strict=True)])  # (B, T)
    return {"padding at the start of each row: pad at the end, after the real tokens": padded_first}


def rnn_cell_mistakes(x: Tensor, h: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor,
                      bias_hh: Tensor) -> dict[str, Tensor]:
    """Next states (B, H) of the classic mistakes in tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""
    from_x, from_h = x @ weight_ih.T, h @ weight_hh.T  # (B, H) each
    pre = from_x + bias_ih + from_h + bias_hh  # (B, H): the pre-activation
    return {
        "the previous state h was left out: the recurrence h W_hhᵀ is what makes it an RNN":
            torch.tanh(from_x + bias_ih + bias_hh),
        "the biases were left out": torch.tanh(from_x + from_h),
        "the bias b_hh was left out: the cell has two biases, b_ih and b_hh": torch.tanh(pre - bias_hh),
        "the bias b_ih was left out: the cell has two biases, b_ih and b_hh": torch.tanh(pre - bias_ih),
        "a sigmoid instead of tanh": torch.sigmoid(pre),
        "the tanh is missing": pre,
        "weight_hh was not transposed (h @ weight_hh): PyTorch stores a weight as (out, in), so "
        "multiply by weight_hh.T": torch.tanh(from_x + bias_ih + h @ weight_hh + bias_hh),
    }


def rnn_output_mistakes(x: Tensor, h0: Tensor, cell: Callable[[Tensor, Tensor], Tensor],
                        outputs: Tensor) -> dict[str, Tensor]:
    """Outputs (B, T, H) of the classic mistakes in the loop over time; `outputs` are the right ones."""
    from_h0 = torch.stack([cell(x[:, t], h0) for t in range(x.shape[1])], dim=1)  # (B, T, H)
    return {
        "every step started from h0: pass each step the state the previous step returned": from_h0,
        "the outputs are in reverse order: append each step's state, first step first": outputs.flip(1),
    }


def rnn_last_state_mistakes(h0: Tensor, outputs: Tensor) -> dict[str, Tensor]:
    """Last states (B, H) of the classic mistakes, given h0 (B, H) and the right outputs (B, T, H)."""
    return {
        "the state after the first step instead of the last": outputs[:, 0],
        "the initial state h0 instead of the last one: return the h the loop ends with": h0,
    }


def last_real_mistakes(outputs: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """States (B, H) of the classic mistakes in reading each row at its last real token.

    Every row of `mask` must end in padding, so that an index one too far still exists; and
    B == T, so that lengths counted over the wrong dim still index.
    """
    lengths = lengths_from_mask(mask)  # (B,)
    rows = torch.arange(outputs.shape[0])  # (B,)
    per_position = mask.sum(0)  # (T,): what summing over dim 0 counts
    return {
        "outputs[:, -1]: the last column is padding for the shorter rows": outputs[:, -1],
        "an off-by-one: a row of n real tokens ends at index n - 1": outputs[rows, lengths],
        "the state at the first token": outputs[:, 0],
        "the lengths were counted over dim 0 (real tokens per position): count each row's real "
        "tokens with mask.sum(dim=1)": outputs[rows, per_position - 1],
    }



# ---------------------------------------------------------------- exceptions

# The checks use B = 3, E = 5, H = 7, T = 6: sizes that differ, so that these slips raise.
cell_errors = partial(known_slips, [
    (RuntimeError, r"must match the size of tensor b",
     "`*` where a matrix product `@` was meant: `*` multiplies element by element (and broadcasts), "
     "so h (B, H) * weight_hh.T (H, H) fails unless B == H. The cell needs x @ weight_ih.T, "
     "(B, E) @ (E, H), and h @ weight_hh.T, (B, H) @ (H, H): both (B, H)."),
])
cell_errors.__doc__ = "Inside rnn_cell's check: a broadcast error becomes a CheckFailed with a hint."

step_errors = partial(known_slips, [
    (RuntimeError, r"must match the size of tensor b",
     "the cell got the wrong slice of x: x is (B, T, E), batch first, so step t is x[:, t], "
     "(B, E); x[t] is the t-th sequence of the batch, (T, E), which cannot meet the state (B, H)."),
])
step_errors.__doc__ = "Inside rnn_forward's check: a broadcast error inside the cell becomes a hint."
