"""Build notebook cells with the nbgrader metadata the course conventions need.

Maintainers may edit solutions/ in Jupyter with nbgrader's "Create Assignment" toolbar;
these helpers are the same thing from Python, for writing a lesson as a script:

    nb = notebook([markdown("# 05 · Self-attention ..."), code("import torch"),
                   solution("def f(x):\\n    ### BEGIN SOLUTION\\n    ...\\n    ### END SOLUTION", "f"),
                   tests("with checks.exercise('f'):\\n    ...", "f_check", points=2)])
"""

from __future__ import annotations

import nbformat

SCHEMA_VERSION = 3


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float = 0,
              task: bool = False) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": SCHEMA_VERSION, "solution": solution, "task": task}
    if grade:
        meta["points"] = points
    return meta


def markdown(text: str) -> nbformat.NotebookNode:
    """A plain markdown cell."""
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(source: str) -> nbformat.NotebookNode:
    """A plain code cell (demo code, reading, plots)."""
    return nbformat.v4.new_code_cell(source.strip("\n"))


def solution(source: str, grade_id: str) -> nbformat.NotebookNode:
    """An exercise: a function or class whose body sits between BEGIN/END SOLUTION."""
    cell = code(source)
    cell.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, grade=False, locked=False)
    return cell


def tests(source: str, grade_id: str, points: float) -> nbformat.NotebookNode:
    """A check cell: visible `checks` calls, then `### BEGIN HIDDEN TESTS` plain asserts."""
    if points <= 0:
        raise ValueError(f"check cell {grade_id!r} needs points > 0, got {points}")
    cell = code(source)
    cell.metadata["nbgrader"] = _nbgrader(grade_id, solution=False, grade=True, locked=True,
                                          points=points)
    return cell


def written_answer(prompt_answer: str, grade_id: str, points: float) -> nbformat.NotebookNode:
    """A manually graded markdown answer (graded in the formgrader)."""
    cell = markdown(prompt_answer)
    cell.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, grade=True, locked=False,
                                          points=points)
    return cell


def notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """A notebook of `cells`; `make release` stamps its badges and setup cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb
