"""utils.setup: seeds, device and the size profile."""

from __future__ import annotations

import pytest
import torch

import utils
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
