"""utils.training.train_steps: the reference of lesson 08's training-loop exercise.

One step per batch, in this order: zero_grad, forward and loss, backward, clip the global norm,
the optimiser's step, the scheduler's step; the losses come back as floats.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from utils import training


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()


def _batches(n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(5, 3, generator=generator, dtype=torch.float64),
             torch.randn(5, 1, generator=generator, dtype=torch.float64)) for _ in range(n)]


def _mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _by_hand(model: nn.Module, batches, clip_norm: float | None, gamma: float) -> list[float]:
    """Plain SGD written out: the gradients of each batch alone, clipped, times the scheduled rate."""
    losses, lr = [], 0.1
    for batch in batches:
        model.zero_grad()
        loss = _mse(model, batch)
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        norm = torch.cat([g.flatten() for g in grads]).norm()
        scale = min(1.0, clip_norm / (norm.item() + 1e-6)) if clip_norm is not None else 1.0
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p -= lr * scale * g
        lr *= gamma
        losses.append(loss.item())
    return losses


def _run(model: nn.Module, batches, clip_norm: float | None, gamma: float | None) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = None if gamma is None else torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    return training.train_steps(model, batches, optimizer, scheduler, _mse, clip_norm)


def test_one_step_per_batch_with_clipping_and_schedule_equals_sgd_written_out() -> None:
    model, batches = _model(), _batches()
    twin = copy.deepcopy(model)
    losses = _run(model, batches, clip_norm=0.1, gamma=0.5)
    expected = _by_hand(twin, batches, clip_norm=0.1, gamma=0.5)
    assert torch.allclose(torch.tensor(losses), torch.tensor(expected), atol=1e-12)
    assert torch.allclose(_parameters(model), _parameters(twin), atol=1e-12)


def test_losses_are_floats_one_per_batch_each_before_its_step() -> None:
    model, batches = _model(), _batches(3)
    first = _mse(model, batches[0]).item()
    losses = _run(model, batches, clip_norm=1.0, gamma=None)
    assert len(losses) == 3 and all(type(loss) is float for loss in losses)
    assert losses[0] == first


def test_no_clipping_and_no_schedule_when_given_none() -> None:
    model, batches = _model(), _batches()
    twin = copy.deepcopy(model)
    _run(model, batches, clip_norm=None, gamma=None)
    _by_hand(twin, batches, clip_norm=None, gamma=1.0)
    assert torch.allclose(_parameters(model), _parameters(twin), atol=1e-12)


def test_gradients_do_not_accumulate_across_steps() -> None:
    model, batches = _model(), _batches(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay: only the gradients move
    training.train_steps(model, batches, optimizer, None, _mse, clip_norm=None)
    last = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    _mse(model, batches[-1]).backward()
    assert all(torch.allclose(a, p.grad) for a, p in zip(last, model.parameters(), strict=True))


def test_the_scheduler_steps_after_the_optimiser() -> None:
    model, batches = _model(), _batches(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    rates = []
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.1 * (i + 1))

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        rates.append(optimizer.param_groups[0]["lr"])  # the rate the coming step will use
        return _mse(m, batch)

    training.train_steps(model, batches, optimizer, scheduler, loss_fn, clip_norm=None)
    assert torch.allclose(torch.tensor(rates), torch.tensor([0.1, 0.2, 0.3]))
