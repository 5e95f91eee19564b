"""The grading output is an nbgrader course, assembled from one small course per submission.

Each submission is graded in a folder of its own holding a copy of the assignment's gradebook
(about 160 kB, copied in a millisecond), the source notebook and the submission, so parallel
runs share no database and no file. Afterwards their grades are merged into the output's
gradebook.db, next to nbgrader's usual autograded/, feedback/ and submitted/ folders, so that
the formgrader, `nbgrader generate_feedback` and `nbgrader export` work there unchanged.
"""

from __future__ import annotations

import copy
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from unittest import mock

import nbformat
import nbgrader.api
from alembic.script import ScriptDirectory
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from nbgrader.dbutil import ALEMBIC_DIR
from traitlets.config import Config

from course_tools.config import solution_path
from course_tools.grading.worker import COURSE_ID, KERNEL_CACHE

GENERATED = ("nbgrader_config.py", "gradebook.db", "source", "release", "submitted", "autograded",
             "feedback", "logs", ".work", "gradebook.csv", "summary.csv")
MARK = "Written by `python -m course_tools grade`"
CONFIG_FILE = f'''\
"""{MARK}: this folder is an nbgrader course holding one
graded lesson. Run the formgrader, `nbgrader generate_feedback` or `nbgrader export` here."""

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "{COURSE_ID}"
c.CourseDirectory.source_directory = "source"
'''


class OutputError(RuntimeError):
    """The output folder cannot be (re)written safely; the message says what to do."""


def db_url(course: Path) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


def manual_work(out: Path) -> int:
    """How many grades or comments in out/gradebook.db were entered by hand in the formgrader."""
    if not (out / "gradebook.db").is_file():
        return 0
    with Gradebook(db_url(out), COURSE_ID) as gb:
        found = 0
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                for notebook in submission.notebooks:
                    found += sum(g.manual_score is not None for g in notebook.grades)
                    found += sum(bool(c.manual_comment) for c in notebook.comments)
        return found


def _ours(out: Path) -> bool:
    """True for a folder this command may rewrite: new, empty, or written by an earlier run."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return True
    config = out / "nbgrader_config.py"
    return config.is_file() and MARK in config.read_text(errors="replace")


def clear_output(out: Path, force: bool) -> None:
    """Remove what an earlier run generated in `out` (and nothing else), keeping manual grades safe."""
    if not _ours(out):
        raise OutputError(f"--out {out} is not empty and was not written by this command (its files "
                          "could be lost): choose a new or empty folder")
    entered = manual_work(out)
    if entered and not force:
        raise OutputError(f"{out} holds {entered} grade(s) or comment(s) entered in the formgrader; "
                          "grading again would discard them. Use another --out, or --force to discard them")
    for name in GENERATED:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _extra_files(folder: Path) -> list[Path]:
    """Files a lesson keeps beside its notebook (data a kernel reads by relative path)."""
    return [p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix != ".ipynb" and not p.name.startswith(".")]


def make_course(out: Path, lesson: str) -> None:
    """Make `out` an nbgrader course with this lesson's source and assignment in its gradebook."""
    source = out / "source" / lesson
    source.mkdir(parents=True)
    shutil.copy(solution_path(lesson), source)
    for path in _extra_files(solution_path(lesson).parent):
        shutil.copy(path, source)
    (out / "nbgrader_config.py").write_text(CONFIG_FILE)
    _generate_assignment(out, lesson)


def _alembic_head() -> str:
    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


def _generate_assignment(out: Path, lesson: str) -> None:
    """nbgrader generate_assignment: the gradebook learns the lesson's cells, points and tests."""
    config = Config()
    config.CourseDirectory.root = str(out)
    config.CourseDirectory.course_id = COURSE_ID
    config.CourseDirectory.source_directory = "source"
    config.CourseDirectory.db_url = db_url(out)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    # a new gradebook is stamped with alembic's head revision, which nbgrader asks a separate
    # `alembic` process for (seconds on a busy machine); the same answer, read in-process:
    with mock.patch.object(nbgrader.api, "get_alembic_version", _alembic_head):
        outcome = api.generate_assignment(lesson, force=True, create=True)
    if not outcome["success"]:
        raise OutputError(f"nbgrader generate_assignment {lesson} failed:\n{outcome.get('log', '')}")


def _grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def restore_deleted_cells(nb: nbformat.NotebookNode, released: nbformat.NotebookNode) -> list[str]:
    """Put back, in place, the exercise and check cells of the student version that `nb` lacks."""
    # nbgrader restores a deleted check cell, but fails on a deleted exercise (it looks for the
    # cell before it); restored from the student version, a deleted exercise simply scores zero
    present = {_grade_id(c) for c in nb.cells} - {None}
    restored, anchor = [], None  # anchor: grade_id of the last nbgrader cell seen before
    for cell in released.cells:
        grade_id = _grade_id(cell)
        if grade_id is None:
            continue
        if grade_id not in present:  # after the cell before it; the first, before any graded cell
            ids = [_grade_id(c) for c in nb.cells]
            where = ids.index(anchor) + 1 if anchor else next(
                (i for i, g in enumerate(ids) if g is not None), len(ids))
            nb.cells.insert(where, copy.deepcopy(cell))
            present.add(grade_id)
            restored.append(grade_id)
        anchor = grade_id
    return restored


def _font_cache() -> list[Path]:
    """matplotlib's font list, so that no kernel spends half a second rebuilding it."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = Path(os.environ.get("MPLCONFIGDIR", home / "matplotlib"))
    return sorted(folder.glob("fontlist-*.json")) if folder.is_dir() else []


def make_workdir(out: Path, lesson: str, student: str, notebook: bytes, cache: Path | None = None) -> Path:
    """out/.work/STUDENT: a course of its own (gradebook, source, submission) and a scratch folder."""
    work = out / ".work" / student
    course = work / "course"
    (course / "submitted" / student / lesson).mkdir(parents=True)
    shutil.copy(out / "gradebook.db", course / "gradebook.db")
    shutil.copytree(out / "source", course / "source")
    (course / "submitted" / student / lesson / f"{lesson}.ipynb").write_bytes(notebook)
    scratch = work / "scratch"
    (scratch / ".matplotlib").mkdir(parents=True)
    for path in _extra_files(out / "source" / lesson):
        shutil.copy(path, scratch)
    for path in _font_cache():
        shutil.copy(path, scratch / ".matplotlib")
    if cache is not None:  # a copy each: what one kernel writes there, no other kernel reads
        shutil.copytree(cache, scratch / KERNEL_CACHE)
    return work


def _copy_files(source: Path, target: Path) -> None:
    """Copy the regular files of `source` (never links) into `target`."""
    if not source.is_dir():
        return
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, target / path.name)


def _merge_grades(gb: Gradebook, lesson: str, student: str, work: Path) -> bool:
    """Copy one student's grades and comments into `gb`; False when the worker recorded none."""
    with Gradebook(db_url(work / "course"), COURSE_ID) as own:
        try:
            submitted = own.find_submission_notebook(lesson, lesson, student)
        except MissingEntry:  # the worker stopped before nbgrader saw the submission
            return False
        gb.update_or_create_student(student)
        gb.update_or_create_submission(lesson, student)
        for grade in submitted.grades:
            target = gb.find_grade(grade.name, lesson, lesson, student)
            target.auto_score, target.needs_manual_grade = grade.auto_score, grade.needs_manual_grade
        for comment in submitted.comments:
            gb.find_comment(comment.name, lesson, lesson, student).auto_comment = comment.auto_comment
    gb.db.commit()
    return True


def merge(out: Path, lesson: str, works: Mapping[str, Path], originals: Mapping[str, bytes]) -> None:
    """Bring each submission's grades and files into the output course, in student order."""
    with warnings.catch_warnings(), Gradebook(db_url(out), COURSE_ID) as gb:
        warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's harmless SAWarnings
        for student in sorted(works):
            work = works[student]
            if not _merge_grades(gb, lesson, student, work):
                continue
            for kind in ("autograded", "feedback"):
                _copy_files(work / "course" / kind / student / lesson, out / kind / student / lesson)
            submitted = out / "submitted" / student / lesson
            submitted.mkdir(parents=True, exist_ok=True)
            (submitted / f"{lesson}.ipynb").write_bytes(originals[student])


def graded_lesson(out: Path) -> str:
    """The lesson an output folder holds (out/source/LESSON), or an OutputError that says why not."""
    if not _ours(out) or not (out / "gradebook.db").is_file() or not (out / "gradebook.csv").is_file():
        raise OutputError(f"{out} is not an output folder of `python -m course_tools grade` (it needs "
                          "the gradebook.db and gradebook.csv that command writes): pass the folder you "
                          "graded into")
    found = sorted(p.name for p in (out / "source").iterdir() if p.is_dir())
    if len(found) != 1:
        raise OutputError(f"{out}/source holds {found}, expected exactly one lesson")
    return found[0]


def entered_scores(out: Path, lesson: str) -> dict[str, dict[str, float | None]]:
    """Every student's score per grade_id in out/gradebook.db: the one entered in the formgrader where
    there is one, else the autograded one (None: not graded yet)."""
    with warnings.catch_warnings(), Gradebook(db_url(out), COURSE_ID) as gb:
        warnings.filterwarnings("ignore", message=".*not in session.*")
        scores = {}
        for submission in gb.find_assignment(lesson).submissions:
            for notebook in submission.notebooks:
                scores[submission.student.id] = {  # a score entered by hand overrides the autograder's
                    g.name: g.auto_score if g.manual_score is None else g.manual_score
                    for g in notebook.grades}
        return scores
