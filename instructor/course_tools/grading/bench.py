"""`python -m course_tools.grading.bench`: how fast `python -m course_tools grade` grades on this machine.

Two measurements, with the command's defaults (sandbox where bubblewrap works, one
submission per core): the throughput for a class of N copies of one lesson's solution, in
submissions per minute, all included; and, for every lesson, the seconds to grade one
submission: cold (the solution's canary run, which trains the lesson's demo models) and
warm (any submission after it, starting from those models), plus the whole run's time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from course_tools.config import lessons, solution_path
from course_tools.grading.grade import CANARY, DEFAULT_MEMORY_GIB, Options, default_jobs, grade


def make_class(folder: Path, lesson: str, copies: int) -> Path:
    """`copies` students, each submitting the lesson's solution."""
    for index in range(copies):
        student = folder / f"student{index:03d}"
        student.mkdir(parents=True)
        shutil.copy(solution_path(lesson), student)
    return folder


def time_grading(options: Options) -> tuple[float, pd.DataFrame, pd.Series]:
    """Wall-clock seconds of one grading run, its gradebook, and each worker's seconds."""
    start = time.perf_counter()
    book = grade(options, say=lambda line: None)
    seconds = pd.read_csv(options.out / "logs" / "seconds.csv", index_col="student_id")["seconds"]
    return time.perf_counter() - start, book, seconds


def _full_marks(book: pd.DataFrame) -> bool:
    return bool((book["total"] == book["max_score"]).all())


def lesson_times(base: Path) -> tuple[pd.DataFrame, bool]:
    """Per lesson: one submission graded after the canary, one worker; and whether all scored full."""
    rows, full = [], True
    for lesson in lessons():
        options = Options(lesson, make_class(base / lesson, lesson, 1), base / f"out-{lesson}", jobs=1)
        wall, book, seconds = time_grading(options)
        full &= _full_marks(book)
        rows.append({"lesson": lesson, "cold s": seconds[CANARY], "warm s": seconds.drop(CANARY).iloc[0],
                     "run s": round(wall, 1), "status": book["status"].iloc[0]})
    return pd.DataFrame(rows), full


def main(argv: list[str] | None = None) -> int:
    """Print the class throughput and the per-lesson grading times; 1 if a solution lost marks."""
    parser = argparse.ArgumentParser(prog="python -m course_tools.grading.bench", description=__doc__)
    parser.add_argument("--lesson", default=lessons()[0], help="the lesson copied into the class")
    parser.add_argument("--copies", type=int, default=30, help="students in the class")
    parser.add_argument("--jobs", type=int, default=default_jobs(DEFAULT_MEMORY_GIB))
    parser.add_argument("--skip-lessons", action="store_true", help="only the class throughput")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        base = Path(tmp)
        options = Options(args.lesson, make_class(base / "class", args.lesson, args.copies), base / "out",
                          jobs=args.jobs)
        wall, book, seconds = time_grading(options)
        full = _full_marks(book)
        print(f"class of {args.copies} x {args.lesson}, {args.jobs} at a time: {wall:.0f} s in all, "
              f"{args.copies / wall * 60:.1f} submissions per minute; one submission's worker: "
              f"median {seconds.drop(CANARY, errors='ignore').median():.1f} s")
        if not args.skip_lessons:
            table, lessons_full = lesson_times(base)
            full &= lessons_full
            print(table.to_string(index=False))
    print("every solution scored full marks" if full else "A SOLUTION LOST MARKS: see the gradebooks")
    return 0 if full else 1


if __name__ == "__main__":
    sys.exit(main())
