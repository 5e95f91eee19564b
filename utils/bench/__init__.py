"""Timing helpers shared by notebooks and benchmark scripts.

Benchmarks print ratios measured side by side in one run (the machines are shared and
noisy, so absolute times drift). Run one with `python -m utils.bench NAME`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

try:
    import fcntl  # file locks (Unix)
except ImportError:  # Windows: timings take no lock. Only `make gpu-check` (Linux, several
    fcntl = None  # notebooks on one GPU) sets the lock's variable; a student's notebook times alone.


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work, so that a timer measures it (no-op on the CPU)."""
    kind = torch.device(device).type if device is not None else None
    if kind in (None, "cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


TIMING_LOCK_ENV = "COURSE_TIMING_LOCK"


_timing_here = 0  # how deep this process is inside `exclusive_timing`
TIMING_PAUSE_ENV = "COURSE_TIMING_PAUSE"  # "0": training steps do not wait for timings
_seconds = {"timing": 0.0, "paused": 0.0}  # this process's, under the lock: see `timing_totals`


@contextlib.contextmanager
def exclusive_timing() -> Iterator[None]:
    """Hold the file lock named by `COURSE_TIMING_LOCK` (if set) while timing.

    `make gpu-check` runs several notebooks on one GPU at once; with this lock, two of them
    never time their code at the same moment, and the others' training steps wait until the
    timing is done (`wait_while_timing`). A student's notebook runs alone and never sets it.
    A no-op where the variable is unset or file locks do not exist (Windows).
    """
    global _timing_here
    path = os.environ.get(TIMING_LOCK_ENV)
    if not path or fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _timing_here += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            _seconds["timing"] += time.perf_counter() - start
            _timing_here -= 1
            fcntl.flock(handle, fcntl.LOCK_UN)


def wait_while_timing(poll_s: float = 0.02) -> None:
    """Return once no other notebook is timing (`exclusive_timing`): a training step launched
    beside a timing would share the GPU with it and skew it (in the first GPU check, timing
    claims failed while eleven other notebooks trained). `utils.training.take_step` calls it
    before every step. It only asks, holding nothing: a timer that dies frees its lock, and
    nothing waits on a step. Returns at once where the variable is unset (every student's run),
    in the process that is timing, and with `COURSE_TIMING_PAUSE=0` (`gpu-check --no-pause`)."""
    path = os.environ.get(TIMING_LOCK_ENV)
    if not path or fcntl is None or _timing_here or os.environ.get(TIMING_PAUSE_ENV) == "0":
        return
    handle, start = _shared_handle(path), time.perf_counter()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held exclusively: someone is timing
            time.sleep(poll_s)
            continue
        fcntl.flock(handle, fcntl.LOCK_UN)
        _seconds["paused"] += time.perf_counter() - start
        return


def timing_totals() -> dict[str, float]:
    """Seconds this process spent timing under the lock, and paused while others timed: what
    the lock costs a `make gpu-check` run (its report shows both for every notebook)."""
    return dict(_seconds)


@functools.cache
def _shared_handle(path: str):
    """One open file per lock path and process (a step asks thousands of times)."""
    return open(path, "a")  # kept open for the process's life


@contextlib.contextmanager
def cpu_threads(count: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block with torch's CPU thread pool at `count` threads, then restore it.

    A timing claim on the CPU compares algorithms, not cores: at one thread it reads the same
    on a 2-core laptop and a 16-core server, alone or beside other work. A no-op for
    `count=None` and for a GPU `device` (there the kernels, not the CPU threads, do the work).
    """
    if count is None or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    if count < 1:
        raise ValueError(f"cpu_threads needs count >= 1 (or None to leave it), got {count}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Timing:
    """Seconds of `repeat` calls after warm-up (wall-clock, unless `compare` was given a clock)."""

    median: float
    best: float
    runs: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.median * 1e3:.2f} ms (best {self.best * 1e3:.2f} ms, n={len(self.runs)})"


def time_it(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
    threads: int | None = None,
) -> Timing:
    """Time `fn()`: `warmup` untimed calls, then the median and best of `repeat` timed ones
    (on the CPU with `threads` threads if given, see `cpu_threads`)."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"time_it needs repeat >= 1 and warmup >= 0, got {repeat=} {warmup=}")
    with exclusive_timing(), cpu_threads(threads, device):
        for _ in range(warmup):
            fn()
        synchronize(device)
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            synchronize(device)
            runs.append(time.perf_counter() - start)
    return Timing(statistics.median(runs), min(runs), tuple(runs))


def compare(
    fns: dict[str, Callable[[], object]],
    *,
    repeat: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
    threads: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time several functions side by side, interleaved round by round, so that a burst of
    load on a shared machine hits them all alike; use `.best` for ratios. `threads=1` times
    them on one CPU thread (see `cpu_threads`), for claims that must not depend on the cores.

    `clock=time.thread_time` counts only the seconds the calling thread itself ran: for pure
    Python on one thread (no torch kernels on other threads, no GPU), the time other programs
    take the core away is left out, which wall-clock time cannot do on a busy machine."""
    if not fns:
        raise ValueError("compare needs at least one function to time")
    on_one_cpu_thread = threads == 1 and (device is None or torch.device(device).type == "cpu")
    if clock is not time.perf_counter and not on_one_cpu_thread:
        raise ValueError("a clock other than time.perf_counter sees only the calling thread: "
                         "use it with threads=1 on the CPU")
    runs: dict[str, list[float]] = {name: [] for name in fns}
    with exclusive_timing(), cpu_threads(threads, device):
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        for _ in range(repeat):
            for name, fn in fns.items():
                synchronize(device)
                start = clock()
                fn()
                synchronize(device)
                runs[name].append(clock() - start)
    return {name: Timing(statistics.median(r), min(r), tuple(r)) for name, r in runs.items()}
