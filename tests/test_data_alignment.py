"""Gold alignments as (T, S) matrices, the layout of decoder attention weights."""

from __future__ import annotations

import pytest
import torch

from utils.data import alignment_agreement, alignment_matrix, parse_sentence


def test_alignment_matrix_has_one_row_per_target_token():
    s = parse_sentence("the red car is fast .")
    matrix = alignment_matrix(s.alignment, len(s.en_tokens), len(s.fr_tokens))
    assert matrix.shape == (6, 6) and matrix.dtype == torch.bool
    fr, en = s.fr_tokens, s.en_tokens
    assert en[int(matrix[fr.index("rouge")].nonzero())] == "red"
    assert en[int(matrix[fr.index("voiture")].nonzero())] == "car"


def test_negation_rows_point_at_not():
    s = parse_sentence("the man does not see a dog .")
    matrix = alignment_matrix(s.alignment, len(s.en_tokens), len(s.fr_tokens))
    not_column = s.en_tokens.index("not")
    assert [s.fr_tokens[t] for t in matrix[:, not_column].nonzero().flatten()] == ["ne", "pas"]


def test_alignment_agreement_scores_attention_against_the_gold():
    s = parse_sentence("the small red cars are fast .")
    gold = alignment_matrix(s.alignment, len(s.en_tokens), len(s.fr_tokens)).float()
    assert alignment_agreement(gold, s.alignment) == 1.0
    diagonal = torch.eye(len(s.fr_tokens), len(s.en_tokens))  # monotone: misses the swap
    assert alignment_agreement(diagonal, s.alignment) < 1.0


def test_out_of_range_pairs_hint_at_swapped_lengths():
    with pytest.raises(IndexError, match="swapped"):
        alignment_matrix([(3, 0)], src_len=2, tgt_len=5)
