"""The gradebook (one row per student) and the summary (one row per exercise), with pandas.

A submission is "graded", "needs manual grading" (its written answers wait for the formgrader)
or "could not be graded"; the `reason` column says why not (a dead kernel, a timeout, the
memory limit, an unreadable notebook, a wrong file name, a write outside its folder), so that a
crashed kernel never reads as a real zero. After the written answers are graded in the
formgrader, `refresh` rewrites both files with those scores. Both files are
written to a temporary name and renamed, so a reader never sees half a gradebook.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd

GRADED, FAILED, MANUAL = "graded", "could not be graded", "needs manual grading"
AWAITS = "awaits manual grading in the formgrader: "  # a note in `reason`, followed by the grade ids
LEFT, RIGHT = ["student_id", "status", "total", "max_score"], ["reason", "flags"]  # around the grade ids


@dataclass
class Outcome:
    """What grading found for one student."""

    student: str
    scores: dict[str, float | None] = field(default_factory=dict)  # grade_id -> score
    problems: list[str] = field(default_factory=list)  # any problem: could not be graded
    notes: list[str] = field(default_factory=list)  # worth saying, but the scores stand
    flags: list[str] = field(default_factory=list)  # code worth a look (course_tools.grading.flags)
    awaiting: list[str] = field(default_factory=list)  # written answers not graded yet

    @property
    def status(self) -> str:
        return FAILED if self.problems else MANUAL if self.awaiting else GRADED


def exercises(source: nbformat.NotebookNode) -> list[tuple[str, float]]:
    """(grade_id, points) of every graded cell, in notebook order."""
    return [(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"]["points"]))
            for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def written_answers(source: nbformat.NotebookNode) -> list[str]:
    """grade_ids of the cells graded by hand (nbgrader: grade and solution), in notebook order."""
    return [c.metadata["nbgrader"]["grade_id"] for c in source.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")
            and c.metadata["nbgrader"].get("solution")]


def awaiting_note(grade_ids: list[str]) -> list[str]:
    return [AWAITS + ", ".join(grade_ids)] if grade_ids else []


def refresh(book: pd.DataFrame, scores: dict[str, dict[str, float | None]],
            written: list[str]) -> pd.DataFrame:
    """The gradebook with the scores now in nbgrader's gradebook (`scores`: student -> grade_id ->
    score, a manual score where one was entered): totals and statuses follow; rows that could not
    be graded stay as they were."""
    book = book.copy()
    ids = [c for c in book.columns if c not in LEFT + RIGHT]
    for index, row in book.iterrows():
        if row["status"] == FAILED or row["student_id"] not in scores:
            continue
        own = scores[row["student_id"]]
        for grade_id in ids:
            if grade_id in own:
                book.at[index, grade_id] = math.nan if own[grade_id] is None else own[grade_id]
        known = [book.at[index, g] for g in ids]
        book.at[index, "total"] = _total([None if pd.isna(v) else float(v) for v in known])
        awaiting = [g for g in written if g in ids and pd.isna(book.at[index, g])]
        notes = [n for n in str(row["reason"]).split("; ") if n and n != "nan" and not n.startswith(AWAITS)]
        book.at[index, "reason"] = "; ".join(notes + awaiting_note(awaiting))
        book.at[index, "status"] = MANUAL if awaiting else GRADED
    return book


def _total(scores: list[float | None]) -> float:
    known = [s for s in scores if s is not None]
    return sum(known) if known else math.nan


def gradebook(outcomes: list[Outcome], graded: list[tuple[str, float]]) -> pd.DataFrame:
    """One row per student: status, total, max_score, one column per exercise, reason, flags."""
    ids = [grade_id for grade_id, _ in graded]
    rows = []
    for outcome in sorted(outcomes, key=lambda o: o.student):
        scores = [outcome.scores.get(grade_id) for grade_id in ids]
        rows.append({
            "student_id": outcome.student, "status": outcome.status, "total": _total(scores),
            "max_score": sum(points for _, points in graded),
            **{g: math.nan if s is None else s for g, s in zip(ids, scores, strict=True)},
            "reason": "; ".join(outcome.problems + outcome.notes), "flags": "; ".join(outcome.flags),
        })
    columns = [*LEFT, *ids, *RIGHT]
    return pd.DataFrame(rows, columns=columns)


def summary(book: pd.DataFrame, graded: list[tuple[str, float]]) -> pd.DataFrame:
    """Per exercise (and in total): how many scores, their mean, the share at full marks."""
    rows = []
    for column, points in [*graded, ("total", sum(p for _, p in graded))]:
        scores = book[column].dropna().astype(float)
        rows.append({
            "exercise": column, "max_score": points, "scored": len(scores),
            "mean": round(scores.mean(), 2) if len(scores) else math.nan,
            "share_full_marks": round(float((scores >= points).mean()), 3) if len(scores) else math.nan,
        })
    return pd.DataFrame(rows)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` as CSV under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
