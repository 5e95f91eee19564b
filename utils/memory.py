"""Peak memory of attention, measured (lesson 10): how many bytes one forward pass, or one
forward and backward pass, allocates above its inputs, for naive attention, the PyTorch
FlashAttention and `F.scaled_dot_product_attention` (with a chosen backend, if wanted).

- CUDA: `torch.cuda.max_memory_allocated()` above what was allocated before the call, in
  this process (the caching allocator counts every tensor, whatever the allocator keeps).
- CPU (Linux): the operating system's own count of the process's resident memory. A fresh
  Python process measures the whole list of calls (starting it and importing torch costs
  about a second, paid once): for each call it builds the inputs, warms up with the same
  call on a short sequence (libraries allocate their workspaces once), resets the kernel's
  peak-RSS counter (`/proc/self/clear_refs`), runs the call and reports the peak resident
  memory above the resident memory just before it. The child runs with
  `MALLOC_MMAP_THRESHOLD_=65536`, so that glibc takes every buffer of 64 KiB or more freshly
  from the OS and gives it back when freed; otherwise glibc would recycle freed buffers
  inside the process, where the OS cannot see a new allocation. Expect about ±0.5 MiB of
  noise (page granularity, the kernel's batched RSS counters, small heap allocations).

Elsewhere (macOS, Windows) `can_measure` says no and `peak_bytes` explains why. There,
`count_peaks` counts instead, on any CPU: PyTorch's profiler (`profile_memory=True`) records
every allocation and free of PyTorch's CPU allocator, and the running total's maximum during a
call is its peak of tensor bytes (what CUDA's counter reports on a GPU). It misses memory that
is not a tensor's (a few KiB of Python objects), and the profiler makes a call of many small
operations about twice as slow. On Linux, at lesson 10's CPU sizes (measured once, on a 2-core
machine), the two agreed within 0.6 MiB on every call but the first, smallest one, where the
operating system's count carried about 4 MiB of start-up noise.

This is the course's one peak-memory measurement: lesson 10 calls `measure_peaks` (or
`count_peaks`), and the attention benchmark (`python -m utils.bench attention`) measures its
table's rows with `peak_bytes` and `measure_peaks` too. `run_in_fresh_python` is the one way
to start the fresh process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.models.attention import flash_attention, scaled_dot_product_attention

METHODS = ("naive", "flash", "sdpa")
SDPA_BACKENDS = ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")
DTYPES = ("float32", "float16", "bfloat16")


def make_inputs(
    batch: int,
    heads: int,
    length: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device | str,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random q, k, v, each (B, H, L, Dh): the inputs of every measured (and timed) attention call."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = (batch, heads, length, head_dim)
    # Drawn on the CPU (reproducible everywhere), then moved.
    return tuple(torch.randn(shape, generator=gen).to(device, dtype) for _ in range(3))


@dataclass(frozen=True)
class AttentionCall:
    """One attention call to measure, on (batch, heads, length, head_dim) inputs."""

    method: str  # "naive" (lesson 05), "flash" (lesson 10, PyTorch) or "sdpa"
    length: int
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    dtype: str = "float32"
    is_causal: bool = True
    backward: bool = False  # True: forward and backward (a training step); False: forward only
    block_size: int = 64  # tile size of "flash"
    sdpa_backend: str | None = None  # for "sdpa": force one backend, e.g. "MATH"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES} (a string), got {self.dtype!r}")
        backend = self.sdpa_backend
        if backend is not None and (self.method != "sdpa" or backend not in SDPA_BACKENDS):
            raise ValueError(
                f"sdpa_backend is for method 'sdpa' and one of {SDPA_BACKENDS}, got "
                f"method={self.method!r}, sdpa_backend={self.sdpa_backend!r}"
            )
        sizes = (self.length, self.batch, self.heads, self.head_dim, self.block_size)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"length, batch, heads, head_dim and block_size must be ints >= 1: {self}")

    @property
    def input_bytes(self) -> int:
        """Bytes of q, k and v themselves (the measurement counts what comes on top)."""
        element = torch.empty((), dtype=getattr(torch, self.dtype)).element_size()
        return 3 * self.batch * self.heads * self.length * self.head_dim * element


def score_matrix_bytes(batch: int, heads: int, length: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of one (batch, heads, length, length) score tensor of `dtype`: grows like length²."""
    return batch * heads * length * length * torch.empty((), dtype=dtype).element_size()


def attention_step(call: AttentionCall, device: torch.device | str) -> Callable[[], None]:
    """Build the inputs of `call` on `device`; return a zero-argument function that runs it."""
    dtype = getattr(torch, call.dtype)
    q, k, v = make_inputs(call.batch, call.heads, call.length, call.head_dim, dtype, device)
    if call.method == "naive":
        forward = lambda: scaled_dot_product_attention(q, k, v, is_causal=call.is_causal)[0]
    elif call.method == "flash":
        forward = lambda: flash_attention(q, k, v, block_size=call.block_size, is_causal=call.is_causal)
    elif call.sdpa_backend is None:
        forward = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=call.is_causal)
    else:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = getattr(SDPBackend, call.sdpa_backend)

        def forward() -> torch.Tensor:
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=call.is_causal)

    if not call.backward:

        def step() -> None:
            with torch.no_grad():
                forward()

        return step
    for x in (q, k, v):
        x.requires_grad_(True)
    grad_out = torch.randn_like(q)  # the gradient arriving from the layers above

    def train_step() -> None:
        forward().backward(grad_out)
        for x in (q, k, v):
            x.grad = None  # free them, so that the next call allocates its gradients afresh

    return train_step


def can_measure(device: torch.device | str) -> bool:
    """True where `measure_peaks` works: CUDA, or a CPU under Linux (needs /proc)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available()
    linux = sys.platform.startswith("linux") and Path("/proc/self/clear_refs").exists()
    return device.type == "cpu" and linux


def resident_memory() -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident since the last reset), in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                values[key] = int(value.split()[0]) * 1024  # reported in kB
    return values


def peak_bytes(
    fn: Callable[[], object], device: torch.device | str, warmup: Callable[[], object] | None = None
) -> int:
    """Peak bytes allocated by fn() above those allocated before it, measured in this process,
    after one call of `warmup` (default: fn itself).

    On a CPU the result is exact only in a process started with MALLOC_MMAP_THRESHOLD_ set
    (see the module's doc); `measure_peaks` starts such a process for you.
    """
    device = torch.device(device)
    if not can_measure(device):
        raise RuntimeError(
            f"peak memory can be measured on CUDA or on a Linux CPU, not on {device} under "
            f"{sys.platform} (on Windows, run under WSL2); count_peaks counts tensor bytes on any CPU"
        )
    (warmup or fn)()  # thread pools, library workspaces and caches allocate once
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # queued work belongs to the measurement before this one
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM (the peak) to the current VmRSS
    before = resident_memory()["VmRSS"]
    fn()
    return max(0, resident_memory()["VmHWM"] - before)


def _peaks_here(calls: list[dict], device: str) -> list[int]:
    """In this process: the peak bytes of each call, one after the other."""
    peaks = []
    for fields in calls:
        call = AttentionCall(**fields)
        step = attention_step(call, device)
        # Warm up on a short sequence: the same code paths and libraries, at a fraction of
        # the cost of a second full-size call.
        warmup = attention_step(dataclasses.replace(call, length=min(call.length, 64)), device)
        peaks.append(peak_bytes(step, device, warmup))
        del step, warmup
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return peaks


_CHILD = (
    "import json, sys, torch\n"
    "torch.set_num_threads(1)\n"  # the peak does not depend on threads; one is quickest to start
    "from utils.memory import _peaks_here\n"
    "print(json.dumps(_peaks_here(json.loads(sys.argv[1]), 'cpu')))\n"
)


def measure_peaks(calls: Sequence[AttentionCall], device: torch.device | str = "cpu") -> list[int]:
    """Peak bytes of each call above its inputs: in this process on CUDA, in one fresh
    Python process for all the calls on a CPU."""
    device = torch.device(device)
    if not all(isinstance(c, AttentionCall) for c in calls):
        raise TypeError("measure_peaks takes a list of AttentionCall(method=..., length=...)")
    if not can_measure(device):
        peak_bytes(lambda: None, device)  # raises the explanation
    fields = [dataclasses.asdict(c) for c in calls]
    if device.type == "cuda":
        return _peaks_here(fields, str(device))
    return [int(n) for n in run_in_fresh_python(_CHILD, fields)]


# Kineto, the profiler's backend, prints "USDT: ... profiler_start" and "profiler_stop" to the
# process's stderr at every run (a CUDA build on a machine without a GPU adds "ERROR: ...
# gpuGetDeviceCount failed"), which a notebook shows in red as if the count had failed. Level 6
# silences it; Kineto reads the level once, at the process's first profiling run, so it stays
# silent for later runs in that process too.
KINETO_SILENT = "6"


def count_peaks(calls: Sequence[AttentionCall]) -> list[int]:
    """Peak bytes of tensors each call allocates above its inputs, on this process's CPU,
    counted from the allocations and frees that PyTorch's profiler records (any system)."""
    from torch.profiler import ProfilerActivity, profile

    if not all(isinstance(c, AttentionCall) for c in calls):
        raise TypeError("count_peaks takes a list of AttentionCall(method=..., length=...)")
    peaks, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # as in measure_peaks: some kernels allocate a buffer per thread
    quiet = "KINETO_LOG_LEVEL" not in os.environ  # a level the user chose is kept
    if quiet:
        os.environ["KINETO_LOG_LEVEL"] = KINETO_SILENT
    try:
        for call in calls:
            step = attention_step(call, "cpu")
            attention_step(dataclasses.replace(call, length=min(call.length, 64)), "cpu")()  # warm-up
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                step()
            peaks.append(_running_peak(prof.profiler.kineto_results.events()))
    finally:
        torch.set_num_threads(threads)
        if quiet:
            del os.environ["KINETO_LOG_LEVEL"]
    return peaks


def _running_peak(events: Sequence) -> int:
    """The largest running total of the profiler's "[memory]" events (+bytes allocated, -freed)."""
    cpu = torch.autograd.DeviceType.CPU
    changes = [e for e in events if e.name() == "[memory]" and e.device_type() == cpu]
    if not changes:
        raise RuntimeError("PyTorch's profiler recorded no CPU allocation: this build cannot count memory")
    live = peak = 0
    for event in sorted(changes, key=lambda e: e.start_ns()):  # in time order, across threads
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def run_in_fresh_python(child: str, payload: object) -> object:
    """Run the source `child` in a fresh Python process that can import `utils`, with
    `json.dumps(payload)` as sys.argv[1]; return the JSON its last output line holds.

    For CPU memory measurements: a fresh process holds nothing else, and the lowered mmap
    threshold makes large tensors come from (and return to) the OS, where RSS sees them.
    """
    root = str(Path(__file__).resolve().parents[1])  # the folder that holds `utils`
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", child, json.dumps(payload)],
        capture_output=True, text=True, env=env, cwd=root, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
