"""utils.training: the loop trains, stops with advice on a bad loss, and logs every step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils import training


def _regression_batches():
    generator = torch.Generator().manual_seed(0)
    while True:
        x = torch.randn(16, 4, generator=generator)
        yield x, x.sum(1, keepdim=True)


def _mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_train_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    log = training.train(model, _regression_batches(), _mse, steps=200, lr=0.05)
    assert log.steps == 200 and log.seconds > 0
    assert sum(log.losses[-10:]) < 0.01 * sum(log.losses[:10])


def test_non_finite_loss_stops_with_advice() -> None:
    model = nn.Linear(4, 1)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        training.train(model, [(torch.full((2, 4), float("nan")), torch.zeros(2, 1))], _mse, steps=1)


def test_empty_training_data_is_reported() -> None:
    with pytest.raises(ValueError, match="yielded no batch"):
        training.train(nn.Linear(4, 1), [], _mse, steps=1)


def test_smoothed_loss_is_a_running_mean() -> None:
    assert training.TrainLog(losses=[1.0, 3.0, 5.0]).smoothed(window=2) == [1.0, 2.0, 4.0]
