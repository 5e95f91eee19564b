"""`python -m utils.bench attention`: naive attention, FlashAttention (PyTorch and Triton)
and PyTorch's SDPA, forward pass, side by side in one run on whatever device is here.

For each length: time per call, throughput (TFLOP/s; a causal pass counts half the
flops), peak memory, and the largest difference from SDPA's output. Rows that would not
fit in memory print "OOM" or "skipped" instead of stopping the run.

    python -m utils.bench attention                      # GPU: L = 1k, 4k, 16k; bf16; B=4 H=16
    python -m utils.bench attention --lengths 256 1024   # CPU-sized
    python -m utils.bench attention --sweep              # also time each Triton config

Peak memory is measured by `utils.memory` (see there): on CUDA in this process
(`torch.cuda.max_memory_allocated()` above the inputs), on a Linux CPU in a fresh
subprocess through the kernel's peak-RSS counter. Where it cannot be measured (macOS,
Windows) the column says "n/a" (use a CUDA device there, or WSL2).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from utils import memory
from utils.bench import time_it
from utils.memory import make_inputs
from utils.models.attention import flash_attention, scaled_dot_product_attention

METHODS = ("naive", "flash", "triton", "sdpa")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Largest |output - SDPA's output| that still counts as the same function, per dtype.
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 5e-3, torch.float32: 1e-4}


def attention_fn(
    method: str,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    is_causal: bool,
    block_size: int = 64,
    config: object | None = None,
) -> Callable[[], Tensor]:
    """A zero-argument forward pass of `method` on q, k, v (B, H, L, Dh) -> (B, H, L, Dh)."""
    if method == "naive":  # lesson 05's attention: materialises the (L, L) weights
        return lambda: scaled_dot_product_attention(q, k, v, is_causal=is_causal)[0]
    if method == "flash":  # lesson 10's FlashAttention in PyTorch: tiles of block_size
        return lambda: flash_attention(q, k, v, block_size=block_size, is_causal=is_causal)
    if method == "triton":
        from utils.models.triton_attention import triton_flash_attention

        return lambda: triton_flash_attention(q, k, v, is_causal=is_causal, config=config)
    if method == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def attention_flops(batch: int, heads: int, length: int, head_dim: int, is_causal: bool) -> float:
    """Forward flops: two (L, L, Dh) matrix products, 2 flops per multiply-add; causal: half."""
    flops = 4.0 * batch * heads * length * length * head_dim
    return flops / 2 if is_causal else flops


# --------------------------------------------------------------------------------------
# Peak memory
# --------------------------------------------------------------------------------------


def peak_memory_bytes(
    method: str,
    *,
    batch: int,
    heads: int,
    length: int,
    head_dim: int = 64,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    is_causal: bool = False,
    block_size: int = 64,
) -> int:
    """Peak bytes one forward call of `method` ("naive", "flash" or "sdpa") allocates beyond
    its inputs, measured by `utils.memory.measure_peaks` (a fresh process on the CPU)."""
    call = memory.AttentionCall(method, length, batch=batch, heads=heads, head_dim=head_dim,
                                dtype=str(dtype).removeprefix("torch."), is_causal=is_causal,
                                block_size=block_size)
    return memory.measure_peaks([call], device)[0]


def _peak_column(method: str, fn: Callable[[], Tensor], length: int, args: argparse.Namespace,
                 device: torch.device) -> str:
    """The table's peak MiB of one row: the row's own call on CUDA (Triton included), a fresh
    process on a Linux CPU, "n/a" where peak memory cannot be measured."""
    if not memory.can_measure(device):
        return "n/a"
    if device.type == "cuda":

        def forward() -> None:
            with torch.no_grad():
                fn()

        peak = memory.peak_bytes(forward, device)
    else:  # "triton" never gets here: its rows are skipped without CUDA
        peak = peak_memory_bytes(method, batch=args.batch, heads=args.heads, length=length,
                                 head_dim=args.head_dim, dtype=DTYPES[args.dtype], device=device,
                                 is_causal=args.causal, block_size=args.block_size)
    return f"{peak / 2**20:.1f}"


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def _naive_bytes(batch: int, heads: int, length: int, dtype: torch.dtype) -> int:
    """What naive attention holds at its peak: about two (B, H, L, L) score tensors."""
    return 2 * batch * heads * length * length * torch.empty((), dtype=dtype).element_size()


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        if hasattr(os, "sysconf"):
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        # Windows without psutil: no cheap way to ask; try every row (one that does not fit
        # fails with the allocator's error, which the table prints, and the run goes on).
        return sys.maxsize


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    on_gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(
        prog="python -m utils.bench attention",
        description="Attention forward pass: naive vs FlashAttention (PyTorch, Triton) vs SDPA.",
    )
    parser.add_argument("--device", default="cuda" if on_gpu else "cpu")
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[1024, 4096, 16384] if on_gpu else [256, 1024]
    )
    parser.add_argument("--batch", type=int, default=4 if on_gpu else 1)
    parser.add_argument("--heads", type=int, default=16 if on_gpu else 4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16" if on_gpu else "fp32")
    parser.add_argument(
        "--no-causal", dest="causal", action="store_false", help="full attention instead of causal"
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--block-size",
        type=int,
        default=128 if on_gpu else 64,
        help="tile size of the PyTorch flash_attention",
    )
    parser.add_argument("--repeat", type=int, default=10 if on_gpu else 3)
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip peak-memory measurements (on the CPU each is a subprocess)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also time every config in triton_attention.SWEEP_CONFIGS",
    )
    return parser.parse_args(argv)  # fmt: skip


def _rows_for(method: str, args: argparse.Namespace, device: torch.device) -> list[tuple]:
    """(label, method, triton config) rows for one method."""
    if method != "triton":
        return [(method, method, None)]
    if device.type != "cuda":
        return [("triton", "skip:needs a CUDA GPU (tests run it in the interpreter)", None)]
    from utils.models import triton_attention as ta

    if ta.triton is None:
        return [("triton", "skip:Triton is not installed", None)]
    dtype = DTYPES[args.dtype]
    rows = [(f"triton {ta.default_config(args.head_dim, dtype, device)}", "triton", None)]
    if args.sweep:
        rows += [(f"triton {c}", "triton", c) for c in ta.SWEEP_CONFIGS]
    return rows


def _measure(
    label: str,
    method: str,
    config: object | None,
    length: int,
    args: argparse.Namespace,
    device: torch.device,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    ref: Tensor | None,
) -> tuple[str, bool]:
    """One table line, and whether its output matched SDPA's."""
    head = f"{label:<26}{length:>7}"
    if method.startswith("skip:"):
        return f"{head}  skipped: {method[5:]}", True
    dtype = DTYPES[args.dtype]
    need = _naive_bytes(args.batch, args.heads, length, dtype)
    if method == "naive" and need > 0.8 * _free_bytes(device):
        return f"{head}  skipped: needs ~{need / 2**30:.0f} GiB for the (L, L) scores", True
    fn = attention_fn(method, q, k, v, args.causal, args.block_size, config)
    try:
        with torch.no_grad():
            out = fn()  # also compiles the Triton kernel, outside the timings
            err = (out.float() - ref.float()).abs().max().item() if ref is not None else 0.0
            del out
            first = time_it(fn, repeat=1, warmup=0, device=device).median
            # Short calls on a GPU: time 10 back to back per sample, so that Python's launch
            # overhead overlaps the previous call's kernels instead of being counted. Long
            # calls (the PyTorch flash loop, naive at 16k): fewer samples keep the run short.
            inner = 10 if device.type == "cuda" and first < 0.01 else 1
            repeat = args.repeat if first < 0.2 else min(args.repeat, 3)

            def many() -> Tensor:
                for _ in range(inner):
                    out = fn()
                return out

            seconds = time_it(many, repeat=repeat, warmup=0, device=device).median / inner
        peak = _peak_column(method, fn, length, args, device) if args.memory else ""
    except torch.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return f"{head}  OOM", True
    except Exception as error:  # keep the table going; say what broke
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"{head}  failed: {type(error).__name__}: {first_line[:120]}", False
    tflops = attention_flops(args.batch, args.heads, length, args.head_dim, args.causal)
    tflops /= seconds * 1e12
    ok = err <= TOLERANCE[dtype]
    check = "ok" if ok else "MISMATCH"
    line = f"{head}{seconds * 1e3:>11.3f}{tflops:>9.2f}{peak:>11}{err:>11.1e}  {check}"
    return line, ok


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns 1 if an output differs from SDPA's or a row failed, else 0."""
    args = _parse(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    print(f"torch {torch.__version__}, triton {triton_version}, device: {_device_name(device)}")
    print(f"forward, {'causal' if args.causal else 'full'}, {args.dtype}, B={args.batch} "
          f"H={args.heads} Dh={args.head_dim}, flash block_size={args.block_size}, "
          f"median of {args.repeat}")  # fmt: skip
    print(f"{'method':<26}{'L':>7}{'ms':>11}{'TFLOP/s':>9}{'peak MiB':>11}{'max|Δ|':>11}  vs SDPA")
    all_ok = True
    for length in args.lengths:
        q, k, v = make_inputs(args.batch, args.heads, length, args.head_dim, dtype, device)
        with torch.no_grad():
            ref = F.scaled_dot_product_attention(q, k, v, is_causal=args.causal)
        for method in args.methods:
            for label, kind, config in _rows_for(method, args, device):
                line, ok = _measure(label, kind, config, length, args, device, q, k, v, ref)
                all_ok &= ok
                print(line, flush=True)
        del q, k, v, ref
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not all_ok:
        print("some rows failed or differ from SDPA beyond tolerance", file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
