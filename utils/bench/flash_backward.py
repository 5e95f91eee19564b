"""`python -m utils.bench flash_backward`: lesson 10's Triton FlashAttention, forward and
backward, against `F.scaled_dot_product_attention` (flash backend), side by side in one run.

For each shape it first checks the Triton output and gradients against SDPA's (relative
error ‖a - b‖ / ‖b‖ per tensor, on the same random inputs and output gradient), then times
the forward, the backward alone and forward + backward of both: the median of
`triton.testing.do_bench` (which warms up and clears the L2 cache before each run).

TFLOP/s count the matrix products, 2 flops per multiply-add: the forward does two, S = QKᵀ
and PV, 4·B·H·L²·D flops; the backward five (S again, dV, dP, dQ, dK), 2.5 times the
forward (the usual convention of the FlashAttention papers); a causal mask halves both.

    python -m utils.bench flash_backward             # GPU: the shapes below, bf16, causal
    python -m utils.bench flash_backward --sweep     # also time each config of SWEEP
    python -m utils.bench flash_backward --json results.json
    TRITON_INTERPRET=1 python -m utils.bench flash_backward   # CPU: a tiny float32 smoke run

Without a GPU (and without the interpreter) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.bench import time_it
from utils.bench.attention import DTYPES, attention_flops
from utils.memory import make_inputs


@dataclass(frozen=True)
class Shape:
    """One benchmark shape: q, k, v are (batch, heads, length, head_dim)."""

    name: str
    batch: int
    heads: int
    length: int
    head_dim: int

    def __str__(self) -> str:
        return f"B{self.batch} H{self.heads} L{self.length} D{self.head_dim}"


GPU_SHAPES = (
    Shape("CS336 leaderboard", 1, 16, 16384, 64),
    Shape("lesson 10", 4, 16, 4096, 64),  # utils.bench.attention's B and H at L = 4k
)
INTERPRETER_SHAPES = (Shape("smoke", 1, 2, 80, 16),)  # ragged: 80 is no multiple of 64
# Largest ‖Triton - SDPA‖ / ‖SDPA‖ per tensor that still counts as the same gradients.
TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 1e-2, torch.float32: 1e-4}
BACKWARD_FLOPS_PER_FORWARD = 2.5  # five (L, L, D) products against the forward's two


Attend = Callable[[Tensor, Tensor, Tensor], Tensor]


def flops(shape: Shape, is_causal: bool) -> dict[str, float]:
    """Matrix-product flops of the forward, backward and both (see the module doc)."""
    forward = attention_flops(shape.batch, shape.heads, shape.length, shape.head_dim, is_causal)
    backward = BACKWARD_FLOPS_PER_FORWARD * forward
    return {"fwd": forward, "bwd": backward, "fwd+bwd": forward + backward}


def relative_error(a: Tensor, b: Tensor) -> float:
    """‖a - b‖ / ‖b‖ in float32 (Frobenius norms)."""
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def sdpa_attend(is_causal: bool, dtype: torch.dtype, device: torch.device) -> tuple[Attend, str]:
    """SDPA restricted to its flash backend where that runs (dtype, device), else its default."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def flash(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)

    def default(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)

    probe = torch.randn(1, 1, 16, 16, device=device, dtype=dtype)
    try:
        flash(probe, probe, probe)
    except RuntimeError:  # no flash backend for this dtype or GPU (float32; a T4)
        return default, "SDPA (default backend)"
    return flash, "SDPA (flash)"


def _ms(fn: Callable[[], object], grads: list[Tensor], device: torch.device) -> float:
    """Median milliseconds of fn(), with the gradients of `grads` reset before each run."""
    if device.type == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grads, return_mode="median")

    def run() -> None:  # the interpreter's smoke run: the numbers only show the code runs
        for x in grads:
            x.grad = None
        fn()

    return time_it(run, repeat=1, warmup=0, device=device).median * 1e3


def timings(attend: Attend, q: Tensor, k: Tensor, v: Tensor, grad_out: Tensor) -> dict[str, float]:
    """Median ms of attend's forward (with autograd recording), backward alone, and both."""
    grads = [q, k, v]
    out = attend(q, k, v)
    return {
        "fwd": _ms(lambda: attend(q, k, v), grads, q.device),
        "bwd": _ms(lambda: out.backward(grad_out, retain_graph=True), grads, q.device),
        "fwd+bwd": _ms(lambda: attend(q, k, v).backward(grad_out), grads, q.device),
    }


def gradients(attend: Attend, q: Tensor, k: Tensor, v: Tensor, grad_out: Tensor) -> dict[str, Tensor]:
    """attend's output and its gradients dq, dk, dv for the output gradient grad_out."""
    out = attend(q, k, v)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), grad_out)
    return {"out": out.detach(), "dq": dq, "dk": dk, "dv": dv}


def errors_against(
    attend: Attend, reference: dict[str, Tensor], q: Tensor, k: Tensor, v: Tensor, grad_out: Tensor
) -> dict[str, float]:
    """Relative error of attend's output and gradients against the reference's, per tensor."""
    ours = gradients(attend, q, k, v, grad_out)
    return {name: relative_error(ours[name], reference[name]) for name in ours}


def _first_line(error: Exception) -> str:
    line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {line[:140]}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m utils.bench flash_backward",
        description="Triton FlashAttention forward + backward against SDPA (flash backend).",
    )
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="default: bf16 on a GPU, fp32 in the interpreter")
    parser.add_argument("--shape", type=int, nargs=4, action="append", metavar=("B", "H", "L", "D"),
                        help="a shape to time instead of the defaults (repeatable)")
    parser.add_argument("--no-causal", dest="causal", action="store_false",
                        help="full attention instead of causal")
    parser.add_argument("--sweep", action="store_true",
                        help="also time the backward of every config in triton_attention.SWEEP")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    return parser.parse_args(argv)  # fmt: skip


def _sweep(
    shape: Shape,
    is_causal: bool,
    reference: dict[str, Tensor],
    inputs: tuple[Tensor, Tensor, Tensor, Tensor],
    tolerance: float,
) -> list[dict[str, object]]:
    """Check and time the backward of each config in SWEEP; failures are reported, not raised."""
    from utils.models import triton_attention as ta

    results = []
    for config in ta.SWEEP:
        attend = lambda q, k, v, c=config: ta.triton_flash_attention(q, k, v, is_causal, backward_config=c)
        row: dict[str, object] = {"config": str(config), "bwd_ms": None, "error": None}
        try:
            errors = errors_against(attend, reference, *inputs)  # compiles, outside the timing
            row["max_relative_error"] = max(errors.values())
            if row["max_relative_error"] > tolerance:
                row["error"] = f"MISMATCH: {errors}"
            else:
                row["bwd_ms"] = timings(attend, *inputs)["bwd"]
        except Exception as error:  # e.g. out of shared memory: report it and go on
            row["error"] = _first_line(error)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        shown = f"{row['bwd_ms']:8.3f} ms" if row["bwd_ms"] is not None else f"failed: {row['error']}"
        print(f"  sweep {shape}: {str(config):<40} backward {shown}", flush=True)
        results.append(row)
    return results


def _measure_shape(
    shape: Shape, args: argparse.Namespace, dtype: torch.dtype, device: torch.device
) -> tuple[dict[str, object], bool]:
    """Check, then time SDPA and Triton at one shape; with --sweep, each backward config too."""
    from utils.models import triton_attention as ta

    q, k, v = (x.requires_grad_() for x in make_inputs(
        shape.batch, shape.heads, shape.length, shape.head_dim, dtype, device, seed=0))  # fmt: skip
    grad_out = make_inputs(shape.batch, shape.heads, shape.length, shape.head_dim, dtype, device, seed=1)[0]
    inputs = (q, k, v, grad_out)
    sdpa, sdpa_name = sdpa_attend(args.causal, dtype, device)
    config = ta.default_backward_config(shape.head_dim, dtype, device)
    triton_attend = lambda q, k, v: ta.triton_flash_attention(q, k, v, args.causal)
    record: dict[str, object] = {"shape": asdict(shape), "sdpa": sdpa_name, "triton_config": str(config)}

    reference = gradients(sdpa, *inputs)
    record["sdpa_ms"] = timings(sdpa, *inputs)
    tolerance = TOLERANCE[dtype]
    try:
        errors = errors_against(triton_attend, reference, *inputs)  # also compiles the kernels
        ok = max(errors.values()) < tolerance
        record["errors"] = errors
        shown = " ".join(f"{name} {error:.1e}" for name, error in errors.items())
        print(f"check {shape}: ‖Triton - SDPA‖ / ‖SDPA‖: {shown} "
              f"({'ok' if ok else 'MISMATCH'}, tolerance {tolerance:.0e})", flush=True)  # fmt: skip
        record["triton_ms"] = timings(triton_attend, *inputs)
    except Exception as error:  # e.g. a default config out of shared memory: say so, go on
        ok, record["triton_error"] = False, _first_line(error)
        print(f"check {shape}: Triton failed: {record['triton_error']}", flush=True)
    if args.sweep:
        sweep = _sweep(shape, args.causal, reference, inputs, tolerance)
        record["sweep"] = sweep
        timed = [row for row in sweep if row["bwd_ms"] is not None]
        if timed:
            best = min(timed, key=lambda row: row["bwd_ms"])
            best_config = next(c for c in ta.SWEEP if str(c) == best["config"])
            attend = lambda q, k, v: ta.triton_flash_attention(
                q, k, v, args.causal, backward_config=best_config
            )
            print(f"  sweep {shape}: best backward config {best['config']}", flush=True)
            try:
                record["best"] = {"config": best["config"], "ms": timings(attend, *inputs)}
            except Exception as error:  # pragma: no cover - it was just timed without error
                print(f"  sweep {shape}: the best config failed: {_first_line(error)}", flush=True)
    del q, k, v, grad_out, reference
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return record, ok


def _table(records: list[dict[str, object]], is_causal: bool) -> list[str]:
    """The final table: one line per shape (and per best sweep config), SDPA beside Triton."""
    lines = [
        f"{'shape':<40}{'SDPA ms: fwd':>13}{'bwd':>8}{'f+b':>8}{'Triton ms: fwd':>16}{'bwd':>8}"
        f"{'f+b':>8}{'Triton/SDPA':>13}{'TFLOP/s: SDPA':>15}{'Triton':>8}  Triton backward config"
    ]
    for record in records:
        shape = Shape(**record["shape"])
        total = flops(shape, is_causal)["fwd+bwd"]
        sdpa = record["sdpa_ms"]
        rows = [(f"{shape} ({shape.name})", record.get("triton_ms"), record["triton_config"])]
        if "best" in record:
            rows.append(("  best of --sweep", record["best"]["ms"], record["best"]["config"]))
        for label, ours, config in rows:
            if ours is None:
                lines.append(f"{label:<40}{sdpa['fwd']:>13.3f}{sdpa['bwd']:>8.3f}{sdpa['fwd+bwd']:>8.3f}"
                             f"  Triton failed: {record['triton_error']}")  # fmt: skip
                continue
            lines.append(
                f"{label:<40}{sdpa['fwd']:>13.3f}{sdpa['bwd']:>8.3f}{sdpa['fwd+bwd']:>8.3f}"
                f"{ours['fwd']:>16.3f}{ours['bwd']:>8.3f}{ours['fwd+bwd']:>8.3f}"
                f"{ours['fwd+bwd'] / sdpa['fwd+bwd']:>12.2f}x"
                f"{total / sdpa['fwd+bwd'] / 1e9:>15.1f}{total / ours['fwd+bwd'] / 1e9:>8.1f}  {config}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the checks, then the table; returns 1 if Triton failed or differs from SDPA, else 0."""
    args = _parse(argv)
    from utils.models import triton_attention as ta

    if ta.triton is None:
        print("flash_backward needs Triton (it comes with PyTorch's CUDA wheels on Linux); "
              "not installed here, nothing measured")  # fmt: skip
        return 0
    if torch.cuda.is_available() and not ta._is_interpreted():
        device, dtype = torch.device("cuda"), DTYPES[args.dtype or "bf16"]
        shapes, where = GPU_SHAPES, torch.cuda.get_device_name()
    elif ta._is_interpreted():
        device, dtype = torch.device("cpu"), DTYPES[args.dtype or "fp32"]
        shapes, where = INTERPRETER_SHAPES, "CPU, Triton's interpreter (a smoke run: times mean nothing)"
    else:
        print("flash_backward needs a CUDA GPU: nothing measured here. (For a tiny smoke run on the "
              "CPU, set TRITON_INTERPRET=1: python -m utils.bench flash_backward)")  # fmt: skip
        return 0
    if args.shape:
        shapes = tuple(Shape("--shape", *s) for s in args.shape)
    import triton

    print(f"torch {torch.__version__}, triton {triton.__version__}, device: {where}")
    timer = "triton.testing.do_bench" if device.type == "cuda" else "utils.bench.time_it"
    print(f"{'causal' if args.causal else 'full'} attention, {str(dtype)[6:]}; times: median of "
          f"{timer}; TFLOP/s: fwd 4·B·H·L²·D, bwd 2.5x fwd"
          f"{', half of each (causal)' if args.causal else ''}", flush=True)  # fmt: skip
    records, all_ok = [], True
    for shape in shapes:
        record, ok = _measure_shape(shape, args, dtype, device)
        records.append(record)
        all_ok &= ok
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"torch": torch.__version__, "triton": triton.__version__, "device": where,
                       "dtype": str(dtype), "causal": args.causal,
                       "flops": "fwd 4*B*H*L^2*D, bwd 2.5x fwd, halved when causal",
                       "shapes": records}, file, indent=2)  # fmt: skip
    print()
    print("\n".join(_table(records, args.causal)), flush=True)
    if not all_ok:
        print("Triton failed, or its output or gradients differ from SDPA's beyond tolerance",
              file=sys.stderr, flush=True)  # fmt: skip
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
