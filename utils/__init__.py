"""Attention from Scratch: the course package every notebook imports.

Kept light on purpose: importing `utils` loads nothing heavy; torch and friends are
imported by the submodules that need them (`utils.runtime`, `utils.models`, ...).
"""

from __future__ import annotations

__version__ = "0.1.0"


def setup(seed: int = 0, verbose: bool = True):
    """Seed every RNG, pick the device and the size profile: returns `(device, profile)`."""
    from utils.runtime import setup as _setup

    return _setup(seed=seed, verbose=verbose)


def run_seed(seed: int = 0) -> int:
    """`seed` shifted by `COURSE_SEED` (unset: `seed` itself); see `utils.runtime.run_seed`."""
    from utils.runtime import run_seed as _run_seed

    return _run_seed(seed)
