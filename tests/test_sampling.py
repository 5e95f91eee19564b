"""utils.sampling.top_p_filter and sample_next(top_p=): nucleus sampling (Holtzman et al. 2020)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.sampling import sample_next, top_p_filter


def _kept_and_probs(logits: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.isfinite(top_p_filter(logits, p)), torch.softmax(logits.double(), -1)


@settings(max_examples=300, deadline=None)
@given(logits=st.lists(st.sampled_from([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 4.0]) | st.floats(-8, 8),
                       min_size=1, max_size=12),
       p=st.floats(1e-6, 1.0, exclude_min=True))
def test_the_kept_set_is_the_smallest_whose_mass_reaches_p(logits: list[float], p: float) -> None:
    row = torch.tensor([logits])
    kept, probs = _kept_and_probs(row, p)
    assert probs[kept].sum() >= p - 1e-12  # it reaches p
    least = probs[kept].min()
    # Minimal: without the least likely kept tokens (all of them, ties included) the mass
    # falls below p, and every token as likely as a kept one is kept.
    assert probs[probs > least].sum() < p
    assert torch.equal(kept, probs >= least)


def test_many_random_rows_at_once_each_keep_their_own_nucleus() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 50, generator=generator) * 3
    batched = torch.isfinite(top_p_filter(logits, 0.9))
    one_by_one = torch.cat([torch.isfinite(top_p_filter(row[None], 0.9)) for row in logits])
    assert torch.equal(batched, one_by_one)
    assert len(set(batched.sum(-1).tolist())) > 1  # a confident row keeps fewer tokens


def test_p_of_one_keeps_every_token() -> None:
    logits = torch.randn(4, 30) * 10
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_a_tiny_p_keeps_only_the_most_likely_token() -> None:
    logits = torch.randn(8, 30)
    kept = torch.isfinite(top_p_filter(logits, 1e-9))
    assert torch.equal(kept, torch.nn.functional.one_hot(logits.argmax(-1), 30).bool())


def test_tied_tokens_at_the_edge_are_kept_together() -> None:
    logits = torch.tensor([[2.0, 1.0, 1.0, 0.0]])
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[True, True, True, False]]


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, True])
def test_p_outside_zero_to_one_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        top_p_filter(torch.randn(2, 5), p)


def test_sample_next_draws_only_from_the_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(500, -1)
    drawn = sample_next(logits, 1.0, generator=torch.Generator().manual_seed(0), top_p=0.75)
    assert set(drawn.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.75; the tail is never drawn
