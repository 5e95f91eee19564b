"""Seeding, device selection and the size profile that notebooks read.

A notebook never hard-codes its sizes: it asks the profile, so that the same notebook
runs in about a minute on a 2-core CPU, scales up on a GPU, and shrinks to seconds when
nbgrader grades a submission.

Two environment variables make a large GPU behave like a small one, so that a notebook
that would not fit or not run on Colab's or Kaggle's free T4 is found on any GPU
(`make gpu-check` sets both for its T4 run):
- `COURSE_GPU_MEMORY_GIB=14`: this process may use at most 14 GiB of the GPU (PyTorch's
  allocator raises "CUDA out of memory" beyond it, as a T4 would: sold as 16 GB, it reports a
  total of 14.74 GiB on Colab, 14.56 on Google Cloud, and the CUDA context takes a few hundred
  MiB of that outside the allocator);
- `COURSE_NO_BF16=1`: the course treats the GPU as one without bfloat16 (a T4), and picks
  float16 wherever it would pick bfloat16.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

PROFILES = ("grading", "cpu", "gpu")
GPU_MEMORY_ENV = "COURSE_GPU_MEMORY_GIB"
SEED_ENV = "COURSE_SEED"
NO_BF16_ENV = "COURSE_NO_BF16"


def is_grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def run_seed(seed: int = 0) -> int:
    """`seed` shifted by `COURSE_SEED` (unset: `seed` itself).

    Every seed a claim depends on goes through here, so that `COURSE_SEED=s` draws new weights,
    data and batch orders everywhere; `make claims` reruns the lessons with s = 0..4 to check
    that no claim rests on one lucky draw.
    """
    value = os.environ.get(SEED_ENV, "").strip()
    try:
        return seed + int(value or 0)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be an integer such as 3, got {value!r}") from None


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so that runs repeat."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def pick_device(prefer: str | None = None) -> torch.device:
    """A CUDA GPU if there is one, else the CPU (`COURSE_DEVICE` overrides).

    Apple's MPS is used only when asked for (`COURSE_DEVICE=mps`): the course has not been
    run on it yet, and some of its claims (timings, memory) are measured on CUDA or the CPU.
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def supports_bf16(device: torch.device | str) -> bool:
    """True where bfloat16 runs natively: Ampere and newer GPUs, and CPUs; False on older
    GPUs such as the T4 (and wherever `COURSE_NO_BF16` is set)."""
    device = torch.device(device)
    if _flag(NO_BF16_ENV):
        return False
    if device.type != "cuda":
        return device.type == "cpu"
    try:  # recent PyTorch also reports emulated bf16, which is slow: ask for the hardware
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # PyTorch < 2.3 reports hardware support only
        return torch.cuda.is_bf16_supported()


def half_dtype(device: torch.device | str) -> torch.dtype:
    """The 16-bit float for mixed precision here: bfloat16 where supported, else float16."""
    return torch.bfloat16 if supports_bf16(device) else torch.float16


def gpu_memory_cap_bytes() -> int | None:
    """The per-process GPU memory cap asked for by `COURSE_GPU_MEMORY_GIB`, or None."""
    value = os.environ.get(GPU_MEMORY_ENV, "").strip()
    if not value:
        return None
    try:
        gib = float(value)
    except ValueError:
        raise ValueError(f"{GPU_MEMORY_ENV} must be a number of GiB such as 15, got {value!r}") from None
    if gib <= 0:
        raise ValueError(f"{GPU_MEMORY_ENV} must be positive, got {value!r}")
    return int(gib * 2**30)


def gpu_memory_bytes(device: torch.device | str) -> int:
    """Bytes of GPU memory this process may use: the card's total, or the cap if lower."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"gpu_memory_bytes needs a CUDA device, got {device}")
    total = torch.cuda.get_device_properties(device).total_memory
    cap = gpu_memory_cap_bytes()
    return total if cap is None else min(total, cap)


def apply_gpu_memory_cap(device: torch.device | str) -> None:
    """Make PyTorch's allocator refuse memory beyond `COURSE_GPU_MEMORY_GIB` on `device`."""
    device = torch.device(device)
    cap = gpu_memory_cap_bytes()
    if cap is None or device.type != "cuda":
        return
    index = torch.cuda.current_device() if device.index is None else device.index  # "cuda" has none
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), index)


@dataclass(frozen=True)
class Profile:
    """Which size a notebook's demos run at: "grading", "cpu" or "gpu"."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(f"unknown profile {self.name!r}: choose one of {PROFILES}")

    def choose(self, *, cpu: Any, gpu: Any = None, grading: Any = None) -> Any:
        """The value for this profile; `gpu` and `grading` fall back to `cpu` when omitted."""
        options = {"cpu": cpu, "gpu": gpu, "grading": grading}
        value = options[self.name]
        return cpu if value is None else value

    @property
    def grading(self) -> bool:
        return self.name == "grading"


def pick_profile(device: torch.device) -> Profile:
    """Grading under nbgrader, "gpu" on CUDA, else "cpu" (`COURSE_PROFILE` overrides)."""
    forced = os.environ.get("COURSE_PROFILE")
    if forced:
        return Profile(forced)
    if is_grading():
        return Profile("grading")
    return Profile("gpu" if device.type == "cuda" else "cpu")


class Setup(NamedTuple):
    device: torch.device
    profile: Profile


def setup(seed: int = 0, verbose: bool = True) -> Setup:
    """Seed every RNG (with `seed` shifted by `COURSE_SEED`), then pick the device and the size profile."""
    seed = run_seed(seed)
    seed_everything(seed)
    device = pick_device()
    apply_gpu_memory_cap(device)
    profile = pick_profile(device)
    if verbose:
        print(f"torch {torch.__version__} | device: {device} | profile: {profile.name} | seed: {seed}"
              + _limits_note(device))
    return Setup(device, profile)


def _limits_note(device: torch.device) -> str:
    """What the T4 switches changed, if set: a reader of the output should know."""
    notes = []
    if device.type == "cuda" and gpu_memory_cap_bytes() is not None:
        notes.append(f"GPU memory capped at {gpu_memory_bytes(device) / 2**30:.1f} GiB")
    if device.type == "cuda" and _flag(NO_BF16_ENV):
        notes.append("no bfloat16")
    return "".join(f" | {n}" for n in notes)
