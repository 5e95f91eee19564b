"""The notebook conventions of CONTRIBUTING.md ("The notebook"), as checks that name what is wrong.

`problems()` returns an empty list for a conforming notebook; tests/test_conformance.py
runs it on every lesson in solutions/ and notebooks/, and `python -m course_tools check`
runs it for authors.
"""

from __future__ import annotations

import ast
import re

import nbformat

from course_tools.config import CourseConfig
from course_tools.stamp import badges, setup_source

MIN_EXERCISES, MAX_EXERCISES = 3, 5
TITLE_SECTIONS = ("learning objectives", "prerequisites", "estimated time")
LEAK_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME")


def _grader(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def _is_exercise(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and _grader(cell).get("solution", False)


def _is_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and _grader(cell).get("grade", False)


def _title_problems(nb, config: CourseConfig, lesson: str) -> list[str]:
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.startswith("# "):
        return ["the first cell must be the markdown title cell ('# NN · Title')"]
    found = []
    if badges(config, lesson) not in first.source:
        found.append("the title cell lacks the current Colab/Kaggle badges: run `make release`")
    text = first.source.lower()
    found += [f"the title cell has no '{s}' section" for s in TITLE_SECTIONS if s not in text]
    return found


def _setup_problems(nb, config: CourseConfig) -> list[str]:
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if not code_cells or code_cells[0].source != setup_source(config):
        return ["the first code cell is not the standard setup cell: run `make release`"]
    return []


def _lines_outside_defs(source: str, needles: tuple[str, ...]) -> list[int]:
    """Line numbers of lines containing a needle that are not inside a def or class body."""
    tree = ast.parse(source)
    spans = [(node.lineno, node.end_lineno) for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return [number for number, line in enumerate(source.splitlines(), start=1)
            if any(n in line for n in needles)
            and not any(start < number <= end for start, end in spans)]


def _exercise_problems(nb, student: bool) -> list[str]:
    found = []
    needles = ("raise NotImplementedError",) if student else ("### BEGIN SOLUTION",)
    exercises = 0
    pending: str | None = None  # an exercise still waiting for its check cell
    grade_ids: list[str] = []
    for index, cell in enumerate(nb.cells):
        meta = _grader(cell)
        if "grade_id" in meta:
            grade_ids.append(meta["grade_id"])
        if _is_exercise(cell):
            if pending:
                found.append(f"exercise {pending!r} has no check cell before the next exercise")
            exercises += 1
            pending = meta.get("grade_id", f"cell {index}")
            try:
                outside = _lines_outside_defs(cell.source, needles)
            except SyntaxError as err:
                found.append(f"exercise {pending!r} (cell {index}) does not parse: "
                             f"{err.msg}, line {err.lineno}")
                continue
            if outside or not any(n in cell.source for n in needles):
                found.append(f"exercise {pending!r} (cell {index}) must be a function or class whose "
                             "body holds the solution")
        elif _is_check(cell):
            if not meta.get("points", 0) > 0:
                found.append(f"check cell {meta.get('grade_id')!r} carries no points")
            if "checks.exercise(" not in cell.source:
                found.append(f"check cell {meta.get('grade_id')!r} does not use `with checks.exercise(...)`")
            elif "forbid=" not in cell.source:
                found.append(f"check cell {meta.get('grade_id')!r} does not say what its exercise must not "
                             "call: `checks.exercise(name, forbid=[...])` (its reference in utils, and the "
                             "PyTorch functions that do the whole job)")
            pending = None
    if pending:
        found.append(f"exercise {pending!r} has no check cell after it")
    if not MIN_EXERCISES <= exercises <= MAX_EXERCISES:
        found.append(f"{exercises} exercises; a lesson has {MIN_EXERCISES} to {MAX_EXERCISES}")
    duplicates = sorted({g for g in grade_ids if grade_ids.count(g) > 1})
    if duplicates:
        found.append(f"grade ids used twice: {duplicates}")
    return found


def _is_written_answer(cell: nbformat.NotebookNode) -> bool:
    meta = _grader(cell)
    return cell.cell_type == "markdown" and meta.get("grade", False) and meta.get("solution", False)


def _written_answer_problems(nb, student: bool) -> list[str]:
    """At least one "predict, then measure" answer: asked just before it, measured by a code cell after
    it, worth points, and in the solution a model answer and a rubric (cleared from the student's)."""
    found, answers = [], [i for i, c in enumerate(nb.cells) if _is_written_answer(c)]
    if not answers:
        return ["no written answer: a lesson asks at least one 'Predict, then measure.' question "
                "(course_tools.authoring.written_answer, graded in the formgrader)"]
    for index in answers:
        cell, grade_id = nb.cells[index], _grader(nb.cells[index]).get("grade_id")
        if not _grader(cell).get("points", 0) > 0:
            found.append(f"written answer {grade_id!r} carries no points")
        before = nb.cells[index - 1] if index else None
        if before is None or before.cell_type != "markdown" or "Predict, then measure" not in before.source:
            found.append(f"written answer {grade_id!r} must follow the markdown cell that asks it "
                         "('**Predict, then measure.** ...')")
        if not any(c.cell_type == "code" for c in nb.cells[index + 1:]):
            found.append(f"written answer {grade_id!r} has no code cell after it to measure what it predicts")
        if not student and not all(m in cell.source for m in ("### BEGIN SOLUTION", "**Model answer.**",
                                                               "**Rubric")):
            found.append(f"written answer {grade_id!r} needs, between BEGIN and END SOLUTION, a "
                         "'**Model answer.**' and a '**Rubric (N points).**' for whoever grades it")
    return found


def _summary_problems(nb) -> list[str]:
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    if not markdown or not re.search(r"^#+\s*summary", markdown[-1].source, re.I | re.M):
        return ["the last markdown cell must be the summary ('## Summary')"]
    return []


def problems(nb: nbformat.NotebookNode, config: CourseConfig, lesson: str, *, student: bool) -> list[str]:
    """Every way `nb` breaks the notebook conventions (empty when it conforms)."""
    found = _title_problems(nb, config, lesson) + _setup_problems(nb, config)
    found += _exercise_problems(nb, student) + _written_answer_problems(nb, student) + _summary_problems(nb)
    if student:
        found += [f"the student version contains {m!r}" for m in LEAK_MARKERS
                  if any(m in c.source for c in nb.cells)]
    return found


def solution_lines(nb: nbformat.NotebookNode) -> set[str]:
    """Distinctive lines from inside solution and hidden-test regions (for leak checks)."""
    inside, outside = set(), set()
    for cell in nb.cells:
        region = False
        for line in cell.source.splitlines():
            text = line.strip()
            if text in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                region = True
            elif text in ("### END SOLUTION", "### END HIDDEN TESTS"):
                region = False
            elif len(text) >= 20 and not text.startswith("#"):
                (inside if region else outside).add(text)
    return inside - outside


def leaked_lines(solution_nb: nbformat.NotebookNode, student_nb: nbformat.NotebookNode) -> list[str]:
    """Solution or hidden-test lines that appear in the student version."""
    student_text = {line.strip() for c in student_nb.cells for line in c.source.splitlines()}
    return sorted(solution_lines(solution_nb) & student_text)
