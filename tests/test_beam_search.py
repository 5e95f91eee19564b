"""utils.beam_search: beam search with length normalisation over utils.decoding's step interface."""

from __future__ import annotations

import pytest
import torch

from utils.beam_search import beam_search
from utils.decoding import greedy_decode
from utils.models.seq2seq import Seq2SeqConfig, build_seq2seq
from utils.models.translation_transformer import Transformer, TransformerConfig

PAD, BOS, EOS = 0, 1, 2


def _transformer() -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(19, 17, d_model=32, num_heads=4, d_ff=48, dropout=0.0)).eval()


def _decode(fn, model, src: torch.Tensor, **kwargs) -> torch.Tensor:
    state = model.start(src, src != PAD)
    return fn(model.step, state, batch_size=src.shape[0], bos_id=BOS, eos_id=EOS, max_len=12, **kwargs)


def _table_step(table: dict[tuple[int, ...], dict[int, float]], vocab: int = 6):
    """A step function that reads next-token probabilities from a table keyed by the prefix."""

    def step(tokens: torch.Tensor, state):
        logits = torch.full((tokens.shape[0], vocab), -30.0)
        for row, prefix in enumerate(tokens.tolist()):
            for token, p in table.get(tuple(prefix[1:]), {EOS: 1.0}).items():
                logits[row, token] = torch.tensor(p).log()
        return logits, state

    return step


def test_beam_of_one_equals_greedy_for_the_transformer() -> None:
    model = _transformer()
    src = torch.randint(3, 19, (6, 7))
    src[2, 4:] = PAD
    assert torch.equal(_decode(beam_search, model, src, beam_size=1), _decode(greedy_decode, model, src))


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_beam_of_one_equals_greedy_for_the_recurrent_models(attention: str) -> None:
    torch.manual_seed(0)
    model = build_seq2seq(Seq2SeqConfig(19, 17, embed_dim=16, hidden_size=24, attention=attention)).eval()
    src = torch.randint(3, 19, (5, 6))
    src[1, 3:] = PAD
    assert torch.equal(_decode(beam_search, model, src, beam_size=1), _decode(greedy_decode, model, src))


def test_beam_finds_the_sequence_greedy_misses() -> None:
    # Greedy takes 3 (p 0.6) and then can only end badly; 4 (p 0.4) leads to a sure ending.
    table = {(): {3: 0.6, 4: 0.4}, (3,): {5: 0.4, 4: 0.3, EOS: 0.3}, (4,): {EOS: 1.0}}
    step = _table_step(table)
    kwargs = dict(batch_size=1, bos_id=BOS, eos_id=EOS, max_len=5)
    assert greedy_decode(step, None, **kwargs).tolist() == [[3, 5, EOS]]
    best, score = beam_search(step, None, beam_size=2, alpha=0.0, return_scores=True, **kwargs)
    assert best.tolist() == [[4, EOS]]
    assert score.item() == pytest.approx(torch.tensor(0.4).log().item(), abs=1e-4)


def test_length_normalisation_prefers_the_longer_of_two_close_hypotheses() -> None:
    # Ending at once: log 0.5 = -0.69 over 1 token. Going on: log(0.45 * 0.9) = -0.90 over 3.
    table = {(): {EOS: 0.5, 3: 0.45}, (3,): {4: 0.9}, (3, 4): {EOS: 1.0}}
    step = _table_step(table)
    kwargs = dict(batch_size=1, bos_id=BOS, eos_id=EOS, max_len=6, beam_size=2)
    assert beam_search(step, None, alpha=0.0, **kwargs).tolist() == [[EOS]]
    assert beam_search(step, None, alpha=1.0, **kwargs).tolist() == [[3, 4, EOS]]


def test_output_ends_at_eos_then_padding_and_score_is_the_models() -> None:
    model = _transformer()
    src = torch.randint(3, 19, (4, 6))
    out, scores = _decode(beam_search, model, src, beam_size=3, alpha=0.0, return_scores=True)
    for row in out.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1:])
        assert PAD not in row[: row.index(EOS) if EOS in row else len(row)]
    # The score is the model's own log-probability of the chosen sentence.
    tgt = torch.cat([torch.full((4, 1), BOS), out], dim=1)  # (B, 1 + T)
    with torch.no_grad():
        log_probs = torch.log_softmax(model(src, None, tgt[:, :-1]), -1)  # (B, T, V)
    token_lp = log_probs.gather(-1, tgt[:, 1:, None]).squeeze(-1) * (tgt[:, 1:] != PAD)
    torch.testing.assert_close(token_lp.sum(1), scores, atol=1e-4, rtol=1e-4)


def test_a_wider_beam_never_finds_a_less_likely_sentence() -> None:
    model = _transformer()
    src = torch.randint(3, 19, (8, 6))
    _, narrow = _decode(beam_search, model, src, beam_size=1, alpha=0.0, return_scores=True)
    _, wide = _decode(beam_search, model, src, beam_size=4, alpha=0.0, return_scores=True)
    assert (wide >= narrow - 1e-5).all()


def test_transformer_translate_uses_greedy_or_beam() -> None:
    model = _transformer()
    src = torch.randint(3, 19, (3, 5))
    greedy = model.translate(src, bos_id=BOS, eos_id=EOS, max_len=12)
    assert torch.equal(greedy, _decode(greedy_decode, model, src))
    beam = model.translate(src, bos_id=BOS, eos_id=EOS, max_len=12, beam_size=3)
    assert torch.equal(beam, _decode(beam_search, model, src, beam_size=3))


def test_cached_and_uncached_decoding_steps_agree() -> None:
    model = _transformer()
    src = torch.randint(3, 19, (3, 6))
    src[0, 4:] = PAD
    kwargs = dict(batch_size=3, bos_id=BOS, eos_id=EOS, max_len=10)
    cached = greedy_decode(model.step, model.start(src, src != PAD, cache=True), **kwargs)
    uncached = greedy_decode(model.step, model.start(src, src != PAD, cache=False), **kwargs)
    assert torch.equal(cached, uncached)
    tokens = torch.cat([torch.full((3, 1), BOS), torch.randint(3, 17, (3, 5))], dim=1)
    state = model.start(src, src != PAD)
    steps = []
    with torch.no_grad():
        for t in range(6):  # one new token per step, the cache carried along
            logits, state = model.step(tokens[:, : t + 1], state)
            steps.append(logits)
        full = model(src, src != PAD, tokens)  # (B, 6, V)
    assert state["cache"].length() == 6 and state["memory_cache"].length() == 6  # S = 6 source tokens
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-4)
