"""Where the course lives: repository root, lessons, and the configured repository address."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LESSON_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")


def repo_root() -> Path:
    """The course repository: the folder holding pyproject.toml above this package."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "solutions").is_dir():
        raise RuntimeError(
            f"{root} is not the course repository (no pyproject.toml and solutions/ there): "
            "the authoring tools work on a checkout installed with `pip install -e .`"
        )
    return root


@dataclass(frozen=True)
class CourseConfig:
    repository: str  # https://github.com/OWNER/NAME
    revision: str  # branch, tag or commit the setup cell installs

    @property
    def github_path(self) -> str:
        """OWNER/NAME for the Colab and Kaggle badge links."""
        match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(\.git)?/?", self.repository)
        if not match:
            raise ValueError(
                f"[tool.attention-course] repository must be https://github.com/OWNER/NAME "
                f"for the Colab and Kaggle badges, got {self.repository!r}"
            )
        return match.group(1)

    @property
    def pip_spec(self) -> str:
        return f"attention-from-scratch @ git+{self.repository}@{self.revision}"


@cache
def load_config(root: Path | None = None) -> CourseConfig:
    path = (root or repo_root()) / "pyproject.toml"
    table = tomllib.loads(path.read_text())["tool"]["attention-course"]
    return CourseConfig(repository=table["repository"], revision=table["revision"])


def lessons(root: Path | None = None) -> list[str]:
    """Every lesson folder in solutions/, in curriculum order."""
    source = (root or repo_root()) / "solutions"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and LESSON_PATTERN.match(p.name))


def solution_path(lesson: str, root: Path | None = None) -> Path:
    return (root or repo_root()) / "solutions" / lesson / f"{lesson}.ipynb"


def student_path(lesson: str, root: Path | None = None) -> Path:
    return (root or repo_root()) / "notebooks" / lesson / f"{lesson}.ipynb"


def require_lesson(lesson: str, root: Path | None = None) -> str:
    """`lesson` if it exists, else an error that lists the valid names."""
    known = lessons(root)
    if lesson not in known:
        raise SystemExit(f"unknown lesson {lesson!r}; the lessons are: {', '.join(known)}")
    return lesson
