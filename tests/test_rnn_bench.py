"""utils.bench.rnn: the GRU cell at every position at once does the GRU's own arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.bench.rnn import gru_all_positions


def test_gru_all_positions_is_one_gru_step_per_position_with_the_input_as_previous_state() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(8, 8, batch_first=True).double()
    cell = nn.GRUCell(8, 8).double()
    cell.load_state_dict({name.removesuffix("_l0"): p for name, p in gru.state_dict().items()})
    x = torch.randn(3, 5, 8, dtype=torch.float64)  # (B, T, D)
    step = cell(x.reshape(15, 8), x.reshape(15, 8)).reshape(3, 5, 8)  # h_{t-1} := x_t, every position
    assert torch.allclose(gru_all_positions(gru, x), step)


def test_gru_all_positions_from_the_first_state_equals_the_grus_first_step() -> None:
    torch.manual_seed(1)
    gru = nn.GRU(6, 6, batch_first=True).double()
    x = torch.randn(2, 1, 6, dtype=torch.float64)  # one step, started from h_0 = x_0
    out, _ = gru(x, x.transpose(0, 1).contiguous())  # h_0: (layers, B, D)
    assert torch.allclose(gru_all_positions(gru, x), out)


@pytest.mark.parametrize("gru", [nn.GRU(4, 6), nn.GRU(4, 4, num_layers=2), nn.GRU(4, 4, bidirectional=True)],
                         ids=["widths differ", "two layers", "bidirectional"])
def test_gru_all_positions_rejects_a_gru_it_cannot_mirror(gru: nn.GRU) -> None:
    with pytest.raises(ValueError, match="one-layer, one-direction GRU"):
        gru_all_positions(gru, torch.randn(1, 2, 4))
