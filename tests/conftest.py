"""Fixtures shared by the repository's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from utils.course.config import repo_root


@pytest.fixture(scope="session")
def root() -> Path:
    return repo_root()


@pytest.fixture
def course_copy(tmp_path: Path, root: Path) -> Path:
    """A scratch copy of the course's sources (pyproject, solutions, notebooks)."""
    copy = tmp_path / "course"
    copy.mkdir()
    shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
    for folder in ("solutions", "notebooks"):
        shutil.copytree(root / folder, copy / folder)
    return copy
