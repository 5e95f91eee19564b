"""Turning a trained decoder into output tokens: greedy decoding (lessons 03, 04 and 08).

Every decoder in the course, recurrent or Transformer, exposes one *step function*:

    step(tokens, state) -> (logits, state)

- `tokens` (B, t): every token produced so far, `<bos>` first. A recurrent decoder reads only
  the last column; a Transformer decoder re-reads them all (or keeps a cache in `state`).
- `state`: whatever the decoder carries between steps (a hidden state, the encoder's outputs
  and their mask, a KV cache): a tensor, or a tuple / list / dict of tensors (or None), with
  the **batch on dim 0** of every tensor, so that a search can reorder or repeat the
  hypotheses with `map_state(state, lambda x: x.index_select(0, order))`.
- `logits` (B, V): unnormalised scores of the next token.

`greedy_decode` picks the most likely token at each step; a beam search with one beam gives
the same output (lesson 08 tests that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from utils.models.attention import KVCache

State = Any  # a tensor, a KVCache, or a (nested) tuple / list / dict of them, batch on dim 0, or None
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


def map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    """Apply `fn` to every tensor of a decoder state, keeping its structure."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a namedtuple
        return type(state)(*(map_state(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    if isinstance(state, KVCache):  # a Transformer's keys and values, batch on dim 0
        return state.map(fn)
    return state  # None, ints, flags: nothing per-sequence to transform


@torch.no_grad()
def greedy_decode(
    step: StepFn,
    state: State,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Most likely token at every step until each sequence emits `<eos>` or `max_len` tokens.

    Returns (B, T) token ids *without* the leading `<bos>`, T <= max_len: each row holds its
    tokens up to and including its first `<eos>`, then `pad_id`. Decoding stops as soon as
    every row has ended.
    """
    if max_len < 1 or batch_size < 1:
        raise ValueError(f"greedy_decode needs max_len >= 1 and batch_size >= 1, got {max_len=}, "
                         f"{batch_size=}")
    tokens = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)  # (B, 1)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)  # (B,)
    for _ in range(max_len):
        logits, state = step(tokens, state)  # (B, V)
        if logits.dim() != 2 or logits.shape[0] != batch_size:
            raise ValueError(f"step must return logits of shape (B, V) = ({batch_size}, V), got "
                             f"{tuple(logits.shape)}: return only the last position's logits")
        next_token = logits.argmax(-1)  # (B,)
        # A row that has already ended keeps emitting padding.
        next_token = next_token.masked_fill(finished, pad_id)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, t + 1)
        finished |= next_token == eos_id
        if finished.all():
            break
    return tokens[:, 1:]  # (B, T): drop <bos>


def strip_special(ids: Tensor | Sequence[Sequence[int]], eos_id: int,
                  skip: Sequence[int] = ()) -> list[list[int]]:
    """Token ids (B, T) -> one list per row, cut before the first `<eos>`, `skip` ids removed."""
    rows = ids.tolist() if isinstance(ids, Tensor) else [list(r) for r in ids]
    out = []
    for row in rows:
        if eos_id in row:
            row = row[: row.index(eos_id)]
        out.append([t for t in row if t not in skip])
    return out
