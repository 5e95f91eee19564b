"""utils.models.translation_transformer: the encoder–decoder Transformer of lesson 08."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.models.translation_transformer import (
    Transformer,
    TransformerConfig,
    label_smoothed_loss,
    parameter_count,
    teacher_forcing_loss,
    warmup_lr,
    warmup_scheduler,
)
from utils.training import count_parameters


def _model(**overrides) -> Transformer:
    torch.manual_seed(0)
    config = TransformerConfig(src_vocab_size=23, tgt_vocab_size=29, d_model=32, num_heads=4,
                               d_ff=48, dropout=0.0, **overrides)
    return Transformer(config).eval()


def test_output_has_one_distribution_per_target_position() -> None:
    model = _model()
    src, tgt = torch.randint(1, 23, (3, 7)), torch.randint(1, 29, (3, 5))
    assert model(src, None, tgt).shape == (3, 5, 29)


def test_changing_a_future_target_token_never_changes_an_earlier_output() -> None:
    model = _model()
    src, tgt = torch.randint(1, 23, (2, 6)), torch.randint(1, 29, (2, 8))
    changed = tgt.clone()
    changed[:, 5:] = torch.randint(1, 29, (2, 3))
    torch.testing.assert_close(model(src, None, tgt)[:, :5], model(src, None, changed)[:, :5])


def test_source_padding_never_changes_the_output() -> None:
    model = _model()
    src, tgt = torch.randint(1, 23, (1, 5)), torch.randint(1, 29, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 4, dtype=torch.long)], dim=1)  # pad id 0
    torch.testing.assert_close(model(padded, None, tgt), model(src, None, tgt), atol=1e-5, rtol=1e-4)


def test_target_padding_never_changes_real_positions() -> None:
    model = _model()
    src, tgt = torch.randint(1, 23, (1, 5)), torch.randint(1, 29, (1, 4))
    padded = torch.cat([tgt, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(src, None, padded)[:, :4], model(src, None, tgt), atol=1e-5, rtol=1e-4)


def test_a_batch_gives_what_each_sentence_gives_alone() -> None:
    model = _model()
    a_src, b_src = torch.randint(1, 23, (1, 6)), torch.randint(1, 23, (1, 3))
    tgt = torch.randint(1, 29, (1, 4))
    batch = torch.cat([a_src, F.pad(b_src, (0, 3))])  # (2, 6), the second right-padded
    out = model(batch, None, tgt.expand(2, -1))
    torch.testing.assert_close(out[1:], model(b_src, None, tgt), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_parameter_count_matches_the_formula(norm_first: bool, tie: bool) -> None:
    model = _model(norm_first=norm_first, tie_embeddings=tie, num_encoder_layers=3)
    assert count_parameters(model) == parameter_count(model.config)


def test_tied_output_layer_is_the_target_embedding() -> None:
    model = _model()
    assert model.generator.weight is model.tgt_embed.tokens.weight


def test_label_smoothing_equals_torch_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 5, 11), torch.randint(1, 11, (2, 5))
    targets[1, 3:] = 0  # padding, ignored
    ours = label_smoothed_loss(logits, targets, smoothing=0.1, ignore_index=0)
    theirs = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0,
                             label_smoothing=0.1)
    torch.testing.assert_close(ours, theirs)


def test_warmup_rises_linearly_then_decays_as_inverse_square_root() -> None:
    d, warm = 512, 4000
    assert warmup_lr(2000, d, warm) == pytest.approx(warmup_lr(1000, d, warm) * 2)
    peak = warmup_lr(warm, d, warm)
    assert peak == pytest.approx(d ** -0.5 * warm ** -0.5)
    assert max(warmup_lr(s, d, warm) for s in range(1, 3 * warm, 97)) <= peak + 1e-12
    assert warmup_lr(4 * warm, d, warm) == pytest.approx(peak / 2)


def test_warmup_scheduler_sets_the_schedule() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_scheduler(optimizer, d_model=64, warmup_steps=10)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([warmup_lr(s, 64, 10) for s in range(1, 6)])


def test_teacher_forcing_loss_learns_to_copy() -> None:
    torch.manual_seed(0)
    model = _model().train()
    src = torch.randint(3, 23, (16, 5))
    tgt = torch.cat([torch.ones(16, 1, dtype=torch.long), src, torch.full((16, 1), 2)], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = teacher_forcing_loss(model, src, tgt, smoothing=0.0).item()
    for _ in range(100):
        loss = teacher_forcing_loss(model, src, tgt, smoothing=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 3


def test_warmup_scheduler_peaks_at_the_peak_lr_given() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_scheduler(optimizer, d_model=64, warmup_steps=10, peak_lr=5e-3)
    rates = []
    for _ in range(30):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) == pytest.approx(5e-3) and rates.index(max(rates)) == 9
