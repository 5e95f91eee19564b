"""utils.models.positions, lesson 06: sinusoidal, learned and rotary positions."""

from __future__ import annotations

import math

import pytest
import torch

from utils.models.positions import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary_embedding,
    rotary_cos_sin,
    sinusoidal_positional_encoding,
)


@pytest.mark.parametrize("d_model", [8, 7])
def test_sinusoidal_values_follow_the_formula(d_model: int) -> None:
    pe = sinusoidal_positional_encoding(50, d_model, dtype=torch.float64)
    for pos in (0, 1, 13, 49):
        for i in range(d_model):
            angle = pos / 10000 ** (2 * (i // 2) / d_model)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert pe[pos, i].item() == pytest.approx(expected, abs=1e-12)


def test_sinusoidal_module_adds_the_table_from_the_offset() -> None:
    module = SinusoidalPositionalEncoding(d_model=6, max_len=20)
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(
        module(x, offset=3) - x, sinusoidal_positional_encoding(7, 6)[3:].expand(2, 4, 6)
    )


def test_sinusoidal_table_is_a_buffer_not_a_parameter() -> None:
    module = SinusoidalPositionalEncoding(d_model=6, max_len=20)
    assert list(module.parameters()) == [] and "pe" not in module.state_dict()


def test_learned_embedding_adds_one_trainable_vector_per_position() -> None:
    module = LearnedPositionalEmbedding(max_len=10, d_model=4)
    x = torch.zeros(2, 3, 4)
    out = module(x, offset=2)
    torch.testing.assert_close(out[0], module.embedding.weight[2:5])
    out.sum().backward()
    assert (
        module.embedding.weight.grad[2:5].ne(0).all()
        and module.embedding.weight.grad[5:].eq(0).all()
    )


@pytest.mark.parametrize(
    "module", [SinusoidalPositionalEncoding(4, max_len=8), LearnedPositionalEmbedding(8, 4)]
)
def test_positions_beyond_max_len_are_rejected(module) -> None:
    with pytest.raises(ValueError, match="do not fit in max_len=8"):
        module(torch.zeros(1, 6, 4), offset=3)


def rotate(x: torch.Tensor, position: int) -> torch.Tensor:
    """x (..., 1, Dh) rotated as a token at `position`."""
    cos, sin = rotary_cos_sin(1, x.shape[-1], offset=position, dtype=x.dtype)
    return apply_rotary_embedding(x, cos, sin)


def test_rope_preserves_norms() -> None:
    q, k = (
        torch.randn(2, 3, 10, 8, dtype=torch.float64),
        torch.randn(2, 3, 10, 8, dtype=torch.float64),
    )
    q_rot, k_rot = RotaryEmbedding(8)(q, k, offset=5)
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(k_rot.norm(dim=-1), k.norm(dim=-1))


def test_rope_scores_depend_only_on_the_relative_offset() -> None:
    q, k = torch.randn(1, 8, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)
    score = lambda m, n: (rotate(q, m) * rotate(k, n)).sum().item()  # noqa: E731
    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-9)
    assert score(3, 7) == pytest.approx(score(0, 4), abs=1e-9)
    assert score(7, 3) != pytest.approx(score(8, 3), abs=1e-6)  # but the offset does matter


def test_rope_is_a_complex_rotation_as_in_the_paper() -> None:
    x = torch.randn(5, 6, dtype=torch.float64)  # (T, Dh)
    theta = 10000 ** (-torch.arange(0, 6, 2, dtype=torch.float64) / 6)  # (Dh/2,)
    angles = torch.arange(5, dtype=torch.float64)[:, None] * theta  # (T, Dh/2)
    as_complex = torch.view_as_complex(x.reshape(5, 3, 2).contiguous())  # pairs as x + iy
    expected = torch.view_as_real(as_complex * torch.polar(torch.ones_like(angles), angles))
    cos, sin = rotary_cos_sin(5, 6, dtype=torch.float64)
    torch.testing.assert_close(apply_rotary_embedding(x, cos, sin), expected.reshape(5, 6))


def test_rope_leaves_position_zero_unchanged() -> None:
    x = torch.randn(1, 8)
    torch.testing.assert_close(rotate(x, 0), x)


def test_rope_rejects_an_odd_head_dim() -> None:
    with pytest.raises(ValueError, match="head_dim must be even"):
        RotaryEmbedding(7)


def test_rope_rejects_cos_sin_of_the_wrong_length() -> None:
    cos, sin = rotary_cos_sin(4, 8)
    with pytest.raises(ValueError, match=r"\(T, Dh/2\) = \(5, 4\)"):
        apply_rotary_embedding(torch.randn(2, 5, 8), cos, sin)
