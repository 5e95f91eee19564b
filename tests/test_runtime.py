"""utils.setup: seeds, device and the size profile."""

from __future__ import annotations

import os

import pytest
import torch

import utils
from utils import runtime
from utils.runtime import Profile, pick_profile


def test_setup_repeats_random_numbers(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    utils.setup(seed=3, verbose=False)
    first = torch.randn(4)
    utils.setup(seed=3, verbose=False)
    assert torch.equal(first, torch.randn(4))


def test_device_can_be_forced(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    device, _ = utils.setup(verbose=False)
    assert device == torch.device("cpu")


def test_profile_is_grading_under_nbgrader(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert pick_profile(torch.device("cuda")).name == "grading"
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert pick_profile(torch.device("cuda")).name == "gpu"
    assert pick_profile(torch.device("cpu")).name == "cpu"


def test_profile_choose_falls_back_to_cpu_sizes() -> None:
    assert Profile("gpu").choose(cpu=1, gpu=2, grading=0) == 2
    assert Profile("grading").choose(cpu=1) == 1
    assert Profile("grading").choose(cpu=1, grading=0) == 0


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        Profile("laptop")


# --------------------------------------------------------------------------------------
# The T4 switches: COURSE_NO_BF16 and COURSE_GPU_MEMORY_GIB
# --------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_no_bf16_switch_picks_float16(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_NO_BF16", raising=False)
    assert runtime.half_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv("COURSE_NO_BF16", "1")
    assert not runtime.supports_bf16("cpu")
    assert runtime.half_dtype("cpu") == torch.float16
    assert runtime.half_dtype("cuda") == torch.float16  # decided before asking the GPU
    monkeypatch.setenv("COURSE_NO_BF16", "0")  # "0", "false", "no" or empty switch it off
    assert runtime.half_dtype("cpu") == torch.bfloat16


def test_mixed_precision_of_the_distributed_trainer_follows_the_switch(monkeypatch) -> None:
    from utils.distributed.train import amp_dtype

    monkeypatch.setenv("COURSE_NO_BF16", "1")
    assert amp_dtype("auto", torch.device("cuda")) == torch.float16
    assert amp_dtype("auto", torch.device("cpu")) is None
    assert amp_dtype("bf16", torch.device("cuda")) == torch.bfloat16  # asked for by name: kept


def test_memory_cap_is_read_in_gib(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_GPU_MEMORY_GIB", raising=False)
    assert runtime.gpu_memory_cap_bytes() is None
    monkeypatch.setenv("COURSE_GPU_MEMORY_GIB", "15")
    assert runtime.gpu_memory_cap_bytes() == 15 * 2**30
    monkeypatch.setenv("COURSE_GPU_MEMORY_GIB", "0.5")
    assert runtime.gpu_memory_cap_bytes() == 2**29


@pytest.mark.parametrize("value", ["fifteen", "-1", "0"])
def test_a_bad_memory_cap_says_what_is_expected(monkeypatch, value: str) -> None:
    monkeypatch.setenv("COURSE_GPU_MEMORY_GIB", value)
    with pytest.raises(ValueError, match="COURSE_GPU_MEMORY_GIB must be"):
        runtime.gpu_memory_cap_bytes()


def test_memory_cap_is_harmless_on_the_cpu(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COURSE_GPU_MEMORY_GIB", "15")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    utils.setup(verbose=True)
    assert "capped" not in capsys.readouterr().out  # nothing to cap on a CPU, nothing said


@needs_cuda
def test_gpu_memory_cap_makes_the_allocator_refuse_more(monkeypatch) -> None:
    """Run in a fresh process: the cap is a per-process setting of PyTorch's allocator."""
    import subprocess
    import sys

    code = (
        "import torch, utils\n"
        "device, _ = utils.setup(verbose=True)\n"
        "from utils import runtime\n"
        "assert runtime.gpu_memory_bytes(device) == 2**30\n"
        "small = torch.empty(512 * 2**20, dtype=torch.uint8, device=device)\n"
        "try:\n"
        "    torch.empty(2**30, dtype=torch.uint8, device=device)\n"
        "except torch.OutOfMemoryError:\n"
        "    print('refused')\n"
    )
    env = dict(os.environ, COURSE_GPU_MEMORY_GIB="1", COURSE_NO_BF16="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "GPU memory capped at 1.0 GiB | no bfloat16" in done.stdout
    assert done.stdout.strip().endswith("refused")


def test_apple_mps_is_used_only_when_asked_for(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.pick_device() == torch.device("cpu")  # untested on MPS: not picked by itself
    monkeypatch.setenv("COURSE_DEVICE", "mps")
    assert runtime.pick_device() == torch.device("mps")
