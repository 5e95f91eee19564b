"""What the visible checks of lesson 13 compare against, kept out of the cells.

Each `*_mistakes` function returns a dict from a hint (a classic mistake, and what to do instead)
to the output that mistake gives on the check's inputs. The right answers come from the lesson's
references in `utils` (`utils.data.bpe`, `utils.sampling.top_p_filter`, `utils.models.attention`);
`pair_counts` is the reference of `count_pairs`, written with `bpe`'s own pair counter.
`feedback` compares plain values (lists, dicts), whose classic mistakes often have another length.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.checks import known_slips
from utils.data import bpe
from utils.models import attention

Pair = tuple[int, int]


def _shown(got: Any, right: Any) -> str:
    """What a student reads about a wrong value: a short one whole; for two dicts, where they differ."""
    if isinstance(got, dict) and isinstance(right, dict):
        differ = sorted(k for k in got.keys() | right.keys() if got.get(k) != right.get(k))
        key = differ[0]
        return (f"differs from the course's count in {len(differ)} entries, for example "
                f"{key}: {got.get(key, 'missing')} instead of {right.get(key, 'no entry')}")
    return f"should be {right!r}, got {got!r}"


def feedback(call: str, got: Any, right: Any, mistakes: Mapping[str, Any]) -> str | None:
    """None if `got` equals `right`; else what a student reads: the call, how its value differs
    from the right one, and the mistake whose output it equals, if one does."""
    if got == right:
        return None
    hint = next((h for h, wrong in mistakes.items() if wrong != right and got == wrong), None)
    return f"{call} {_shown(got, right)}" + (f": it looks like {hint}" if hint else "")


# ---------------------------------------------------------------- count_pairs


def pair_counts(words: Mapping[tuple[int, ...], int]) -> dict[Pair, int]:
    """Adjacent pairs over words (tuples of ids) with their counts: pair -> total occurrences."""
    total: Counter[Pair] = Counter()
    for word, count in words.items():
        for pair, n in bpe.word_pairs(word).items():  # the tokenizer's own counter
            total[pair] += n * count
    return dict(total)


def count_pairs_mistakes(words: Mapping[tuple[int, ...], int]) -> dict[str, dict[Pair, int]]:
    """Pair counts that classic mistakes give on `words`, by the mistake."""
    once: Counter[Pair] = Counter()
    distinct: Counter[Pair] = Counter()
    short: Counter[Pair] = Counter()
    across: Counter[Pair] = Counter()
    stream = [i for word in words for i in word]  # the chunks glued together
    for word, count in words.items():
        pairs = list(zip(word, word[1:], strict=False))
        once.update(pairs)
        for pair in set(pairs):
            distinct[pair] += count
        for pair in pairs[:-1]:
            short[pair] += count
    across.update(zip(stream, stream[1:], strict=False))
    return {
        "each chunk counted once: a chunk's pairs occur as often as the chunk does, so add its count":
            dict(once),
        "a pair that occurs twice in one chunk (like (a, n) in ' banana') counted once: count every "
        "position, not the set of a chunk's pairs": dict(distinct),
        "the last pair of each chunk is missing: a chunk of n ids has n - 1 pairs, zip(word, word[1:])":
            {p: n for p, n in short.items() if n},
        "pairs across chunks: BPE never merges across a chunk boundary, so count pairs within each chunk":
            dict(across),
        "the pairs are stored the wrong way round, (b, a): keep each pair in reading order (a, b)":
            {(b, a): n for (a, b), n in pair_counts(words).items()},
    }


# ---------------------------------------------------------------- merge


def merge_mistakes(ids: Sequence[int], pair: Pair, new_id: int) -> dict[str, list[int]]:
    """Outputs of classic slips in `merge`, by the slip."""
    ids = list(ids)

    def scan(step_after_merge: int, keep_last: bool = True, first_only: bool = False) -> list[int]:
        out, i, merged = [], 0, False
        stop = len(ids) if keep_last else len(ids) - 1
        while i < stop:
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair and not (first_only and merged):
                out.append(new_id)
                i += step_after_merge
                merged = True
            else:
                out.append(ids[i])
                i += 1
        return out

    right_to_left = bpe.merge(ids[::-1], (pair[1], pair[0]), new_id)[::-1]
    return {
        "after a merge the scan moved on by one position, so the second id of the pair was read "
        "again: skip both ids (i += 2)": scan(1),
        "the last id is lost when it is not part of a merge: keep scanning to the end of the list":
            scan(2, keep_last=False),
        "only the first occurrence was merged: replace every occurrence, left to right":
            scan(2, first_only=True),
        "the pairs were merged from the right: scan left to right, so that in [a, a, a] the first "
        "two ids merge": right_to_left,
    }


# ---------------------------------------------------------------- top_p_filter


def _keep_sorted(probs: Tensor, p: float, descending: bool = True, inclusive: bool = False) -> Tensor:
    """Which tokens a nucleus rule keeps (bool, like probs), ranking tokens by probability."""
    ranked, order = probs.sort(dim=-1, descending=descending)
    cumulative = ranked.cumsum(dim=-1)
    keep_ranked = cumulative <= p if inclusive else cumulative - ranked < p
    return torch.zeros_like(keep_ranked).scatter(-1, order, keep_ranked)


def top_p_mistakes(logits: Tensor, p: float) -> dict[str, Tensor]:
    """Kept-token masks (float, 1 = kept) that classic top-p slips give on logits (N, V)."""
    probs = torch.softmax(logits, dim=-1)  # (N, V)
    ranked, order = probs.sort(dim=-1, descending=True)
    before = ranked.cumsum(dim=-1) - ranked < p  # (N, V), in rank order
    return {
        "the token that makes the mass reach p was dropped: keep every token while the mass of the "
        "tokens ranked above it is still below p (one too few)":
            _keep_sorted(probs, p, inclusive=True).float(),
        "the least likely tokens were kept: sort the probabilities in descending order":
            _keep_sorted(probs, p, descending=False).float(),
        "the mask was computed in sorted order but applied in vocabulary order: scatter it back "
        "to the tokens' positions with the sort's indices": before.float(),
        "the cumulative sum ran over logits, not probabilities: apply the softmax first":
            _keep_sorted(logits, p).float(),
        "the softmax ran over the rows (dim 0), not over the vocabulary (dim -1)":
            _keep_sorted(torch.softmax(logits, dim=0), p).float(),
        "every token was kept: the filter must hide (set to -inf) the logits outside the nucleus":
            torch.ones_like(probs),
    }


# ---------------------------------------------------------------- grouped_query_attention


def grouped_query_reference(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = True) -> Tensor:
    """Grouped-query attention as the course's `MultiHeadAttention(num_kv_heads=...)` computes it:
    q (B, H, T, Dh), k, v (B, Hkv, T, Dh) -> (B, H, T, Dh), query head h reading K/V head
    h // (H / Hkv) (`attention.repeat_kv`), then `attention.attend_heads`."""
    k, v = attention.repeat_kv(k, q.shape[1]), attention.repeat_kv(v, q.shape[1])  # (B, H, T, Dh)
    return attention.attend_heads(q, k, v, is_causal=is_causal)[0]


def grouped_query_mistakes(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = True) -> dict[str, Tensor]:
    """Outputs (B, H, T, Dh) of classic slips in grouped-query attention, by the slip."""
    group = q.shape[1] // k.shape[1]
    tiled_k, tiled_v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)  # head h reads h % Hkv
    near_k, near_v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # h // group
    mistakes = {
        "the K/V heads were tiled (repeat), so query head h reads K/V head h % num_kv_heads; each K/V "
        "head serves a group of consecutive query heads (h // group): repeat_interleave":
            F.scaled_dot_product_attention(q, tiled_k, tiled_v, is_causal=is_causal),
        "the attention is not causal: a token must not see the tokens after it (is_causal)":
            F.scaled_dot_product_attention(q, near_k, near_v, is_causal=not is_causal),
        "only the first K/V head is used: every group has its own K/V head":
            F.scaled_dot_product_attention(q, k[:, :1].expand_as(near_k), v[:, :1].expand_as(near_v),
                                           is_causal=is_causal),
    }
    scores = q @ near_k.transpose(-2, -1)  # (B, H, T, T), not divided by sqrt(Dh)
    causal = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril()
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")) if is_causal else scores, dim=-1)
    mistakes["the scores were not scaled by 1/sqrt(head_dim)"] = weights @ near_v
    return mistakes


head_errors = partial(known_slips, [
    (ValueError, r"leading \(batch, head\) dims of q, k, v",
     "q, k and v reach the attention with different numbers of heads: repeat both k and v "
     "(repeat_interleave along dim 1), so that each has as many heads as q"),
])
head_errors.__doc__ = "Inside a check: K/V heads that were not repeated become a CheckFailed with a hint."


# ---------------------------------------------------------------- sliding_window_mask


def _window(seq_len: int, keep: Any) -> Tensor:
    i = torch.arange(seq_len)[:, None]  # (T, 1) queries
    j = torch.arange(seq_len)[None, :]  # (1, T) keys
    return keep(i, j)


def sliding_window_mistakes(seq_len: int, window: int) -> dict[str, Tensor]:
    """Masks (float, 1 = may attend) that classic slips give, by the slip."""
    W = window
    masks = {
        "each query sees one key too many (window + 1 keys): keep keys with i - window < j <= i":
            _window(seq_len, lambda i, j: (j <= i) & (i - j <= W)),
        "each query sees one key too few: the window counts the query's own position, i - window < j <= i":
            _window(seq_len, lambda i, j: (j <= i) & (i - j < W - 1)),
        "the mask is not causal: a token sees every later one; keep j <= i as well":
            _window(seq_len, lambda i, j: j > i - W),
        "the mask is not causal: a token may see the next ones within the window; keep j <= i":
            _window(seq_len, lambda i, j: (i - j).abs() < W),
        "the window is ignored: that is the plain causal mask": _window(seq_len, lambda i, j: j <= i),
        "the mask is inverted: True means 'may attend' (as in F.scaled_dot_product_attention)":
            _window(seq_len, lambda i, j: ~((j <= i) & (i - j < W))),
        "the window looks ahead: key j may be seen from query i when i <= j < i + window":
            _window(seq_len, lambda i, j: (j >= i) & (j - i < W)),
    }
    return {hint: mask.float() for hint, mask in masks.items()}
