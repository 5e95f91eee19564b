"""Every lesson under the grading path: its solution scores full marks, its student version zero.

Parametrized over `lessons()`, so a new lesson is covered as soon as it exists in solutions/.
One class of two submissions per lesson, graded in parallel by `utils.course.grade.grade`, the
function behind `python -m utils.course grade` (called in-process: its worker processes are
then forked from one server for all lessons, instead of one per command).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from utils.course.config import lessons, solution_path, student_path
from utils.course.grade import Options, grade

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lesson", lessons())
def test_solution_scores_full_marks_and_student_version_zero(lesson: str, tmp_path: Path) -> None:
    for student, source in (("solution", solution_path(lesson)), ("student", student_path(lesson))):
        (tmp_path / "submissions" / student).mkdir(parents=True)
        shutil.copy(source, tmp_path / "submissions" / student)
    # no canary: the solution is one of the two submissions, graded beside the student version
    options = Options(lesson, tmp_path / "submissions", tmp_path / "out", jobs=2, canary=False)
    book = grade(options).set_index("student_id")

    assert (book["status"] == "graded").all(), book["reason"].to_dict()
    assert book.loc["solution", "max_score"] > 0
    assert book.loc["solution", "total"] == book.loc["solution", "max_score"], book.loc["solution"].to_dict()
    assert book.loc["student", "total"] == 0, book.loc["student"].to_dict()
    assert (tmp_path / "out" / "gradebook.csv").is_file() and (tmp_path / "out" / "summary.csv").is_file()
