"""The memory limit of a graded submission: its kernel's resident memory, summed over every
process the kernel starts, watched by a thread of the grading worker.

An address-space limit (RLIMIT_AS) is not a memory limit for the CUDA build of torch that pip
installs by default on Linux: at 3 GiB it cannot even map `libtorch_cuda.so`, and CUDA reserves
far more address space than any machine has memory (../shared/NOTES.md). So the worker limits
what really runs out, resident memory (RSS):

- `MemoryGuard` sums the RSS of every process below the worker ten times a second and kills
  them all when the sum goes over the limit, recording the cell that was running. It covers a
  submission that spreads its memory over several processes, or maps shared memory.
- `limit_process_memory` caps each process's private writable memory (RLIMIT_DATA), which
  counts what malloc and torch allocate but not mapped libraries nor CUDA's inaccessible
  reservations; a single allocation over the limit then fails at once with a `MemoryError`
  that the notebook shows, before the guard could see it, and the other cells still run. It is
  left off when kernels compute on a GPU, where the CUDA driver's own mappings are untested.

A cgroup would do the same job in the kernel, but needs a delegated cgroup v2 hierarchy, which
neither the machines the course is tested on nor most containers give an unprivileged user.
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Callable

import psutil

POLL_S = 0.1


def _lower_limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)  # only root may raise it
    resource.setrlimit(kind, (value, value))


def limit_process_memory(memory_bytes: int, file_bytes: int, device: str) -> None:
    """Cap this process's private memory (on the CPU), file size and core dumps; children inherit them."""
    if device == "cpu":
        _lower_limit(resource.RLIMIT_DATA, memory_bytes)
    _lower_limit(resource.RLIMIT_FSIZE, file_bytes)
    _lower_limit(resource.RLIMIT_CORE, 0)


def resident_bytes(processes: list[psutil.Process]) -> int:
    """The summed RSS of `processes`, skipping any that ended meanwhile."""
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


class MemoryGuard:
    """Kill every process below `root` (default: this one) when their resident memory together
    exceeds `limit_bytes`.

    `where()` names what was running (a cell), for the message; `tripped` holds the message once
    the guard has acted, and the guard then stops watching.
    """

    def __init__(self, limit_bytes: int, where: Callable[[], str], poll_s: float = POLL_S,
                 root: int | None = None) -> None:
        self.limit_bytes = limit_bytes
        self.where = where
        self.poll_s = poll_s
        self.root = root
        self.tripped: str | None = None
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory-guard", daemon=True)

    def __enter__(self) -> MemoryGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        root = psutil.Process(self.root)
        while not self._stop.wait(self.poll_s):
            try:
                tree = root.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            used = resident_bytes(tree)
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.limit_bytes:
                # the message first: the main thread reads it as soon as it sees the kernel die
                limit = f"{self.limit_bytes / 2**30:g} GiB"
                self.tripped = (f"memory limit: {self.where()} used {used / 2**30:.2f} GiB of memory, over "
                                f"the limit of {limit}, and the kernel was stopped there")
                kill_all(tree)
                return
