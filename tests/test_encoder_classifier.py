"""utils.models.encoder_classifier: the sentiment Transformer of lesson 07."""

from __future__ import annotations

import pytest
import torch

from utils.models.attention import MultiHeadAttention
from utils.models.encoder_classifier import EncoderClassifier, EncoderClassifierConfig, masked_mean


def _model(seed: int = 0, **overrides) -> EncoderClassifier:
    torch.manual_seed(seed)
    config = EncoderClassifierConfig(vocab_size=30, num_classes=3, d_model=16, num_heads=4,
                                     num_layers=2, d_ff=32, max_len=20, **overrides)
    return EncoderClassifier(config).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([7, 4, 1])
    token_mask = torch.arange(7)[None, :] < lengths[:, None]  # (B, T)
    ids = torch.randint(1, 30, (3, 7)).masked_fill(~token_mask, 0)  # pad id 0
    return ids, token_mask


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_logits_have_one_row_per_sequence_and_one_column_per_class(pooling: str) -> None:
    ids, token_mask = _batch()
    assert _model(pooling=pooling)(ids, token_mask).shape == (3, 3)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rotary"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
def test_extra_padding_never_changes_the_logits(pooling: str, norm_first: bool, positions: str) -> None:
    model = _model(pooling=pooling, norm_first=norm_first, positions=positions)
    ids, token_mask = _batch()
    extra = 5  # more pad positions, holding random junk ids: masked, so they must not matter
    junk = torch.randint(1, 30, (3, extra))
    longer_ids = torch.cat([ids, junk], dim=1)
    longer_mask = torch.cat([token_mask, torch.zeros(3, extra, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(longer_ids, longer_mask), model(ids, token_mask), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("positions", ["sinusoidal", "rotary"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_sequence_alone_gets_the_logits_it_gets_in_a_padded_batch(pooling: str, positions: str) -> None:
    model = _model(pooling=pooling, positions=positions)
    ids, token_mask = _batch()
    alone = model(ids[1:2, :4], token_mask[1:2, :4])  # the length-4 sequence without padding
    torch.testing.assert_close(model(ids, token_mask)[1:2], alone, atol=1e-5, rtol=1e-4)


def test_the_same_seed_builds_the_same_model() -> None:
    ids, token_mask = _batch()
    torch.testing.assert_close(_model(seed=3)(ids, token_mask), _model(seed=3)(ids, token_mask),
                               atol=0, rtol=0)
    assert not torch.allclose(_model(seed=3)(ids, token_mask), _model(seed=4)(ids, token_mask))


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_word_order_changes_the_logits(positions: str) -> None:
    model = _model(positions=positions)
    ids = torch.randint(1, 30, (1, 7))
    assert not torch.allclose(model(ids), model(ids.flip(1)), atol=1e-4)


def test_rotary_attention_is_not_permutation_equivariant() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, rotary=True).eval()
    x, perm = torch.randn(1, 6, 8), torch.tensor([5, 2, 0, 1, 4, 3])
    shuffled = x[:, perm]
    assert not torch.allclose(attn(shuffled, shuffled, shuffled)[0], attn(x, x, x)[0][:, perm], atol=1e-4)


def test_rotary_attention_has_the_parameters_of_plain_attention() -> None:
    rotary, plain = _model(positions="rotary"), _model(positions="sinusoidal")
    assert rotary.blocks[0].self_attn.rotary is not None and plain.blocks[0].self_attn.rotary is None
    assert {n: p.shape for n, p in rotary.blocks.named_parameters()} == {
        n: p.shape for n, p in plain.blocks.named_parameters()}


def test_rotary_scores_depend_only_on_the_offset_between_positions() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, rotary=True).eval()
    x = torch.randn(1, 1, 8).expand(1, 6, 8)  # the same token at every position
    weights = attn(x, x, x)[1]  # (1, H, 6, 6)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    # With a causal mask, query i sees keys 0..i; the same token everywhere makes its
    # weights a function of the offsets i - j only, so the last query's row, read from its
    # right end, starts with every shorter row.
    w = attn(x, x, x, mask=causal)[1][0, 0]  # (6, 6)
    assert weights.shape == (1, 2, 6, 6)
    scores = torch.log(w[5, :6])  # offsets 5..0 (up to a constant)
    shorter = torch.log(w[3, :4])  # offsets 3..0
    torch.testing.assert_close(scores[2:] - scores[-1], shorter - shorter[-1], atol=1e-5, rtol=1e-4)


def test_masked_mean_ignores_padding() -> None:
    h = torch.arange(12.0).reshape(1, 4, 3)  # (B, T, D)
    mask = torch.tensor([[True, True, False, False]])
    torch.testing.assert_close(masked_mean(h, mask), h[:, :2].mean(1))


def test_masked_mean_of_an_empty_sequence_is_zero_not_nan() -> None:
    out = masked_mean(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(out, torch.zeros(2, 4))


def test_attention_maps_give_one_row_stochastic_map_per_layer() -> None:
    model = _model()
    ids, token_mask = _batch()
    maps = model.attention_maps(ids, token_mask)
    assert len(maps) == 2 and all(m.shape == (3, 4, 7, 7) for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 4, 7))
    assert (maps[0][2, :, :, 1:] == 0).all(), "padded keys receive no attention"


def test_attention_maps_leave_the_model_unchanged() -> None:
    model = _model()
    ids, token_mask = _batch()
    before = model(ids, token_mask)
    model.attention_maps(ids, token_mask)
    torch.testing.assert_close(model(ids, token_mask), before)
    assert not any(block.self_attn._forward_hooks for block in model.blocks)


def test_gradients_reach_every_parameter() -> None:
    model = _model(pooling="cls").train()
    ids, token_mask = _batch()
    model(ids, token_mask).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_a_wrong_mask_shape_names_both_shapes() -> None:
    ids, token_mask = _batch()
    with pytest.raises(ValueError, match=r"\(3, 6\).*\(3, 7\)"):
        _model()(ids, token_mask[:, :6])


def test_an_unknown_pooling_or_position_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="pooling"):
        EncoderClassifierConfig(vocab_size=10, pooling="max")
    with pytest.raises(ValueError, match="rotary"):
        EncoderClassifierConfig(vocab_size=10, positions="alibi")


def test_rotary_attention_fast_path_equals_the_explicit_path() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, rotary=True).eval()
    x = torch.randn(2, 5, 8)
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 2])[:, None])[:, None, None, :]  # (B, 1, 1, T)
    fast, none = attn(x, x, x, mask=mask, need_weights=False)
    explicit, weights = attn(x, x, x, mask=mask, need_weights=True)
    assert none is None and weights.shape == (2, 2, 5, 5)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-4)


def test_rotary_attention_gives_a_query_without_keys_no_nan() -> None:
    attn = MultiHeadAttention(8, 2, rotary=True).eval()
    x = torch.randn(1, 3, 8)
    nothing = torch.zeros(1, 1, 1, 3, dtype=torch.bool)
    assert torch.isfinite(attn(x, x, x, mask=nothing, need_weights=False)[0]).all()
