"""Seeding, device selection and the size profile that notebooks read.

A notebook never hard-codes its sizes: it asks the profile, so that the same notebook
runs in about a minute on a 2-core CPU, scales up on a GPU, and shrinks to seconds when
nbgrader grades a submission.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

PROFILES = ("grading", "cpu", "gpu")


def is_grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so that runs repeat."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def pick_device(prefer: str | None = None) -> torch.device:
    """The best device here: CUDA, then Apple MPS, then CPU (`COURSE_DEVICE` overrides)."""
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
    """Seed every RNG, then pick the device and the size profile."""
    seed_everything(seed)
    device = pick_device()
    profile = pick_profile(device)
    if verbose:
        print(f"torch {torch.__version__} | device: {device} | profile: {profile.name} | seed: {seed}")
    return Setup(device, profile)
