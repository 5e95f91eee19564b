"""`make release`: stamp every solution notebook and regenerate its student version.

nbgrader's own preprocessors do the clearing (solutions stubbed, hidden tests and mark
schemes removed, outputs cleared, grade cells locked, checksums computed), run as a
library: no database is needed, and the result is byte-for-byte repeatable, so a second
release changes nothing and a test can compare `notebooks/` with what it should be.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

from course_tools.config import CourseConfig, lessons, load_config, repo_root, solution_path, student_path
from course_tools.stamp import badges, stamp

MAP_START, MAP_END = "<!-- course-map:start -->", "<!-- course-map:end -->"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
MARKER_PAIRS = (
    ("### BEGIN SOLUTION", "### END SOLUTION"),
    ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
)


class ReleaseError(ValueError):
    """A solution notebook cannot be released as it is; the message says where and why."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for a bad file
        raise ReleaseError(f"{path}: not a readable notebook ({type(err).__name__}: {err})") from None


def serialise(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def check_markers(nb: nbformat.NotebookNode, where: str) -> None:
    """Every BEGIN marker has its END, in a cell nbgrader knows to clear."""
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        label = f"{where}, cell {index}" + (f" ({meta['grade_id']!r})" if "grade_id" in meta else "")
        for begin, end in MARKER_PAIRS:
            open_line = None
            for number, line in enumerate(cell.source.splitlines(), start=1):
                text = line.strip()
                if text == begin:
                    if open_line is not None:
                        raise ReleaseError(f"{label}: '{begin}' on line {number} opens again before "
                                           f"'{end}' closes the one on line {open_line}")
                    open_line = number
                elif text == end:
                    if open_line is None:
                        raise ReleaseError(f"{label}: '{end}' on line {number} has no '{begin}' before it")
                    open_line = None
            if open_line is not None:
                raise ReleaseError(f"{label}: '{begin}' on line {open_line} has no matching '{end}'; "
                                   "close it, then run `make release` again")
        if "### BEGIN SOLUTION" in cell.source and not meta.get("solution"):
            raise ReleaseError(f"{label}: has '### BEGIN SOLUTION' but is not an nbgrader solution "
                               "cell (set metadata.nbgrader.solution, e.g. with course_tools.authoring)")
        if "### BEGIN HIDDEN TESTS" in cell.source and not meta.get("grade"):
            raise ReleaseError(f"{label}: has hidden tests but is not an nbgrader grade cell "
                               "(metadata.nbgrader.grade with points)")


def student_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook nbgrader makes from a stamped solution notebook."""
    nb = copy.deepcopy(solution)
    resources: dict = {}
    for preprocessor in (
        ClearSolutions(code_stub={"python": CODE_STUB}, text_stub=TEXT_STUB),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ClearOutput(),
        LockCells(),
        ComputeChecksums(),
    ):
        nb, resources = preprocessor.preprocess(nb, resources)
    return nb


@dataclass(frozen=True)
class Release:
    lesson: str
    solution_text: str  # the stamped solution notebook
    student_text: str  # its student version


def build(lesson: str, root: Path, config: CourseConfig) -> Release:
    path = solution_path(lesson, root)
    where = str(path.relative_to(root))
    nb = read_notebook(path)
    check_markers(nb, where)
    try:
        stamp(nb, config, lesson, where)
    except ValueError as err:
        raise ReleaseError(str(err)) from None
    return Release(lesson, serialise(nb), serialise(student_version(nb)))


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def course_map(root: Path, config: CourseConfig) -> str:
    """The README's table of lessons, each with its Colab and Kaggle badges."""
    rows = ["| lesson | open it |", "|---|---|"]
    for lesson in lessons(root):
        title = read_notebook(solution_path(lesson, root)).cells[0].source.splitlines()[0]
        link = f"[{title.removeprefix('# ')}](notebooks/{lesson}/{lesson}.ipynb)"
        rows.append(f"| {link} | {badges(config, lesson)} |")
    return "\n".join(rows)


def readme_with_map(root: Path, config: CourseConfig) -> str | None:
    """README.md with its course map regenerated (None when it has no map markers)."""
    path = root / "README.md"
    text = path.read_text() if path.is_file() else ""
    if MAP_START not in text or MAP_END not in text:
        return None
    head, rest = text.split(MAP_START, 1)
    _, tail = rest.split(MAP_END, 1)
    return f"{head}{MAP_START}\n{course_map(root, config)}\n{MAP_END}{tail}"


def release(root: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Stamp solutions, regenerate notebooks and the README's course map; returns what changed."""
    root = root or repo_root()
    config = load_config(root)
    changed = []
    readme = readme_with_map(root, config)
    if readme is not None and _write_if_changed(root / "README.md", readme):
        changed.append(root / "README.md")
    for lesson in only or lessons(root):
        result = build(lesson, root, config)
        for path, text in ((solution_path(lesson, root), result.solution_text),
                           (student_path(lesson, root), result.student_text)):
            if _write_if_changed(path, text):
                changed.append(path)
    return changed


def out_of_sync(root: Path | None = None) -> list[str]:
    """What `make release` would change, each with what to do about it (empty = in sync)."""
    root = root or repo_root()
    config = load_config(root)
    problems = []
    readme = readme_with_map(root, config)
    if readme is not None and readme != (root / "README.md").read_text():
        problems.append("README.md's course map is out of date: run `make release` and commit")
    for lesson in lessons(root):
        result = build(lesson, root, config)
        source, target = solution_path(lesson, root), student_path(lesson, root)
        if source.read_text() != result.solution_text:
            problems.append(f"{source.relative_to(root)} is not stamped: run `make release` and commit")
        if not target.is_file():
            problems.append(f"{target.relative_to(root)} is missing: run `make release` and commit")
        elif target.read_text() != result.student_text:
            problems.append(
                f"{target.relative_to(root)} differs from what `make release` generates. Student "
                f"notebooks are generated: edit {source.relative_to(root)} instead, then run "
                "`make release` (your edit to the student notebook will be overwritten)"
            )
    released = root / "notebooks"
    for folder in sorted(released.iterdir()) if released.is_dir() else []:
        if folder.is_dir() and re.match(r"^\d\d_", folder.name) and folder.name not in lessons(root):
            problems.append(f"notebooks/{folder.name} has no source in solutions/: "
                            "delete it or add the source")
    return problems
