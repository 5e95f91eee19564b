"""utils.models.seq2seq: encoder, Bahdanau and Luong attention, the two encoder-decoders."""

from __future__ import annotations

import pytest
import torch

from utils.decoding import greedy_decode
from utils.models.seq2seq import (
    AdditiveAttention,
    AttentionSeq2Seq,
    DotProductAttention,
    Encoder,
    Seq2Seq,
    Seq2SeqConfig,
    build_seq2seq,
    masked_softmax,
)

V_SRC, V_TGT, BOS, EOS = 17, 13, 1, 2


def _batch(lengths=(6, 3, 5), extra=2, seed=0, vocab=V_SRC):
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths) + extra
    tokens = torch.randint(3, vocab, (len(lengths), longest), generator=generator)
    mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]
    return tokens.masked_fill(~mask, 0), mask


def _config(attention: str) -> Seq2SeqConfig:
    return Seq2SeqConfig(V_SRC, V_TGT, embed_dim=8, hidden_size=12, attention=attention, attention_dim=10)


def test_encoder_shapes_and_padding_invariance() -> None:
    torch.manual_seed(0)
    encoder = Encoder(V_SRC, 8, 12).eval()
    src, mask = _batch()
    annotations, summary = encoder(src, mask)
    assert annotations.shape == (3, 8, 24) and summary.shape == (3, 24)
    for row, n in enumerate([6, 3, 5]):
        alone_a, alone_s = encoder(src[row : row + 1, :n], mask[row : row + 1, :n])
        torch.testing.assert_close(annotations[row : row + 1, :n], alone_a)
        torch.testing.assert_close(summary[row : row + 1], alone_s)
        assert (annotations[row, n:] == 0).all()


def test_masked_softmax_gives_padding_zero_weight() -> None:
    weights = masked_softmax(torch.randn(2, 3, 4), torch.tensor([[True, True, False, False]] * 2))
    assert (weights[..., 2:] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("cls", [AdditiveAttention, DotProductAttention])
def test_attention_shapes_and_weights(cls) -> None:
    torch.manual_seed(0)
    attention = cls(6, 10, 5) if cls is AdditiveAttention else cls(6, 10)
    query, keys = torch.randn(2, 4, 6), torch.randn(2, 7, 10)  # (B, T, Dq), (B, S, Dk)
    mask = torch.arange(7)[None, :] < torch.tensor([7, 3])[:, None]
    context, weights = attention(query, keys, keys, mask)
    assert context.shape == (2, 4, 10) and weights.shape == (2, 4, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))
    assert (weights[1, :, 3:] == 0).all()
    torch.testing.assert_close(context, weights @ keys)


def test_additive_score_is_v_tanh_of_the_projected_sum() -> None:
    torch.manual_seed(0)
    attention = AdditiveAttention(3, 4, 5)
    q, k = torch.randn(1, 1, 3), torch.randn(1, 2, 4)
    query = attention.query_proj(q[0, 0])
    by_hand = torch.stack([attention.v(torch.tanh(query + attention.key_proj(k[0, j]))) for j in range(2)])
    by_hand = by_hand.flatten()
    torch.testing.assert_close(attention.scores(q, k)[0, 0], by_hand)


def test_dot_score_is_the_query_times_the_projected_key() -> None:
    attention = DotProductAttention(3, 4)
    q, k = torch.randn(1, 2, 3), torch.randn(1, 5, 4)
    torch.testing.assert_close(attention.scores(q, k), q @ (k @ attention.key_proj.weight.T).transpose(1, 2))


@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_teacher_forcing_shape_and_padding_invariance(attention) -> None:
    torch.manual_seed(0)
    model = build_seq2seq(_config(attention)).eval()
    src, mask = _batch()
    tgt_in = torch.randint(3, V_TGT, (3, 4))
    logits = model(src, mask, tgt_in)
    assert logits.shape == (3, 4, V_TGT)
    for row, n in enumerate([6, 3, 5]):
        alone = model(src[row : row + 1, :n], mask[row : row + 1, :n], tgt_in[row : row + 1])
        torch.testing.assert_close(logits[row : row + 1], alone)


@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_step_by_step_decoding_equals_teacher_forcing(attention) -> None:
    torch.manual_seed(0)
    model = build_seq2seq(_config(attention)).eval()
    src, mask = _batch()
    tgt_in = torch.randint(3, V_TGT, (3, 5))
    expected = model(src, mask, tgt_in)  # (B, T, V)
    state = model.start(src, mask)
    for t in range(5):
        logits, state = model.step(tgt_in[:, : t + 1], state)
        torch.testing.assert_close(logits, expected[:, t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attention", ["none", "dot"])
def test_translate_is_greedy_decoding_of_the_step_function(attention) -> None:
    torch.manual_seed(0)
    model = build_seq2seq(_config(attention)).eval()
    src, mask = _batch()
    out = model.translate(src, mask, bos_id=BOS, eos_id=EOS, max_len=7)
    again = greedy_decode(model.step, model.start(src, mask), batch_size=3, bos_id=BOS, eos_id=EOS, max_len=7)
    assert torch.equal(out, again) and out.shape[0] == 3 and out.shape[1] <= 7


def test_attention_weights_come_with_the_logits() -> None:
    model = AttentionSeq2Seq(_config("additive"))
    src, mask = _batch()
    _, weights = model.forward_with_weights(src, mask, torch.randint(3, V_TGT, (3, 4)))
    assert weights.shape == (3, 4, 8)
    assert (weights[1, :, 3:] == 0).all()


def test_models_are_deterministic_under_a_seed() -> None:
    src, mask = _batch()
    tgt_in = torch.randint(3, V_TGT, (3, 4))
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        outs.append(AttentionSeq2Seq(_config("dot"))(src, mask, tgt_in))
    assert torch.equal(*outs)


def test_wrong_attention_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="additive"):
        AttentionSeq2Seq(_config("none"))
    with pytest.raises(ValueError, match="'additive' or 'dot'"):
        build_seq2seq(_config("bahdanau"))
    assert isinstance(build_seq2seq(_config("none")), Seq2Seq)
