"""One training loop for every lesson: `train` (with a progress bar, sized in optimiser steps),
the bare `train_steps` that lesson 08 has students write, the one optimiser step both take
(`take_step`), and `atomic_save`, which writes a checkpoint that neither a kill mid-write nor a
power cut can tear.

Caching trained models on disk (so that a later lesson reuses an earlier lesson's model) is
`utils.run_cache`'s job; this module is only the loop.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from utils.bench import wait_while_timing


@dataclass
class TrainLog:
    """What a run did: the loss of every step and the wall-clock time it took."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.losses)

    def smoothed(self, window: int = 20) -> list[float]:
        """Running mean of the loss over `window` steps (for plots)."""
        out, total = [], 0.0
        for i, loss in enumerate(self.losses):
            total += loss - (self.losses[i - window] if i >= window else 0.0)
            out.append(total / min(i + 1, window))
        return out


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move a batch (tensor, dataclass, namedtuple, dict, list) to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **{f.name: to_device(getattr(batch, f.name), device)
                                             for f in dataclasses.fields(batch)})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(x, device) for x in batch))
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(x, device) for x in batch)
    return batch


def forever(batches: Iterable) -> Iterator:
    """Cycle through a loader (a fresh epoch each time) so that runs are sized in steps."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training data yielded no batch: is the split empty?")


def train(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    *,
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_norm: float | None = 1.0,
    device: torch.device | str = "cpu",
    desc: str = "training",
    log: TrainLog | None = None,
) -> TrainLog:
    """Train `model` for `steps` optimiser steps on `batches`; `loss_fn(model, batch)` -> scalar."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    model.to(device).train()
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=lr)
    log = log or TrainLog()
    start = time.perf_counter()
    # A refresh a second at most: a faster bar floods the notebook's output channel (nbval
    # has lost a cell's final message under load when a bar redrew ~20 times a second).
    progress = tqdm(itertools.islice(forever(batches), steps), total=steps, desc=desc, leave=False,
                    mininterval=1.0)
    for batch in progress:
        loss = loss_fn(model, to_device(batch, device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss became {loss.item()} at step {log.steps}; "
                                     "lower the learning rate or check the inputs")
        take_step(model, loss, optimizer, scheduler, clip_norm)
        log.losses.append(loss.item())
        if log.steps % 10 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
    log.seconds += time.perf_counter() - start
    model.eval()
    return log


def train_steps(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    clip_norm: float | None = 1.0,
) -> list[float]:
    """One optimiser step per batch of `batches`; `loss_fn(model, batch)` -> scalar; the losses.

    Each step: the forward pass and the loss, then `take_step` (zero the gradients, `backward`,
    clip, the optimiser's step, then the scheduler's, so that the next step runs at the next
    rate). The losses come back as floats: keeping the tensors would keep every step's graph alive.
    """
    losses = []
    for batch in batches:
        loss = loss_fn(model, batch)
        take_step(model, loss, optimizer, scheduler, clip_norm)
        losses.append(loss.item())
    return losses


def take_step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler | None, clip_norm: float | None) -> None:
    """From a loss to updated weights: fresh gradients (zeroed, else `backward` adds to the last
    step's), clipped to a global norm of `clip_norm` before the step that uses them (None: no
    clipping), the optimiser's step, then the scheduler's (None: no schedule)."""
    wait_while_timing()  # under `make gpu-check`: never beside another notebook's timing
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# A folder is fsynced by opening it; Windows cannot open a folder for that, and its rename
# (MoveFileEx) is written through by NTFS itself.
_FOLDERS_CAN_BE_FSYNCED = os.name != "nt"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` so that a kill or a power cut at any moment leaves at `path`
    the old file or the new one, never a torn one.

    Four steps: write to a temporary file in the same folder (same file system, so the rename
    is atomic); flush it and `os.fsync` it, so that its bytes are on the disk before its name
    is (otherwise a power cut could leave `path` naming an empty or partial file); `os.replace`
    it onto `path`; then fsync the folder, so that the rename itself survives a power cut
    (skipped on Windows). A failure at any step removes the temporary file and leaves `path`
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()  # Python's buffer -> the operating system
            os.fsync(file.fileno())  # the operating system's cache -> the disk
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if _FOLDERS_CAN_BE_FSYNCED:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Write a folder's entries (a rename in it) to the disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as err:  # a few file systems cannot fsync a folder; the file itself is safe
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)
