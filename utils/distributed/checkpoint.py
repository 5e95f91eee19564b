"""Checkpoints that survive a crash, and the rules for resuming one (lesson 12).

- **Atomic**: a checkpoint is written to a temporary file in the same folder, then renamed
  over its final name (`utils.training.atomic_save`). A rename within one file system is
  atomic, so a process killed while saving leaves the previous checkpoint intact and at
  worst a stray `.tmp` file, never a torn checkpoint.
- **Step-numbered**: `step_000120.pt`; the newest `keep` are kept, and `latest()` returns
  the newest one that loads (if the newest were unreadable, the one before it).
- **Portable across world sizes**: a checkpoint holds the full (unsharded) model and
  optimizer state and the *global* batch size. The data order depends only on the seed and
  the step, so a run saved by 2 ranks resumes on 1 or 4, as long as the global batch still
  splits evenly; otherwise `check_resumable` refuses with a message that says what to change.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.training import atomic_save

_NAME = re.compile(r"^step_(\d{6,})\.pt$")
# Settings that fix what the checkpoint's numbers mean: the model's shapes, the data and its
# order, the optimisation. The world size and the accumulation steps may change on resume.
MUST_MATCH = ("model", "d_model", "num_heads", "num_layers", "d_ff", "vocab_size", "seq_len",
              "data", "num_samples", "seed", "global_batch", "lr", "steps")


class ResumeError(RuntimeError):
    """A checkpoint cannot be resumed with these settings; the message says which and why."""


def path_for(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step_{step:06d}.pt"


def checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints in `directory`, oldest first (temporary files are ignored)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save(directory: str | Path, state: Mapping[str, Any], step: int, keep: int = 2) -> Path:
    """Write `state` as the checkpoint of `step` atomically; delete all but the newest `keep`."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    path = path_for(directory, step)
    atomic_save(dict(state), path)
    for old in checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    for stray in Path(directory).glob(".step_*.tmp"):  # left by a process killed mid-save
        if stray.stat().st_mtime < path.stat().st_mtime:
            stray.unlink(missing_ok=True)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, on the CPU."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def latest(directory: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, with its contents; None if there is none."""
    for path in reversed(checkpoints(directory)):
        try:
            return path, load(path)
        except Exception as err:  # unreadable (cannot happen with atomic saves, but be safe)
            print(f"checkpoint {path.name} unreadable ({type(err).__name__}); trying an older one")
    return None


def check_resumable(saved: Mapping[str, Any], config: Mapping[str, Any], world_size: int) -> str:
    """Refuse (ResumeError) unless a checkpoint's settings allow this run to continue it;
    return a one-line description of the resume."""
    old = saved.get("config", {})
    changed = {k: (old.get(k), config.get(k)) for k in MUST_MATCH if k in old and old.get(k) != config.get(k)}
    if changed:
        lines = ", ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in changed.items())
        raise ResumeError(
            f"cannot resume {saved.get('path', 'the checkpoint')}: {lines}. These settings fix the model's "
            "shapes, the data order or the optimisation; resume with the checkpoint's values, or start "
            "afresh in a new --ckpt-dir.")
    batch, accum = int(config["global_batch"]), int(config.get("accum_steps", 1))
    if batch % (world_size * accum) != 0:
        raise ResumeError(
            f"the checkpoint was trained with a global batch of {batch} sequences; {world_size} ranks x "
            f"{accum} accumulation steps cannot split it evenly. Resume with a world size and "
            f"--accum-steps whose product divides {batch}.")
    before = int(saved.get("world_size", world_size))
    how = "" if before == world_size else (
        f" (saved by {before} rank(s), resumed on {world_size}: the global batch of {batch} is unchanged)")
    return f"resumed from step {saved['step']}{how}"


# --------------------------------------------------------------------------------------
# For exercises and tests: a crash in the middle of a save, and a resume to compare
# --------------------------------------------------------------------------------------


class SimulatedCrash(BaseException):
    """Raised by `crash_during_save` where a real process would have died mid-write."""


@contextlib.contextmanager
def crash_during_save() -> Iterator[None]:
    """Inside this block, `torch.save` writes half a file, then "dies" (raises SimulatedCrash)."""
    real_save = torch.save

    def torn_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        torn = b"PK\x03\x04" + b"\0" * 64  # the start of a zip file, nothing more
        if hasattr(f, "write"):  # an open file (utils.training.atomic_save writes through one)
            f.write(torn)
            name = getattr(f, "name", f)
        else:
            Path(f).write_bytes(torn)
            name = f
        raise SimulatedCrash(f"the process died while writing {name}")

    torch.save = torn_save
    try:
        yield
    finally:
        torch.save = real_save


def resume_experiment(restore: Callable[[Path, nn.Module, torch.optim.Optimizer], int], folder: Path,
                      steps_before: int = 3, steps_after: int = 3) -> dict[str, Any]:
    """Train a small model `steps_before` steps, save {model, optimizer, step}, restore it into a
    fresh model and optimizer with `restore(path, model, optimizer) -> step`, train `steps_after`
    more; compare with an uninterrupted run and with a resume that forgot the optimizer."""
    torch.manual_seed(0)
    data = [(torch.randn(8, 4), torch.randn(8, 2)) for _ in range(steps_before + steps_after)]
    initial = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = copy.deepcopy(initial)
        return model, torch.optim.Adam(model.parameters(), lr=0.05)

    def steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list) -> None:
        for x, y in batches:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()

    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    model, optimizer = fresh()
    steps(model, optimizer, data)
    uninterrupted = flat(model)
    model, optimizer = fresh()
    steps(model, optimizer, data[:steps_before])
    path = Path(folder) / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": steps_before}, path)
    resumed, resumed_optimizer = fresh()
    step = restore(path, resumed, resumed_optimizer)
    steps(resumed, resumed_optimizer, data[steps_before:])
    model_only, model_only_optimizer = fresh()
    model_only.load_state_dict(torch.load(path)["model"])
    steps(model_only, model_only_optimizer, data[steps_before:])
    return {"step": step, "resumed": flat(resumed), "uninterrupted": uninterrupted,
            "model only": flat(model_only)}
