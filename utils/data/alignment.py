"""Word alignments as matrices, to lay the true alignment over an attention heat map.

An alignment is a list of `(source_index, target_index)` token pairs (`Pair.alignment`,
`Sentence.alignment`). Attention weights of a decoder are `(T, S)`: one row per target
position, one column per source position, so the matrix here has the same layout.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def alignment_matrix(alignment: Iterable[tuple[int, int]], src_len: int,
                     tgt_len: int) -> torch.Tensor:
    """(T, S) bool matrix, True where target token t is aligned to source token s."""
    matrix = torch.zeros(tgt_len, src_len, dtype=torch.bool)  # (T, S)
    for s, t in alignment:
        if not (0 <= s < src_len and 0 <= t < tgt_len):
            raise IndexError(f"alignment pair ({s}, {t}) lies outside a {tgt_len}x{src_len} "
                             "(T, S) matrix: are src_len and tgt_len swapped?")
        matrix[t, s] = True
    return matrix


def alignment_agreement(weights: torch.Tensor, alignment: Iterable[tuple[int, int]]) -> float:
    """Share of target rows of (T, S) `weights` whose argmax is an aligned source token."""
    T, S = weights.shape
    gold = alignment_matrix(alignment, S, T)  # (T, S)
    rows = gold.any(dim=1)  # (T,) rows that have an alignment at all
    if not rows.any():
        return float("nan")
    hits = gold[torch.arange(T), weights.argmax(dim=1)]  # (T,)
    return float(hits[rows].float().mean())
