"""Every notebook follows the conventions of CONTRIBUTING.md ("The notebook")."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_tools import authoring, conformance
from course_tools.config import lessons, load_config, solution_path, student_path
from course_tools.release import read_notebook, student_version
from course_tools.stamp import stamp


@pytest.mark.parametrize("lesson", lessons())
@pytest.mark.parametrize("student", [False, True], ids=["solution", "student"])
def test_notebook_conforms(lesson: str, student: bool, root: Path) -> None:
    path = (student_path if student else solution_path)(lesson, root)
    problems = conformance.problems(read_notebook(path), load_config(root), lesson, student=student)
    assert not problems, f"{path}:\n" + "\n".join(problems)


def _lesson(cells, summary: bool = True) -> nbformat.NotebookNode:
    title = authoring.markdown("# 99 · Test\n\n## Learning objectives\n- x\n\n## Prerequisites\nnone\n\n"
                               "## Estimated time\n5 minutes")
    tail = [authoring.markdown("## Summary\n- done")] if summary else []
    nb = authoring.notebook([title, *cells, *tail])
    stamp(nb, load_config(), "99_test", "test")
    return nb


def _exercise(name: str, inside_function: bool = True):
    body = "    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    source = f"def {name}():\n{body}" if inside_function else body.replace("    ", "")
    return [authoring.solution(source, name),
            authoring.tests(f"with checks.exercise({name!r}, forbid=[len]):\n    assert {name}() == 1",
                            f"{name}_check", 1)]


WRITTEN = ("### BEGIN SOLUTION\n**Model answer.** It doubles.\n\n**Rubric (2 points).** 1 point: doubles. "
           "1 point: why.\n### END SOLUTION")


def _written(question: str = "**Predict, then measure.** Does it double?", answer: str = WRITTEN):
    return [authoring.markdown(question), authoring.written_answer(answer, "predict_double", points=2),
            authoring.code("measured = 2")]


def test_conforming_example_has_no_problems() -> None:
    nb = _lesson(_exercise("a") + _exercise("b") + _exercise("c") + _written())
    assert conformance.problems(nb, load_config(), "99_test", student=False) == []
    assert conformance.problems(student_version(nb), load_config(), "99_test", student=True) == []


def test_written_answers_are_required_asked_and_given_a_model_answer_with_a_rubric() -> None:
    problems = conformance.problems(_lesson(_exercise("a") + _exercise("b") + _exercise("c")), load_config(),
                                    "99_test", student=False)
    assert any(p.startswith("no written answer") for p in problems), problems
    cells = _exercise("a") + _exercise("b") + _exercise("c") + _written("Guess.", "It doubles.")[:2]
    problems = conformance.problems(_lesson(cells), load_config(), "99_test", student=False)
    assert any("must follow the markdown cell that asks it" in p for p in problems), problems
    assert any("no code cell after it" in p for p in problems), problems
    assert any("'**Model answer.**' and a '**Rubric" in p for p in problems), problems


def test_exercise_outside_a_function_is_reported() -> None:
    nb = _lesson(_exercise("a") + _exercise("b") + _exercise("c", inside_function=False))
    problems = conformance.problems(nb, load_config(), "99_test", student=False)
    assert any("'c'" in p and "must be a function or class" in p for p in problems), problems


def test_exercise_without_check_cell_is_reported() -> None:
    cells = _exercise("a") + _exercise("b") + _exercise("c")[:1]
    problems = conformance.problems(_lesson(cells), load_config(), "99_test", student=False)
    assert "exercise 'c' has no check cell after it" in problems


def test_missing_summary_and_too_few_exercises_are_reported() -> None:
    problems = conformance.problems(_lesson(_exercise("a"), summary=False), load_config(), "99_test",
                                    student=False)
    assert "the last markdown cell must be the summary ('## Summary')" in problems
    assert "1 exercises; a lesson has 3 to 5" in problems


def test_leaked_solution_line_is_found() -> None:
    nb = _lesson(_exercise("a") + _exercise("b") + _exercise("c"))
    nb.cells[2].source = nb.cells[2].source.replace("return 1", "return 'a distinctive solution line'")
    leaky = student_version(nb)
    leaky.cells[2].source += "\n    return 'a distinctive solution line'"
    assert conformance.leaked_lines(nb, leaky) == ["return 'a distinctive solution line'"]
