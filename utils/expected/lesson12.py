"""What the visible checks of lesson 12 compare against, kept out of the cells.

Each `*_mistakes` function returns a dict from a hint's text (a classic mistake, named as the
student would recognise it) to the output that mistake gives on the check's inputs; the correct
values come from the exercises' references in `utils` (`train.accumulate_gradients`,
`checkpoint.resume_experiment`, `MultiHeadAttention`, `tensor_parallel.partial_outputs`).
`known_errors` turns the exceptions this lesson's classic slips raise (and that
`checks.diagnose_exception` does not know) into a hint.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from utils.checks import Slip, known_slips
from utils.distributed.tensor_parallel import head_slice, partial_outputs

# ---------------------------------------------------------------- accumulate_gradients


def _gradient(net: nn.Module, micro: Sequence[Any], loss_fn: Callable, scale: float,
              zero_each: bool = False) -> Tensor:
    model = copy.deepcopy(net)
    for batch in micro:
        if zero_each:
            model.zero_grad()
        (loss_fn(model, batch) * scale).backward()
    return model.weight.grad


def accumulation_mistakes(net: nn.Module, micro: Sequence[Any], loss_fn: Callable) -> dict[str, Tensor]:
    """The weight gradient of `net` (a Linear) accumulated over `micro` with a classic mistake."""
    k = len(micro)
    return {
        "the sum of the micro-batches' gradients: divide each loss by the number of micro-batches":
        _gradient(net, micro, loss_fn, 1.0),
        "the last micro-batch's alone: were gradients zeroed inside the loop? Zero them once per "
        "optimizer step, not per micro-batch": _gradient(net, micro, loss_fn, 1.0 / k, zero_each=True),
        "the last micro-batch's alone, not divided: were gradients zeroed inside the loop?":
        _gradient(net, micro, loss_fn, 1.0, zero_each=True),
    }


def accumulated_loss_mistakes(net: nn.Module, micro: Sequence[Any], loss_fn: Callable) -> dict[str, float]:
    """The returned loss with a classic mistake."""
    with torch.no_grad():
        losses = [loss_fn(net, batch).item() for batch in micro]
    k = len(losses)
    return {
        "the sum of the micro-batches' losses: return their mean (add up the losses divided by k)":
        sum(losses),
        "the last micro-batch's loss alone (divided by k): add up every micro-batch's loss":
        losses[-1] / k,
        "the last micro-batch's loss alone: add up every micro-batch's loss, divided by k":
        losses[-1],
    }


# ---------------------------------------------------------------- tensor_parallel_attention


def tensor_parallel_mistakes(mha: nn.Module, x: Tensor, world_size: int, rank: int,
                             is_causal: bool = True) -> dict[str, Tensor]:
    """Rank `rank`'s output of tensor-parallel self-attention with a classic mistake."""
    with torch.no_grad():
        full = mha(x, x, x, is_causal=is_causal, need_weights=False)[0]  # (B, T, D)
        bias = mha.out_proj.bias
        return {
            "the bias added on every rank before the all_reduce: add it once, after":
            full + (world_size - 1) * bias,
            "this rank's partial output: sum the ranks' partial outputs with dist.all_reduce":
            partial_outputs(mha, x, world_size, is_causal=is_causal)[rank] + bias,
            "the output projection's bias missing: add mha.out_proj.bias once, after the all_reduce":
            full - bias,
            "this rank's partial output, without the bias: sum the ranks' partial outputs with "
            "dist.all_reduce, then add out_proj's bias once":
            partial_outputs(mha, x, world_size, is_causal=is_causal)[rank],
            "no causal mask: pass is_causal to the attention":
            mha(x, x, x, is_causal=not is_causal, need_weights=False)[0],
        }


def rank_shard(mha: nn.Module, rank: int, world_size: int) -> nn.Module:
    """A copy of `mha` as rank `rank` may use it: the weights of the other ranks' heads are NaN (rows
    of q_proj, k_proj, v_proj and columns of out_proj), as if they lived on another device."""
    shard = copy.deepcopy(mha)
    mine = head_slice(mha.num_heads, mha.head_dim, rank, world_size)
    others = torch.ones(mha.num_heads * mha.head_dim, dtype=torch.bool)
    others[mine] = False
    with torch.no_grad():
        for p in (shard.q_proj, shard.k_proj, shard.v_proj):
            p.weight[others] = float("nan")
            if p.bias is not None:
                p.bias[others] = float("nan")
        shard.out_proj.weight[:, others] = float("nan")
    return shard


OTHER_RANKS_HEADS = ("it read weights that belong to other ranks' heads (NaN on this rank's copy): rank r "
                     "uses only its num_heads // world_size heads, the features r·H/N·Dh .. (r+1)·H/N·Dh - 1")


# ---------------------------------------------------------------- errors raised in the student's code

_LOAD = ('load_state_dict got a dict that is not the one it saved: the checkpoint is {"model": ..., '
         '"optimizer": ..., "step": ...}, so load state["model"] into the model and state["optimizer"] '
         "into the optimizer.")

# (exception type, pattern in its message, what probably went wrong); the first match wins
_KNOWN: tuple[Slip, ...] = (
    (AttributeError, r"has no attribute 'no_sync'",
     "a plain module has no no_sync() (only DDP has it): use contextlib.nullcontext() instead when "
     "hasattr(model, 'no_sync') is False."),
    (FileNotFoundError, r"->",
     "os.replace(source, destination) moves the first onto the second: write the temporary file, "
     "then os.replace(tmp, path)."),
    (FileNotFoundError, r"",
     "a file that is not there: after os.replace(tmp, path) the temporary file no longer exists, so "
     "remove it only if it still exists (after a failed save); and path does not exist before the first "
     "save."),
    (RuntimeError, r"Error\(s\) in loading state_dict", _LOAD),
    ((KeyError, ValueError), r"param_groups|parameter group|'state'", _LOAD),
)


known_errors = partial(known_slips, _KNOWN)
known_errors.__doc__ = "Inside a check: an exception from one of this lesson's classic slips becomes a hint."
