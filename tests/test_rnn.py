"""utils.models.rnn: the RNN cell of lesson 01 and the GRU classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.models.rnn import GRUClassifier, RNNCell, SimpleRNN, last_real, lengths_from_mask


def test_rnn_cell_equals_nn_rnn_with_the_same_weights() -> None:
    torch.manual_seed(0)
    reference = nn.RNN(5, 8, batch_first=True)
    ours = SimpleRNN.from_torch(reference)
    x, h0 = torch.randn(3, 6, 5), torch.randn(3, 8)
    expected, h_n = reference(x, h0[None])
    outputs, h = ours(x, h0)
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(h, h_n[0])


def test_rnn_cell_shape_and_parameter_names_follow_nn_rnn() -> None:
    cell = RNNCell(4, 6)
    assert cell(torch.randn(2, 4), torch.zeros(2, 6)).shape == (2, 6)
    assert {n for n, _ in cell.named_parameters()} == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}


def test_from_torch_refuses_what_it_cannot_copy() -> None:
    with pytest.raises(ValueError, match="one-layer"):
        SimpleRNN.from_torch(nn.RNN(3, 4, num_layers=2))


def test_simple_rnn_rejects_an_unbatched_sequence() -> None:
    with pytest.raises(ValueError, match=r"\(B, T, E\)"):
        SimpleRNN(3, 4)(torch.randn(5, 3))


def test_lengths_from_mask_rejects_an_inverted_mask(padded_batch) -> None:
    _, mask = padded_batch()
    assert lengths_from_mask(mask).tolist() == [7, 3, 5]
    with pytest.raises(ValueError, match="inverted"):
        lengths_from_mask(~mask)


def test_last_real_reads_each_row_at_its_last_token() -> None:
    outputs = torch.arange(2 * 4, dtype=torch.float32).view(2, 4, 1)  # (B, T, 1)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert last_real(outputs, mask).flatten().tolist() == [1.0, 7.0]


def test_gru_classifier_shape(padded_batch) -> None:
    tokens, mask = padded_batch()
    logits = GRUClassifier(20, embed_dim=8, hidden_size=16, num_classes=3)(tokens, mask)
    assert logits.shape == (3, 3)


def test_padding_never_changes_the_gru_classifier_output(padded_batch, assert_rows_as_if_alone) -> None:
    torch.manual_seed(0)
    model = GRUClassifier(20, embed_dim=8, hidden_size=16).eval()
    tokens, mask = padded_batch()
    batched = assert_rows_as_if_alone(model, tokens, mask)
    garbage = tokens.masked_fill(~mask, 7)  # whatever sits in the padding is ignored
    torch.testing.assert_close(model(garbage, mask), batched)


def test_gru_classifier_is_deterministic_under_a_seed(padded_batch) -> None:
    tokens, mask = padded_batch()
    torch.manual_seed(3)
    first = GRUClassifier(20, embed_dim=8, hidden_size=16)(tokens, mask)
    torch.manual_seed(3)
    second = GRUClassifier(20, embed_dim=8, hidden_size=16)(tokens, mask)
    assert torch.equal(first, second)


def test_classify_allows_gradients_with_respect_to_the_inputs(padded_batch) -> None:
    model = GRUClassifier(20, embed_dim=8, hidden_size=16)
    tokens, mask = padded_batch()
    embedded = model.embedding(tokens).detach().requires_grad_()
    model.classify(embedded, mask)[:, 0].sum().backward()
    assert embedded.grad is not None
    assert (embedded.grad[1, 3:] == 0).all(), "padding after the last real token gets no gradient"


def test_rnn_benchmark_prints_one_row_per_length(capsys) -> None:
    from utils.bench import rnn as bench_rnn

    assert bench_rnn.main(["--batch", "2", "--width", "8", "--lengths", "4", "8", "--repeat", "1",
                           "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["4", "8"] and all(len(row) == 6 for row in rows)
