"""`make release`: notebooks/ is exactly what solutions/ generates, with nothing leaked."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from course_tools import conformance
from course_tools.config import lessons, solution_path, student_path
from course_tools.release import ReleaseError, out_of_sync, read_notebook, release


def test_notebooks_are_in_sync_with_solutions(root: Path) -> None:
    problems = out_of_sync(root)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lesson", lessons())
def test_student_version_leaks_no_solution_or_hidden_test(lesson: str, root: Path) -> None:
    leaked = conformance.leaked_lines(read_notebook(solution_path(lesson, root)),
                                      read_notebook(student_path(lesson, root)))
    assert not leaked, f"{lesson}: solution lines in the student version: {leaked}"


@pytest.mark.parametrize("lesson", lessons())
def test_student_version_stubs_every_exercise(lesson: str, root: Path) -> None:
    student = read_notebook(student_path(lesson, root))
    for cell in student.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            assert "raise NotImplementedError()" in cell.source, cell.source


def test_release_twice_changes_nothing_the_second_time(course_copy: Path) -> None:
    release(course_copy)  # may stamp, the first time
    before = {p: p.read_bytes() for p in course_copy.rglob("*.ipynb")}
    assert release(course_copy) == []
    assert {p: p.read_bytes() for p in course_copy.rglob("*.ipynb")} == before


def test_hand_edited_student_notebook_is_reported_with_what_to_do(course_copy: Path) -> None:
    lesson = lessons(course_copy)[0]
    path = student_path(lesson, course_copy)
    nb = json.loads(path.read_text())
    nb["cells"][-1]["source"] = "edited by hand"
    path.write_text(json.dumps(nb, indent=1))
    (problem,) = out_of_sync(course_copy)
    assert f"notebooks/{lesson}/{lesson}.ipynb differs" in problem
    assert f"edit solutions/{lesson}/{lesson}.ipynb instead" in problem and "make release" in problem


def _break_first_solution(course_copy: Path, edit) -> str:
    lesson = lessons(course_copy)[0]
    path = solution_path(lesson, course_copy)
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "### END SOLUTION" in c.source)
    cell.source = edit(cell.source)
    nbformat.write(nb, path)
    return cell.metadata["nbgrader"]["grade_id"]


def test_unbalanced_solution_marker_names_notebook_cell_and_line(course_copy: Path) -> None:
    grade_id = _break_first_solution(course_copy, lambda s: s.replace("### END SOLUTION", ""))
    pattern = r"solutions/.*\.ipynb, cell \d+ .*'### BEGIN SOLUTION' on line \d+ has no matching"
    with pytest.raises(ReleaseError, match=pattern) as err:
        release(course_copy)
    assert grade_id in str(err.value)


def test_end_marker_without_begin_is_reported(course_copy: Path) -> None:
    _break_first_solution(course_copy, lambda s: s.replace("### BEGIN SOLUTION", ""))
    with pytest.raises(ReleaseError, match="'### END SOLUTION' on line .* has no '### BEGIN SOLUTION'"):
        release(course_copy)


def test_unreadable_solution_notebook_is_named(course_copy: Path) -> None:
    path = solution_path(lessons(course_copy)[0], course_copy)
    path.write_text("{ not json")
    with pytest.raises(ReleaseError, match=f"{path}: not a readable notebook"):
        release(course_copy)
