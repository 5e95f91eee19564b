"""utils.models.triton_attention, lesson 10: the Triton kernel equals SDPA.

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

# name -> (B, H, Lq, Lk, D, is_causal, (block_m, block_n) or None for the default)
CASES = {
    "full attention, lengths that are multiples of the blocks": (1, 2, 64, 64, 16, False, None),
    "full attention, ragged lengths, Lq < Lk": (2, 1, 37, 53, 32, False, None),
    "causal, ragged square": (1, 2, 45, 45, 16, True, None),
    "causal, Lq < Lk, top-left aligned": (1, 1, 20, 50, 16, True, None),
    "causal, Lq > Lk, top-left aligned": (1, 1, 50, 20, 16, True, None),
    "causal, one query": (1, 1, 1, 17, 16, True, None),
    "causal, head_dim 64": (1, 1, 40, 40, 64, True, None),
    "full attention, head_dim 128": (1, 1, 24, 40, 128, False, None),
    "causal, 64x32 tiles": (1, 1, 70, 70, 16, True, (64, 32)),
}

_SCRIPT = r"""
import json, sys, torch, torch.nn.functional as F
from utils.models.triton_attention import TritonAttentionConfig, triton_flash_attention
def error(out, q, k, v, causal):
    return (out - F.scaled_dot_product_attention(q, k, v, is_causal=causal)).abs().max().item()
results = {}
for name, (B, H, Lq, Lk, D, causal, tiles) in json.loads(sys.argv[1]).items():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, L, D, generator=gen) for L in (Lq, Lk, Lk))
    config = TritonAttentionConfig(*tiles, 4, 1) if tiles else None
    out = triton_flash_attention(q, k, v, is_causal=causal, config=config)
    results[name] = error(out, q, k, v, causal)
# Non-contiguous views: (B, L, H, D) storage seen as (B, H, L, D).
q, k, v = (torch.randn(2, 33, 2, 16).transpose(1, 2) for _ in range(3))
out = triton_flash_attention(q, k, v, is_causal=True)
results["non-contiguous"] = error(out, q, k, v, True)
try:
    triton_flash_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    results["bfloat16"] = "no error"
except TypeError as error:
    results["bfloat16"] = str(error)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def interpreted() -> dict[str, object]:
    """The kernel's results under TRITON_INTERPRET=1 on the CPU, from one subprocess."""
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
    assert interpreted[case] < 1e-5, f"{case}: max |out - SDPA| = {interpreted[case]}"


@needs_triton
@pytest.mark.slow
def test_interpreter_rejects_bfloat16(interpreted: dict[str, object]) -> None:
    assert "float32 only" in interpreted["bfloat16"]


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
