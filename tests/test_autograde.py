"""The nbgrader mechanism end to end on lesson 00: a solution scores full marks and an
untouched student version scores zero under `nbgrader autograde`."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils.course.config import solution_path, student_path

pytestmark = pytest.mark.slow
LESSON = "00_course_tour"


def _nbgrader(course: Path, *args: str) -> None:
    # nbgrader runs `alembic` by name: put this environment's scripts first on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stdout + result.stderr


def test_solution_scores_full_marks_and_student_version_zero(tmp_path: Path, root: Path) -> None:
    course = tmp_path / "course"
    (course / "solutions" / LESSON).mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", course)
    shutil.copy(solution_path(LESSON, root), course / "solutions" / LESSON)
    for student, source in (("perfect", solution_path(LESSON, root)),
                            ("untouched", student_path(LESSON, root))):
        folder = course / "submitted" / student / LESSON
        folder.mkdir(parents=True)
        shutil.copy(source, folder)

    _nbgrader(course, "generate_assignment", LESSON, "--force")
    _nbgrader(course, "autograde", LESSON, "--create", "--force")
    _nbgrader(course, "export", "--to", "grades.csv")

    with open(course / "grades.csv") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert float(rows["perfect"]["max_score"]) > 0
    assert float(rows["perfect"]["score"]) == float(rows["perfect"]["max_score"])
    assert float(rows["untouched"]["score"]) == 0.0
