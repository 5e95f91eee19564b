"""Find the submissions to grade: one folder per student, each holding the lesson's notebook.

Accepted layouts: DIR/STUDENT/LESSON.ipynb, and nbgrader's DIR/STUDENT/LESSON/LESSON.ipynb
(what `nbgrader collect` and `nbgrader zip_collect` write into submitted/). A student whose
folder holds no such notebook, or an unreadable one, is kept with the reason, so that the
gradebook lists them instead of skipping them silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_BYTES = 100 * 2**20  # a notebook this large is not a lesson submission


class IntakeError(ValueError):
    """The submissions folder cannot be graded at all; the message says why."""


@dataclass(frozen=True)
class Submission:
    student: str
    notebook: Path | None  # the file to grade; None when there is none
    problem: str = ""  # why it cannot be graded, if it cannot
    content: bytes = b""  # the notebook as read before any submission ran; all later steps use it

    @property
    def gradable(self) -> bool:
        return self.notebook is not None and not self.problem

    def read(self) -> nbformat.NotebookNode:
        return nbformat.reads(self.content.decode(), as_version=4)


def unreadable(content: bytes) -> str:
    """Why nbgrader could not read `content` as a notebook ("" when it can)."""
    if len(content) > MAX_BYTES:
        return f"unreadable notebook: {len(content) / 2**20:.0f} MB is too large for a notebook"
    try:
        nbformat.validate(nbformat.reads(content.decode(), as_version=4))
    except Exception as err:  # JSON, encoding and schema errors come as unrelated types
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        return f"unreadable notebook: {type(err).__name__}: {detail}".rstrip(": ")
    return ""


def _notebooks(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def find_one(folder: Path, lesson: str) -> Submission:
    """The submission in one student's folder, or the reason there is none."""
    for candidate in (folder / f"{lesson}.ipynb", folder / lesson / f"{lesson}.ipynb"):
        if candidate.is_file():
            content = candidate.read_bytes()
            return Submission(folder.name, candidate, unreadable(content), content)
    found = _notebooks(folder)
    if found:
        return Submission(folder.name, None, f"wrong file: found {', '.join(found)}, expected {lesson}.ipynb")
    return Submission(folder.name, None, f"no notebook: found no .ipynb file, expected {lesson}.ipynb")


def find_all(folder: Path, lesson: str) -> list[Submission]:
    """Every student folder in `folder`, in student order."""
    if not folder.is_dir():
        raise IntakeError(f"--submissions {folder}: no such folder")
    students = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        loose = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        hint = (f" It holds loose files ({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}): "
                "an LMS export? Sort them into one folder per student with `nbgrader zip_collect` "
                "(see INSTRUCTORS.md).") if loose else ""
        raise IntakeError(f"--submissions {folder} is empty: expected one folder per student, "
                          f"each holding {lesson}.ipynb.{hint}")
    return [find_one(p, lesson) for p in students]
