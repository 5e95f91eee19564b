"""utils.decoding: greedy decoding through the step interface, stopping at <eos> per row."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from utils.decoding import greedy_decode, map_state, strip_special

BOS, EOS, PAD, V = 1, 2, 0, 6


def _scripted_step(scripts: list[list[int]]):
    """A fake decoder: row b emits scripts[b][t] at step t (then <eos> forever)."""

    def step(tokens: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        t = tokens.shape[1] - 1
        assert state["step"] == t and (tokens[:, 0] == BOS).all()
        wanted = [s[t] if t < len(s) else EOS for s in scripts]
        logits = torch.full((len(scripts), V), -5.0)
        logits[torch.arange(len(scripts)), torch.tensor(wanted)] = 5.0
        return logits, {"step": t + 1}

    return step


def test_each_row_stops_at_its_own_eos_and_is_padded_after() -> None:
    step = _scripted_step([[3, 4, EOS], [5, EOS], [3, 3, 3, 3, EOS]])
    out = greedy_decode(step, {"step": 0}, batch_size=3, bos_id=BOS, eos_id=EOS, max_len=10, pad_id=PAD)
    assert out.tolist() == [[3, 4, EOS, PAD, PAD], [5, EOS, PAD, PAD, PAD], [3, 3, 3, 3, EOS]]


def test_decoding_stops_at_max_len_without_eos() -> None:
    step = _scripted_step([[3] * 20])
    out = greedy_decode(step, {"step": 0}, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=4)
    assert out.tolist() == [[3, 3, 3, 3]]


def test_greedy_picks_the_argmax_and_sees_its_own_tokens() -> None:
    seen = []

    def step(tokens, state):
        seen.append(tokens.clone())
        logits = torch.zeros(1, V)
        logits[0, (tokens[0, -1] + 1) % V] = 1.0  # next token = last + 1
        return logits, state

    out = greedy_decode(step, None, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=3)
    assert out.tolist() == [[2]]  # 1 + 1 = 2 = <eos>: stops after one step
    assert seen[0].tolist() == [[BOS]]


def test_wrong_logit_shape_is_explained() -> None:
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        greedy_decode(lambda t, s: (torch.zeros(1, 1, V), s), None, batch_size=1, bos_id=BOS,
                      eos_id=EOS, max_len=2)


def test_map_state_keeps_the_structure() -> None:
    Pair = namedtuple("Pair", "a b")
    state = {"h": torch.arange(3), "rest": (torch.arange(3) * 2, [Pair(torch.ones(3), None)])}
    order = torch.tensor([2, 0, 1])
    moved = map_state(state, lambda x: x.index_select(0, order))
    assert moved["h"].tolist() == [2, 0, 1] and moved["rest"][0].tolist() == [4, 0, 2]
    assert isinstance(moved["rest"][1][0], Pair) and moved["rest"][1][0].b is None


def test_strip_special_cuts_at_eos() -> None:
    ids = torch.tensor([[3, 4, EOS, PAD], [5, 3, 3, 3]])
    assert strip_special(ids, eos_id=EOS) == [[3, 4], [5, 3, 3, 3]]
    assert strip_special([[BOS, 3, EOS]], eos_id=EOS, skip=[BOS]) == [[3]]
