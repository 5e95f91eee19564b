"""Written answers, end to end: autograde leaves them for the formgrader and the gradebook says so;
scores entered in the formgrader (nbgrader's gradebook.db, as the formgrader writes it) come back
into gradebook.csv with `python -m course_tools gradebook`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbgrader.api import Gradebook

from course_tools.config import solution_path, student_path
from course_tools.grading.report import AWAITS, GRADED, MANUAL, exercises, written_answers
from course_tools.grading.worker import COURSE_ID

pytestmark = pytest.mark.slow
LESSON = "00_course_tour"


def _read(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "gradebook.csv", keep_default_na=False, na_values=[""]).set_index("student_id")


def _course(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "course_tools", *args], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_written_answers_round_trip_through_the_formgrader(tmp_path: Path) -> None:
    solution = nbformat.read(solution_path(LESSON), as_version=4)
    written = written_answers(solution)
    assert written, f"{LESSON} has no written answer"
    points = dict(exercises(solution))
    autograded = sum(p for g, p in points.items() if g not in written)
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    for student, path in (("answered", solution_path(LESSON)), ("blank", student_path(LESSON))):
        (submissions / student).mkdir(parents=True)
        (submissions / student / f"{LESSON}.ipynb").write_bytes(path.read_bytes())
    graded = _course("grade", LESSON, "--submissions", str(submissions), "--out", str(out), "--jobs", "2")
    assert "1 graded, 1 need manual grading" in graded.stdout

    book = _read(out)
    answered, blank = book.loc["answered"], book.loc["blank"]
    assert (answered.status, answered.total, answered.max_score) == (MANUAL, autograded, sum(points.values()))
    assert answered["reason"] == AWAITS + ", ".join(written)
    assert all(pd.isna(answered[g]) for g in written)
    assert (blank.status, blank.total) == (GRADED, 0.0)  # an answer left as released scores 0 by itself
    assert all(blank[g] == 0 for g in written)

    # what the formgrader does when the instructor scores the answers: a manual score per cell
    given = {g: points[g] - 1 for g in written}
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", COURSE_ID) as gb:
        for grade_id, score in given.items():
            gb.find_grade(grade_id, LESSON, LESSON, "answered").manual_score = score
        gb.db.commit()
    _course("gradebook", str(out))

    after = _read(out)
    answered = after.loc["answered"]
    assert (answered.status, answered.total) == (GRADED, autograded + sum(given.values()))
    assert pd.isna(answered["reason"])
    assert all(answered[g] == s for g, s in given.items())
    assert after.loc["blank"].equals(book.loc["blank"])
    summary = pd.read_csv(out / "summary.csv").set_index("exercise")
    assert summary.loc["total", "scored"] == 2

    again = [sys.executable, "-m", "course_tools", "grade", LESSON, "--submissions", str(submissions),
             "--out", str(out)]
    refused = subprocess.run(again, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "entered in the formgrader" in refused.stderr


def test_gradebook_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "course_tools", "gradebook", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "is not an output folder of `python -m course_tools grade`" in result.stderr
