"""utils.models.cnn: dilated convolutions, their receptive field, the CNN classifier."""

from __future__ import annotations

import pytest
import torch

from utils.models.cnn import (
    CNNClassifier,
    DilatedConvEncoder,
    masked_max_pool,
    reachable_inputs,
    receptive_field,
)


@pytest.mark.parametrize(("kernel_size", "dilations", "expected"),
                         [(3, (1,), 3), (3, (1, 2, 4, 8), 31), (5, (1, 1), 9), (1, (4,), 1), (3, (2, 2), 9)])
def test_receptive_field_formula(kernel_size, dilations, expected) -> None:
    assert receptive_field(kernel_size, dilations) == expected


@pytest.mark.parametrize(("kernel_size", "dilations"), [(3, (1, 2, 4)), (5, (1, 3)), (2, (1, 2, 4, 8))])
def test_causal_receptive_field_matches_the_gradient_measurement(kernel_size, dilations) -> None:
    torch.manual_seed(0)
    encoder = DilatedConvEncoder(16, kernel_size, dilations, causal=True)
    reach = reachable_inputs(encoder, seq_len=64, position=40, d_model=16)
    field = receptive_field(kernel_size, dilations)
    assert int(reach.sum()) == field
    assert reach[40 - field + 1 : 41].all(), "a causal window ends at the output position"


@pytest.mark.parametrize(("kernel_size", "dilations"), [(3, (1, 2, 4)), (5, (1, 3)), (3, (1, 1, 1))])
def test_centred_receptive_field_matches_the_gradient_measurement(kernel_size, dilations) -> None:
    torch.manual_seed(0)
    encoder = DilatedConvEncoder(16, kernel_size, dilations, causal=False)
    reach = reachable_inputs(encoder, seq_len=64, position=32, d_model=16)
    field = receptive_field(kernel_size, dilations)
    assert int(reach.sum()) == field
    half = (field - 1) // 2
    assert reach[32 - half : 32 + half + 1].all(), "the window is centred on the output"


def test_one_random_input_can_hide_part_of_the_field_and_several_do_not() -> None:
    """With negative biases (as training can leave them) most ReLUs are off for a given input:
    the gradient of one random input misses positions that are in the field; a batch of 8
    random inputs finds the whole window."""
    torch.manual_seed(0)
    encoder = DilatedConvEncoder(8, 3, (1, 2, 4), causal=True)  # receptive field 15
    with torch.no_grad():
        for conv in encoder.convs:
            conv.bias.fill_(-0.5)
    assert int(reachable_inputs(encoder, 40, 39, 8, samples=1).sum()) < 15
    assert int(reachable_inputs(encoder, 40, 39, 8, samples=8).sum()) == 15


def test_even_kernels_are_refused_for_a_centred_window() -> None:
    with pytest.raises(ValueError, match="odd"):
        DilatedConvEncoder(8, kernel_size=4, causal=False)


def test_unknown_readout_is_refused() -> None:
    with pytest.raises(ValueError, match="readout"):
        CNNClassifier(10, readout="mean")


def test_encoder_keeps_the_shape() -> None:
    x = torch.randn(2, 11, 8)
    assert DilatedConvEncoder(8)(x).shape == (2, 11, 8)


@pytest.mark.parametrize("causal", [True, False])
def test_padding_never_changes_real_positions(causal) -> None:
    torch.manual_seed(0)
    encoder = DilatedConvEncoder(8, 3, (1, 2, 4), causal=causal).eval()
    x = torch.randn(3, 12, 8)
    mask = torch.arange(12)[None, :] < torch.tensor([12, 5, 8])[:, None]
    batched = encoder(x, mask)
    for row, n in enumerate([12, 5, 8]):
        alone = encoder(x[row : row + 1, :n])
        torch.testing.assert_close(batched[row : row + 1, :n], alone)
        assert (batched[row, n:] == 0).all()


def test_masked_max_pool_ignores_padding() -> None:
    x = torch.tensor([[[1.0], [5.0], [100.0]]])  # (B, T, D); the 100 is padding
    mask = torch.tensor([[True, True, False]])
    assert masked_max_pool(x, mask).item() == 5.0


@pytest.mark.parametrize("readout", ["last", "max"])
def test_padding_never_changes_the_cnn_classifier_output(readout, padded_batch,
                                                        assert_rows_as_if_alone) -> None:
    torch.manual_seed(0)
    model = CNNClassifier(20, d_model=8, dilations=(1, 2), readout=readout).eval()
    tokens, mask = padded_batch(lengths=(9, 4, 6), extra=5)
    assert_rows_as_if_alone(model, tokens, mask)


def test_cnn_classifier_is_deterministic_under_a_seed(padded_batch) -> None:
    tokens, mask = padded_batch(lengths=(9, 4, 6), extra=5)
    torch.manual_seed(1)
    first = CNNClassifier(20, d_model=8)(tokens, mask)
    torch.manual_seed(1)
    second = CNNClassifier(20, d_model=8)(tokens, mask)
    assert first.shape == (3, 2) and torch.equal(first, second)


def test_last_readout_ignores_tokens_outside_the_receptive_field(padded_batch) -> None:
    torch.manual_seed(0)
    model = CNNClassifier(20, d_model=8, dilations=(1, 2)).eval()  # receptive field 7
    tokens, mask = padded_batch(lengths=(12, 12, 12), extra=0)
    changed = tokens.clone()
    changed[:, :5] = 3  # rewrite tokens 0-4; the last position sees tokens 5-11 only
    torch.testing.assert_close(model(changed, mask), model(tokens, mask))
    changed[:, 5] = 4 if tokens[0, 5] != 4 else 5
    assert not torch.allclose(model(changed, mask)[0], model(tokens, mask)[0])
