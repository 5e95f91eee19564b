"""Which notebooks `make gpu-check` starts when, so that the run fits a short GPU session.

A lent GPU machine comes for about ten minutes, and one H100 must run every notebook twice
(the `gpu` and `t4` conditions). Planning the same 16 GiB for each notebook let an 80 GiB card
run four at a time, about 12 minutes of notebooks; yet most of them need under 3 GiB. So each
notebook is planned from what it measured in the last report (`docs/gpu_check.json`):

- **memory**: what its kernel reserved, plus a quarter and 1 GiB (the CUDA context lives outside
  PyTorch's allocator), at least `FLOOR_GIB` (lessons 11 and 12 train in `torchrun` processes
  whose memory the kernel does not see) and at most `CAP_GIB`: the GPU profile is sized for a
  T4, so nothing needs more. A notebook starts only when its memory fits beside those running.
- **time**: its seconds. A notebook that failed stopped early, so it counts as twice its time
  plus a minute; one never run counts as `UNKNOWN_SECONDS` and `CAP_GIB`.
- **order**: in rounds, the longest first in each, so that few long notebooks are left to run
  alone at the end. `gpu_check` makes each round one version and condition of every lesson,
  starting with what most people run: when the session's time runs out, every lesson has
  been checked the way a student on Colab meets it, rather than some lessons four ways.

With a deadline, a notebook starts only if its estimate says it ends before it; the others
are reported as not run (and a later `--update --rest` run takes them).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

FLOOR_GIB = 4.0
CAP_GIB = 16.0
UNKNOWN_SECONDS = 240.0
MARGIN = 1.2  # a notebook's time varies with what runs beside it: a deadline keeps this much room

Job = TypeVar("Job", bound=Hashable)


@dataclass(frozen=True)
class Estimate:
    """What one notebook is expected to take: wall seconds and GPU memory (GiB)."""

    seconds: float
    gib: float
    measured: bool  # False: no passing run to go by, so the defaults


UNKNOWN = Estimate(UNKNOWN_SECONDS, CAP_GIB, measured=False)


def from_row(row: Mapping) -> Estimate:
    """A passing row's time, and its memory with room to spare."""
    reserved = float(row.get("reserved_gib") or 0.0)
    gib = min(CAP_GIB, max(FLOOR_GIB, 1.25 * reserved + 1.0))
    return Estimate(float(row["seconds"]), gib, measured=True)


def from_failed_row(row: Mapping) -> Estimate:
    """A failed run stopped at its failing cell, so its time is too low: count twice the time
    plus a minute. Its memory (with the same room as a pass) is the best guess there is: the
    big allocations of a lesson come early, in its first trainings."""
    return Estimate(2 * float(row["seconds"]) + 60, from_row(row).gib, measured=False)


def estimate(lesson: str, version: str, condition: str, rows: Sequence[Mapping]) -> Estimate:
    """From the report's row for the same notebook and condition if it passed, else from the
    lesson's slowest passing row (the two versions and conditions run the same code), else
    from its failed rows, else unknown."""
    mine = [r for r in rows if r.get("lesson") == lesson]
    same = [r for r in mine if r.get("version") == version and r.get("condition") == condition]
    for choose, chosen in ((from_row, [r for r in same if r.get("passed")]),
                           (from_row, [r for r in mine if r.get("passed")]),
                           (from_failed_row, mine)):
        if chosen:
            return choose(max(chosen, key=lambda r: r["seconds"]))
    return UNKNOWN


def in_rounds(jobs: Sequence[Job], estimates: Mapping[Job, Estimate],
              round_of: Callable[[Job], int] = lambda job: 0) -> list[Job]:
    """The order to start them: round by round (`round_of`), the longest first in each round,
    ties in the given (curriculum) order."""
    return sorted(jobs, key=lambda job: (round_of(job), -estimates[job].seconds))


@dataclass(frozen=True)
class Limits:
    """What may run at once, and until when."""

    workers: int  # notebooks at once (CPU cores)
    memory_gib: float  # GPU memory to share out
    deadline_s: float | None = None  # start nothing expected to end after this


def to_start(pending: list[Job], running: Mapping[Job, Estimate], now: float,
             estimates: Mapping[Job, Estimate], limits: Limits) -> tuple[list[Job], list[Job]]:
    """(jobs to start now, jobs to give up: past the deadline), taken out of `pending`.

    Each pending job in turn starts if a worker is free and its memory fits beside the running
    ones; a smaller job may pass a larger one that waits for memory. With nothing running, the
    first job starts whatever its memory: it could not start later either."""
    start, give_up = [], []
    held = sum(e.gib for e in running.values())
    busy = len(running)
    for job in list(pending):
        est = estimates[job]
        if limits.deadline_s is not None and now + MARGIN * est.seconds > limits.deadline_s:
            give_up.append(job)
        elif busy < limits.workers and (busy == 0 or held + est.gib <= limits.memory_gib):
            start.append(job)
            held, busy = held + est.gib, busy + 1
        else:
            continue
        pending.remove(job)
    return start, give_up


def simulate(jobs: Sequence[Job], estimates: Mapping[Job, Estimate],
             limits: Limits) -> tuple[float, list[Job]]:
    """(the run's expected wall seconds, the jobs the deadline would leave out), by playing the
    schedule with each job taking its estimate."""
    pending, running, ends, clock, left_out = list(jobs), {}, [], 0.0, []
    order = {job: i for i, job in enumerate(jobs)}
    while pending or running:
        start, give_up = to_start(pending, running, clock, estimates, limits)
        left_out += give_up
        for job in start:
            running[job] = estimates[job]
            heapq.heappush(ends, (clock + estimates[job].seconds, order[job], job))
        if not ends:
            break
        clock, _, job = heapq.heappop(ends)
        del running[job]
    return clock, left_out


def run(jobs: Sequence[Job], estimates: Mapping[Job, Estimate], limits: Limits,
        run_one: Callable[[Job], object], skipped: Callable[[Job], object],
        on_result: Callable[[object], None] = lambda result: None) -> list:
    """Run `jobs` (in this order of preference) as `to_start` allows; `skipped(job)` stands for
    a job the deadline left out. Results come back in the order of `jobs`; `on_result` sees each
    as it comes, in this thread."""
    pending, running, results = list(jobs), {}, {}
    futures: dict[Future, Job] = {}
    start_time = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, limits.workers)) as pool:
        while pending or futures:
            now = time.perf_counter() - start_time
            start, give_up = to_start(pending, running, now, estimates, limits)
            for job in give_up:
                results[job] = skipped(job)
                on_result(results[job])
            for job in start:
                running[job] = estimates[job]
                futures[pool.submit(run_one, job)] = job
            if not futures:
                continue
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                job = futures.pop(future)
                del running[job]
                results[job] = future.result()
                on_result(results[job])
    return [results[job] for job in jobs]
