"""utils.models.triton_attention, lesson 10: the Triton kernels equal SDPA, in values and
gradients.

Without a GPU the kernel runs in Triton's interpreter, which Triton selects when the
kernels are decorated (at import), so those checks run once in a subprocess started with
TRITON_INTERPRET=1 and the tests below read its results.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import utils.models.triton_attention as triton_attention
from utils.models.triton_attention import TritonAttentionConfig, triton_flash_attention

ROOT = Path(triton_attention.__file__).resolve().parents[2]
HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")

# name -> (B, H, Lq, Lk, D, is_causal, (block_m, block_n) or None for the default). The tiles
# are the forward's, and the backward's: dK/dV programs of block_m keys streaming block_n
# queries, dQ programs of block_m queries streaming block_n keys.
CASES = {
    "full attention, lengths that are multiples of the blocks": (1, 2, 64, 64, 16, False, None),
    "full attention, ragged lengths, Lq < Lk": (2, 1, 37, 53, 32, False, None),
    "causal, ragged square": (1, 2, 45, 45, 16, True, None),
    "causal, several blocks on both sides of the diagonal": (1, 1, 100, 100, 16, True, None),
    "causal, Lq < Lk, top-left aligned": (1, 1, 20, 50, 16, True, None),
    "causal, Lq > Lk, top-left aligned": (1, 1, 50, 20, 16, True, None),
    "causal, one query": (1, 1, 1, 17, 16, True, None),
    "causal, head_dim 64": (1, 1, 40, 40, 64, True, None),
    "full attention, head_dim 128": (1, 1, 24, 40, 128, False, None),
    "causal, 64x32 tiles": (1, 1, 70, 70, 16, True, (64, 32)),
}

_SCRIPT = r"""
import contextlib, io, json, math, os, sys, tempfile, torch, torch.nn.functional as F
import utils.models.triton_attention as ta
from utils.bench import flash_backward
from utils.models.triton_attention import (
    TritonAttentionConfig, TritonBackwardConfig, triton_flash_attention)
def error(a, b):  # largest difference, relative to the largest entry of the reference
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-3)).item()
def probabilities(q, k, causal):  # (B, H, Lq, Lk), the naive way, for the reference values
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:  # top-left aligned: key j is visible from query i when j <= i
        hidden = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(hidden, float("-inf"))
    return scores
results = {"forward": {}, "gradients": {}}
cases = dict(json.loads(sys.argv[1]))
cases["non-contiguous"] = None
for name, case in cases.items():
    gen = torch.Generator().manual_seed(0)
    if case is None:  # (B, L, H, D) storage seen as (B, H, L, D), and so is the output gradient
        q, k, v, grad_out = (torch.randn(2, 33, 2, 16, generator=gen).transpose(1, 2) for _ in range(4))
        causal, config, backward_config = True, None, None
    else:
        B, H, Lq, Lk, D, causal, tiles = case
        q, k, v, grad_out = (torch.randn(B, H, L, D, generator=gen) for L in (Lq, Lk, Lk, Lq))
        config = TritonAttentionConfig(*tiles, 4, 1) if tiles else None
        backward_config = TritonBackwardConfig(*tiles, *tiles, 4, 1) if tiles else None
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    out = triton_flash_attention(q, k, v, causal, config, backward_config)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    results["forward"][name] = (out - expected).abs().max().item()
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    expected_grads = torch.autograd.grad(expected, (q, k, v), grad_out)
    # Relative to the largest entry of all three reference gradients: where one gradient is zero
    # in exact arithmetic (one query that sees one key: dS = P (dP - delta) = 0, so dq = dk = 0),
    # both sides hold rounding noise (about 1e-7), which its own largest entry cannot scale.
    scale = max(g.abs().max() for g in expected_grads).clamp_min(1e-3)
    results["gradients"][name] = {
        n: ((a - b).abs().max() / scale).item() for n, a, b in zip(("dq", "dk", "dv"), grads, expected_grads)}
# The forward's lse2 and the backward's delta, against their definitions.
gen = torch.Generator().manual_seed(1)
q, k, v, grad_out = (torch.randn(1, 2, L, 32, generator=gen) for L in (50, 20, 20, 50))
out, lse = ta._forward(q, k, v, True, ta.default_config(32, q.dtype, q.device), with_lse=True)
scores = probabilities(q, k, True)
results["lse2 - log2(e) logsumexp"] = (lse - ta.LOG2_E * scores.logsumexp(-1)).abs().max().item()
p = scores.softmax(-1)
rowsum_p_dp = (p * (grad_out @ v.transpose(-2, -1))).sum(-1)  # Σ_j P_ij dP_ij
results["delta - rowsum(P dP)"] = (ta._backward_delta(out, grad_out) - rowsum_p_dp).abs().max().item()
# When is there a backward? Only when an input requires grad and grad mode is on.
q, k, v = (torch.randn(1, 1, 20, 16, generator=gen) for _ in range(3))
names = {"no input requires grad": triton_flash_attention(q, k, v).grad_fn}
with torch.no_grad():
    names["under torch.no_grad"] = triton_flash_attention(q.requires_grad_(), k, v).grad_fn
names["q requires grad"] = triton_flash_attention(q, k, v).grad_fn
results["grad_fn"] = {name: type(fn).__name__ if fn else None for name, fn in names.items()}
# Only v requires grad: the dq kernel is skipped, dv is still right.
v.requires_grad_()
out = triton_flash_attention(q.detach(), k, v, is_causal=True)
expected = F.scaled_dot_product_attention(q.detach(), k, v, is_causal=True)
results["only v requires grad"] = error(*(torch.autograd.grad(o.sum(), v)[0] for o in (out, expected)))
# A central difference along a random direction u equals <gradient, u> (gradcheck's idea).
q, k, v, grad_out, u_q, u_k, u_v = (torch.randn(1, 2, 37, 16, generator=gen) for _ in range(7))
f = lambda q, k, v: (triton_flash_attention(q, k, v, is_causal=True) * grad_out).sum().item()
eps = 1e-2
plus, minus = f(q + eps * u_q, k + eps * u_k, v + eps * u_v), f(q - eps * u_q, k - eps * u_k, v - eps * u_v)
numeric = (plus - minus) / (2 * eps)
q, k, v = (x.requires_grad_() for x in (q, k, v))
dq, dk, dv = torch.autograd.grad(triton_flash_attention(q, k, v, is_causal=True), (q, k, v), grad_out)
analytic = ((dq * u_q).sum() + (dk * u_k).sum() + (dv * u_v).sum()).item()
results["directional derivative"] = abs(numeric - analytic) / abs(analytic)
try:
    triton_flash_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    results["bfloat16"] = "no error"
except TypeError as err:
    results["bfloat16"] = str(err)
# The benchmark's smoke run in the interpreter, at a tiny shape, with its sweep.
path = os.path.join(tempfile.mkdtemp(), "flash_backward.json")
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    code = flash_backward.main(["--shape", "1", "1", "24", "16", "--sweep", "--json", path])
with open(path) as file:
    results["bench"] = {"code": code, "printed": printed.getvalue(), "json": json.load(file)}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def interpreted() -> dict[str, object]:
    """The kernels' results under TRITON_INTERPRET=1 on the CPU, from one subprocess."""
    if not HAS_TRITON:
        pytest.skip("Triton is not installed")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(CASES)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    if "only 0-dimensional arrays can be converted to Python scalars" in done.stderr:
        import numpy
        import triton

        pytest.skip(
            f"Triton {triton.__version__}'s interpreter calls int() on 1-element arrays, which "
            f"NumPy {numpy.__version__} rejects (Triton 3.9's interpreter works)"
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_triton
@pytest.mark.slow
@pytest.mark.parametrize("case", [*CASES, "non-contiguous"])
def test_interpreted_kernel_equals_sdpa(interpreted: dict[str, object], case: str) -> None:
    error = interpreted["forward"][case]
    assert error < 1e-5, f"{case}: max |out - SDPA| = {error}"


@needs_triton
@pytest.mark.slow
@pytest.mark.parametrize("case", [*CASES, "non-contiguous"])
def test_interpreted_gradients_equal_sdpa(interpreted: dict[str, object], case: str) -> None:
    errors = interpreted["gradients"][case]  # max |Triton - SDPA| / the largest SDPA gradient entry
    assert max(errors.values()) < 1e-4, f"{case}: {errors}"


@needs_triton
@pytest.mark.slow
def test_forward_saves_the_log_sum_exp_in_base_2(interpreted: dict[str, object]) -> None:
    # lse2 = log2(e) · logsumexp of the scaled, masked scores (causal, Lq > Lk, ragged).
    assert interpreted["lse2 - log2(e) logsumexp"] < 1e-5


@needs_triton
@pytest.mark.slow
def test_delta_is_the_rowsum_of_p_times_dp(interpreted: dict[str, object]) -> None:
    # The kernel computes rowsum(dO ∘ O); the softmax's backward needs rowsum(P ∘ dP).
    assert interpreted["delta - rowsum(P dP)"] < 1e-5


@needs_triton
@pytest.mark.slow
def test_a_backward_exists_only_when_a_gradient_is_needed(interpreted: dict[str, object]) -> None:
    assert interpreted["grad_fn"] == {
        "no input requires grad": None,
        "under torch.no_grad": None,
        "q requires grad": "TritonFlashAttentionBackward",
    }
    assert interpreted["only v requires grad"] < 1e-4


@needs_triton
@pytest.mark.slow
def test_gradients_agree_with_a_central_difference(interpreted: dict[str, object]) -> None:
    assert interpreted["directional derivative"] < 1e-3


@needs_triton
@pytest.mark.slow
def test_interpreter_rejects_bfloat16(interpreted: dict[str, object]) -> None:
    assert "float32 only" in interpreted["bfloat16"]


@needs_triton
@pytest.mark.slow
def test_backward_benchmark_runs_in_the_interpreter(interpreted: dict[str, object]) -> None:
    bench = interpreted["bench"]
    assert bench["code"] == 0, bench["printed"]
    last_lines = bench["printed"].strip().splitlines()[-3:]  # the table comes last
    assert last_lines[0].startswith("shape") and "B1 H1 L24 D16" in last_lines[1], last_lines
    assert "best of --sweep" in last_lines[2]
    (record,) = bench["json"]["shapes"]
    assert max(record["errors"].values()) < 1e-4
    assert set(record["triton_ms"]) == {"fwd", "bwd", "fwd+bwd"}
    assert len(record["sweep"]) == len(triton_attention.SWEEP)
    assert all(row["error"] is None for row in record["sweep"]), record["sweep"]


def test_importing_the_attention_modules_does_not_import_triton() -> None:
    code = (
        "import sys, utils.models.attention, utils.models.positions; print('triton' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_without_triton_the_wrapper_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` fail
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location(
        "triton_attention_copy", triton_attention.__file__
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.triton is None
    q = torch.randn(1, 1, 16, 16)
    with pytest.raises(RuntimeError, match="needs Triton"):
        module.triton_flash_attention(q, q, q)


@needs_triton
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="this process interprets")
def test_cpu_tensors_without_the_interpreter_are_rejected() -> None:
    q = torch.randn(1, 1, 16, 16)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        triton_flash_attention(q, q, q)


@needs_triton
def test_unsupported_head_dim_is_rejected() -> None:
    q = torch.randn(1, 1, 16, 48)
    with pytest.raises(ValueError, match=r"head dim 48 is not supported.*\(16, 32, 64, 128\)"):
        triton_flash_attention(q, q, q)


@needs_triton
def test_block_m_must_be_a_multiple_of_block_n() -> None:
    q = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match="block_m a multiple of block_n"):
        triton_flash_attention(q, q, q, config=TritonAttentionConfig(32, 64))


@needs_triton
def test_backward_blocks_must_nest() -> None:
    q = torch.randn(1, 1, 16, 16, requires_grad=True)
    bad = triton_attention.TritonBackwardConfig(block_n_kv=64, block_m_kv=128)  # keys < queries
    with pytest.raises(ValueError, match="block_n_kv a multiple of block_m_kv"):
        triton_flash_attention(q, q, q, backward_config=bad)


@pytest.mark.parametrize("head_dim", triton_attention.SUPPORTED_HEAD_DIMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_default_backward_config_fits_the_shared_memory(monkeypatch, head_dim, dtype) -> None:
    # T4, RTX 30xx / L4, A100, H100 / H200: per-block shared memory, in bytes.
    for kib in (64, 99, 163, 227):
        monkeypatch.setattr(triton_attention, "_shared_memory_bytes", lambda device, kib=kib: kib * 1024)
        config = triton_attention.default_backward_config(head_dim, dtype, torch.device("cuda"))
        element_size = torch.empty((), dtype=dtype).element_size()
        assert triton_attention.backward_shared_bytes(config, head_dim, element_size) <= kib * 1024
        triton_attention._check_backward_config(config)  # and its blocks nest
    if head_dim == 64 and dtype != torch.float32:  # on Hopper: FlashAttention-2's tiles
        assert config == triton_attention.TritonBackwardConfig(128, 64, 128, 64, 8, 2)


@needs_triton
def test_mismatched_shapes_are_rejected() -> None:
    q = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"q \(1, 1, 16, 16\), k \(1, 2, 16, 16\)"):
        triton_flash_attention(q, torch.randn(1, 2, 16, 16), torch.randn(1, 2, 16, 16))


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("is_causal", [False, True])
def test_gpu_kernel_equals_sdpa(dtype: torch.dtype, is_causal: bool) -> None:
    if dtype == torch.bfloat16 and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("bfloat16 needs an Ampere or newer GPU")
    gen = torch.Generator().manual_seed(0)
    for lq, lk, d in [(1000, 1000, 64), (257, 700, 128), (700, 257, 32), (33, 33, 16)]:
        q, k, v = (torch.randn(2, 3, n, d, generator=gen).cuda().to(dtype) for n in (lq, lk, lk))
        out = triton_flash_attention(q, k, v, is_causal=is_causal)
        expected = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), is_causal=is_causal
        )
        tol = 1e-4 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out.float(), expected, atol=tol, rtol=tol)


def _output_and_gradients(attend, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          grad_out: torch.Tensor) -> list[torch.Tensor]:  # fmt: skip
    """[out, dq, dk, dv] of attend on fresh leaves holding q, k, v, in float64."""
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    out = attend(q, k, v)
    return [t.double() for t in (out, *torch.autograd.grad(out, (q, k, v), grad_out))]


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("is_causal", [False, True])
def test_gpu_gradients_equal_sdpa(dtype: torch.dtype, is_causal: bool) -> None:
    # Against float64 attention: Triton's error in half precision is about that of SDPA's
    # own kernels in the same dtype (within 3x); in float32 (exact products) it is tiny.
    if dtype == torch.bfloat16 and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("bfloat16 needs an Ampere or newer GPU")
    gen = torch.Generator().manual_seed(0)
    for lq, lk, d in [(1000, 1000, 64), (257, 700, 128), (700, 257, 32), (33, 33, 16)]:
        q, k, v, grad_out = (
            torch.randn(2, 3, n, d, generator=gen).cuda().to(dtype) for n in (lq, lk, lk, lq)
        )
        exact = _output_and_gradients(  # float64 leaves: their gradients stay float64
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=is_causal),
            *(x.double() for x in (q, k, v, grad_out)),
        )  # fmt: skip
        ours = _output_and_gradients(
            lambda q, k, v: triton_flash_attention(q, k, v, is_causal=is_causal), q, k, v, grad_out
        )
        theirs = _output_and_gradients(
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=is_causal),
            q, k, v, grad_out,
        )  # fmt: skip
        for name, a, b, c in zip(("out", "dq", "dk", "dv"), ours, theirs, exact, strict=True):
            where = f"{name}, Lq={lq} Lk={lk} D={d}, {dtype}, causal={is_causal}"
            if dtype == torch.float32:
                assert (a - c).abs().max() <= 1e-4 * c.abs().max(), where
            else:
                ours_error, sdpa_error = _relative_error(a, c), _relative_error(b, c)
                assert ours_error < max(3 * sdpa_error, 2e-3) and ours_error < 2e-2, (
                    f"{where}: Triton {ours_error:.1e} against SDPA's {sdpa_error:.1e}"
                )


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_backward_is_deterministic() -> None:
    # Each kernel owns what it writes (no atomics): the same inputs give the same bits.
    dtype = torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float16
    gen = torch.Generator().manual_seed(0)
    q, k, v, grad_out = (torch.randn(2, 4, 1000, 64, generator=gen).cuda().to(dtype) for _ in range(4))
    attend = lambda q, k, v: triton_flash_attention(q, k, v, is_causal=True)
    first = _output_and_gradients(attend, q, k, v, grad_out)
    second = _output_and_gradients(attend, q, k, v, grad_out)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("head_dim", [64, 128])
def test_gpu_gradients_agree_with_a_central_difference(head_dim: int) -> None:
    # gradcheck's idea in float32 (the kernel has no float64): along a random direction u,
    # (f(x + eps u) - f(x - eps u)) / 2 eps = <gradient, u>.
    gen = torch.Generator().manual_seed(0)
    q, k, v, grad_out, *u = (
        torch.randn(1, 2, 300, head_dim, generator=gen).cuda() for _ in range(7)
    )
    f = lambda q, k, v: (triton_flash_attention(q, k, v, is_causal=True) * grad_out).double().sum()
    eps = 1e-2
    plus = f(*(x + eps * d for x, d in zip((q, k, v), u, strict=True)))
    minus = f(*(x - eps * d for x, d in zip((q, k, v), u, strict=True)))
    numeric = ((plus - minus) / (2 * eps)).item()
    grads = _output_and_gradients(
        lambda q, k, v: triton_flash_attention(q, k, v, is_causal=True), q, k, v, grad_out
    )[1:]
    analytic = sum((g * d.double()).sum() for g, d in zip(grads, u, strict=True)).item()
    assert abs(numeric - analytic) < 1e-3 * abs(analytic), (numeric, analytic)


def test_backward_benchmark_without_a_gpu_says_so(capsys) -> None:
    if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("this machine can run the benchmark")
    from utils.bench import flash_backward

    assert flash_backward.main([]) == 0
    assert "needs" in capsys.readouterr().out
