"""A disk cache of trained models, so that notebooks stay independent and cheap.

A lesson that compares against an earlier lesson's model trains it itself through
`cached_run`, which stores the trained weights and their metrics on disk, keyed by the run's
name, its configuration and the source of the course code that trained it (so a changed model
or data generator never serves a stale result). The first call trains; later calls, from any
notebook, load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.training import atomic_save

# Sources that cannot change a trained model: the check cells' helpers and what they compare against.
_NOT_FINGERPRINTED = ("checks.py", "delegation.py")


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
    root = Path(__file__).resolve().parent  # the `utils` package
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if path.name in _NOT_FINGERPRINTED or "expected" in relative.parts:
            continue
        digest.update(relative.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(name: str, config: Any) -> str:
    """Cache key of a run: its name, its configuration (a dataclass, or JSON-able) and the code."""
    settings = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    payload = json.dumps({"name": name, "config": settings, "code": code_fingerprint()},
                         sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


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
    """Hold an exclusive lock on the file `lock` (created if needed) for the block; `name`
    says in the waiting message what the other process is training.

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
