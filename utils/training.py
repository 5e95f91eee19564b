"""One training loop for every lesson, and a disk cache of trained models.

Notebooks are independent: a lesson that compares against an earlier lesson's model trains
it itself through `cached_run`, which stores the trained weights and their metrics on disk,
keyed by the run's configuration and by the source of the course code that trained it (so a
changed model or data generator never serves a stale result).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
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

# ---------------------------------------------------------------- the loop


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


# ---------------------------------------------------------------- the cache


def cache_dir() -> Path:
    """`$COURSE_CACHE`, else ~/.cache/attention-from-scratch; a temp dir if neither is writable
    (a sandboxed grading run, say)."""
    configured = os.environ.get("COURSE_CACHE")
    candidates = [Path(configured)] if configured else []
    candidates += [Path.home() / ".cache" / "attention-from-scratch",
                   Path(tempfile.gettempdir()) / "attention-from-scratch"]
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
            return path
        except OSError:
            continue
    raise OSError(f"no writable cache directory among {[str(c) for c in candidates]}; set COURSE_CACHE")


def code_fingerprint() -> str:
    """Hash of the course package's source: a cached run is reused only by the same code."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "course" in path.relative_to(root).parts:  # authoring tools do not change results
            continue
        if path.name in ("checks.py", "delegation.py") or "expected" in path.relative_to(root).parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(name: str, config: Any) -> str:
    """Cache key of a run: its name, its configuration (a dataclass) and the code."""
    settings = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    payload = json.dumps({"name": name, "config": settings, "code": code_fingerprint()},
                         sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill mid-write never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_run(
    name: str,
    config: Any,
    build: Callable[[], nn.Module],
    fit: Callable[[nn.Module], dict[str, Any]],
    *,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a model and `fit` it (returns its metrics), or load both from the cache.

    The first call with a given `name`, `config` and course code trains and saves; later
    calls, from any notebook, load the weights and the metrics in a fraction of a second.
    """
    path = cache_dir() / "runs" / f"{run_key(name, config)}.pt"
    model = build()
    # Two notebooks running at once (a test run, a class graded in parallel) that need the same
    # model: the second waits for the first to save it, then loads it, instead of training it too.
    with _exclusive(path.with_suffix(".lock"), name):
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=False)
                model.load_state_dict(saved["state_dict"])
                return model.to(device).eval(), {**saved["info"], "cached": True}
            except Exception as err:  # a corrupt or incompatible file: retrain, say why
                print(f"cache entry {path.name} unusable ({type(err).__name__}: {err}); retraining")
        info = dict(fit(model))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_save({"state_dict": state, "info": info}, path)
    return model.to(device).eval(), {**info, "cached": False}


@contextlib.contextmanager
def _exclusive(lock: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `lock` (created if needed) for the block.

    An OS lock (flock) is released by the kernel when its process dies, so a killed
    training run never leaves a stale lock. Where flock or the file is unavailable (Windows,
    a read-only cache), the block runs unlocked, which is safe: each process trains its own
    copy and `atomic_save` renames a finished file into place, so a reader sees no entry or a
    whole one, never a torn one. At worst a model is trained twice (and on Windows, a rename
    that lands while another process is reading the file fails; running the cell again works).
    """
    try:
        import fcntl

        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")  # noqa: SIM115 - held open for the whole block
    except (ImportError, OSError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{name}: another process is training this model; waiting to load it from the cache")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
