"""What the visible checks of lesson 10 compare against, kept out of the cells.

Each `*_mistakes` function returns a dict from a hint's text (a classic mistake, and what to do
instead) to the output that mistake gives on the check's inputs; `checks.check_close` names the
mistake when a student's output matches one. The right answers come from the lesson's references
in `utils` (`memory.score_matrix_bytes`, `attention.online_softmax_update`, `flash_attention`,
`attention.key_blocks`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.memory import score_matrix_bytes
from utils.models.attention import key_blocks

# ---------------------------------------------------------------- score_matrix_bytes


def score_matrix_bytes_mistakes(batch: int, heads: int, length: int,
                                dtype: torch.dtype = torch.float32) -> dict[str, int]:
    """Byte counts that classic slips give for one (batch, heads, length, length) tensor."""
    size = torch.empty((), dtype=dtype).element_size()
    right = score_matrix_bytes(batch, heads, length, dtype)
    return {
        f"a count of elements: multiply by the bytes per element ({size} for {dtype})": right // size,
        "bytes that grow like L: a score matrix is (L, L), one score per (query, key) pair":
            batch * heads * length * size,
        f"bits, not bytes: an element of {dtype} is {size} bytes": right * 8,
        f"4 bytes per element whatever the dtype: {dtype} takes {size}; ask the dtype "
        "(torch.empty((), dtype=dtype).element_size())": batch * heads * length * length * 4,
        "the batch is missing: every sequence has its own scores": heads * length * length * size,
        "the heads are missing: every head has its own scores": batch * length * length * size,
    }


# ---------------------------------------------------------------- online_softmax_update


def online_softmax_mistakes(m: Tensor, l: Tensor, acc: Tensor, scores: Tensor,
                            v_block: Tensor) -> dict[str, dict[str, Tensor]]:
    """For each output ("m_new", "l_new", "acc_new"): what classic mistakes of the update give."""
    m_new = torch.maximum(m, scores.amax(dim=-1))  # (..., Bq)
    p = torch.exp(scores - m_new[..., None])  # (..., Bq, Bk), relative to the new max
    upside_down = torch.exp(m_new - m)
    return {
        "m_new": {"m_new forgets the old maximum: take torch.maximum(m, the block's max)":
                  scores.amax(dim=-1)},
        "l_new": {"the old sum l is not rescaled: multiply it by exp(m_old - m_new)": l + p.sum(-1),
                  "alpha upside down: the old terms shrink by exp(m_old - m_new) <= 1":
                      upside_down * l + p.sum(-1)},
        "acc_new": {"acc is not rescaled: it was summed relative to the old max too, rescale it like l":
                    acc + p @ v_block,
                    "alpha upside down for acc: the old terms shrink by exp(m_old - m_new) <= 1":
                        upside_down[..., None] * acc + p @ v_block},
    }


def attention_over_blocks(scores: list[Tensor], values: list[Tensor]) -> Tensor:
    """softmax over all the keys of all blocks, times their values: (Bq, Bk_i) and (Bk_i, Dv) -> (Bq, Dv)."""
    return torch.softmax(torch.cat(scores, dim=-1), dim=-1) @ torch.cat(values, dim=-2)


# ---------------------------------------------------------------- blocked_attention


def blocked_attention_mistakes(q: Tensor, k: Tensor, v: Tensor, block_size: int,
                               is_causal: bool) -> dict[str, Tensor]:
    """Outputs (..., Lq, Dv) that classic mistakes of tiled attention give, by the mistake."""
    Lq, Lk = q.shape[-2], k.shape[-2]
    i, j = torch.arange(Lq)[:, None], torch.arange(Lk)[None, :]  # global positions (Lq, 1), (1, Lk)
    attend = F.scaled_dot_product_attention
    if not is_causal:
        return {"the scores are not divided by sqrt(D)": attend(q, k, v, scale=1.0),
                "causal attention, although is_causal=False": attend(q, k, v, is_causal=True)}
    return {
        "is_causal ignored: hide key j from query i when j > i": attend(q, k, v),
        "the mask hides the past instead of the future: hide key j from query i when j > i":
            attend(q, k, v, attn_mask=j >= i),
        "the tile's mask uses positions inside the tile (a tril per tile): build it from the GLOBAL "
        "positions of its rows (q_start + ...) and columns (k_start + ...)":
            attend(q, k, v, attn_mask=(j % block_size) <= (i % block_size)),
        "the rows' positions are local to the query block: build them from the GLOBAL positions, "
        "q_start + 0 .. Bq - 1": attend(q, k, v, attn_mask=j <= i % block_size),
        "the scores are not divided by sqrt(D)": attend(q, k, v, scale=1.0, is_causal=True),
    }


# ---------------------------------------------------------------- key_blocks


def _schedule(q_start: int, q_end: int, seq_len_k: int, block_size: int, is_causal: bool, *,
              stop: int | None = None, mask=None, clip: bool = True, last: bool = True
              ) -> list[tuple[int, int, bool]]:
    """A key-block schedule with one rule changed (the keyword arguments), for the hints."""
    if stop is None:
        stop = min(seq_len_k, q_end) if is_causal else seq_len_k
    if mask is None:
        mask = lambda k_start, k_end: is_causal and k_end - 1 > q_start  # noqa: E731
    starts = range(0, stop if last else stop // block_size * block_size, block_size)
    return [(s, min(s + block_size, seq_len_k) if clip else s + block_size,
             bool(mask(s, min(s + block_size, seq_len_k)))) for s in starts]


def key_blocks_feedback(got: object, q_start: int, q_end: int, seq_len_k: int, block_size: int,
                        is_causal: bool) -> str:
    """What to tell a student whose key_blocks(...) gave `got` instead of the course's schedule."""
    args = (q_start, q_end, seq_len_k, block_size, is_causal)
    call = f"key_blocks{args}"
    variants = {
        "blocks that start at or after q_end are hidden from every query: skip them":
            _schedule(*args, stop=seq_len_k),
        "the diagonal block (the one holding the queries' own keys) is partly visible: visit blocks up "
        "to q_end, not q_start": _schedule(*args, stop=min(seq_len_k, q_start)),
        "a block that lies entirely before the queries needs no mask: only blocks whose last key "
        "(k_end - 1) lies after q_start do": _schedule(*args, mask=lambda s, e: is_causal),
        "the diagonal block needs a mask: its last key (k_end - 1) lies after the first query q_start, "
        "even though it starts at q_start": _schedule(*args, mask=lambda s, e: is_causal and s > q_start),
        "without a causal mask no block needs a mask": _schedule(*args, mask=lambda s, e: e - 1 > q_start),
        "the last, shorter block is missing: seq_len_k need not be a multiple of block_size":
            _schedule(*args, last=False),
        "the last block ends past seq_len_k: clip k_end to seq_len_k": _schedule(*args, clip=False),
    }
    right = key_blocks(*args)
    for description, wrong in variants.items():
        if wrong != right and got == wrong:
            return f"{call} gave {got}: {description}"
    return f"{call}: expected {right}, got {got}"
