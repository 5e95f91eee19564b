"""`python -m course_tools COMMAND`: the maintainers' and instructors' tools.

    release [LESSON ...] [--check]   stamp solutions/ and regenerate notebooks/
    check                            notebook conventions of every lesson
    lessons                          list the lessons
    grade LESSON --submissions DIR   autograde a class into a gradebook (see INSTRUCTORS.md)
    gradebook DIR                    after grading written answers in the formgrader, rewrite
                                     DIR/gradebook.csv and summary.csv with their scores
    gpu-check [--dry-run]            run every notebook at the GPU profile, and as on a T4
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from course_tools import conformance
from course_tools.config import lessons, load_config, repo_root, require_lesson, solution_path, student_path
from course_tools.release import ReleaseError, out_of_sync, read_notebook, release


def _release(args: argparse.Namespace) -> int:
    if args.check:
        problems = out_of_sync()
        print("\n".join(problems) if problems else "notebooks/ is in sync with solutions/")
        return 1 if problems else 0
    only = [require_lesson(name) for name in args.lessons] or None
    changed = release(only=only)
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} file(s) changed" if changed else "nothing to change")
    return 0


def _check(_: argparse.Namespace) -> int:
    config, failures = load_config(), 0
    for lesson in lessons():
        for path, student in ((solution_path(lesson), False), (student_path(lesson), True)):
            for problem in conformance.problems(read_notebook(path), config, lesson, student=student):
                print(f"{path}: {problem}")
                failures += 1
    print(f"{failures} problem(s)" if failures else "every notebook conforms")
    return 1 if failures else 0


def _lessons(_: argparse.Namespace) -> int:
    print("\n".join(lessons()))
    return 0


def _grade(args: argparse.Namespace) -> int:
    # imported here: nbgrader takes seconds to import, and the other commands do not need it
    from course_tools.grading.course import OutputError
    from course_tools.grading.grade import DEFAULT_MEMORY_GIB, GradingError, Options, default_jobs, grade
    from course_tools.grading.intake import IntakeError
    from course_tools.grading.sandbox import SandboxError

    memory = args.memory_limit or DEFAULT_MEMORY_GIB
    options = Options(lesson=args.lesson, submissions=args.submissions,
                      out=args.out or repo_root() / "grading" / args.lesson,
                      jobs=args.jobs or default_jobs(memory), cell_timeout=args.cell_timeout,
                      memory_gib=memory, sandbox=args.sandbox, device=args.device, force=args.force,
                      canary=not args.no_canary, delegation=args.delegation)
    try:
        grade(options)
    except (GradingError, OutputError, IntakeError, SandboxError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _gradebook(args: argparse.Namespace) -> int:
    from course_tools.grading import course, report
    from course_tools.grading.course import OutputError

    out = args.out.resolve()
    try:
        lesson = course.graded_lesson(out)
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    source = read_notebook(out / "source" / lesson / f"{lesson}.ipynb")
    book = _read_gradebook(out / "gradebook.csv")
    book = report.refresh(book, course.entered_scores(out, lesson), report.written_answers(source))
    graded = report.exercises(source)
    report.write_atomically(book, out / "gradebook.csv")
    report.write_atomically(report.summary(book, graded), out / "summary.csv")
    counts = book["status"].value_counts()
    print(", ".join(f"{counts[s]} {s}" for s in counts.index) + f": {out / 'gradebook.csv'}")
    return 0


def _read_gradebook(path: Path):
    import pandas as pd

    # student ids such as "NA" or "null" are names, not missing values
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"student_id": str})


def _add_grade(commands: argparse._SubParsersAction) -> None:
    grade = commands.add_parser("grade", help="autograde a class's submissions into a gradebook",
                                description="Autograde every student's notebook with nbgrader, in parallel "
                                "and sandboxed; write gradebook.csv, summary.csv and feedback/ under --out.")
    grade.add_argument("lesson", help="the lesson to grade, e.g. 00_course_tour")
    grade.add_argument("--submissions", type=Path, required=True, metavar="DIR",
                       help="one folder per student: DIR/STUDENT/LESSON.ipynb "
                       "or DIR/STUDENT/LESSON/LESSON.ipynb")
    grade.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: grading/LESSON/)")
    grade.add_argument("--jobs", type=_positive(int), metavar="N",
                       help="submissions graded at once (default: the cores, as far as memory allows)")
    grade.add_argument("--cell-timeout", type=_positive(int), default=60, metavar="S",
                       help="seconds a cell may run before it is interrupted (default: 60)")
    grade.add_argument("--memory-limit", type=_positive(float), metavar="GiB",
                       help="address space of each process grading a submission (default: 4)")
    grade.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                       help="bubblewrap around each kernel: auto uses it where it works (default: auto)")
    grade.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="where graded kernels compute (default: cpu, so that every grading machine "
                       "grades alike; the grading profile is small)")
    grade.add_argument("--delegation", choices=("zero", "flag"), default="zero",
                       help="an exercise whose code calls what it must write itself (its reference in utils, "
                       "or the PyTorch function that does the whole job): zero scores it 0, flag keeps its "
                       "score; both list it in the flags column (default: zero)")
    grade.add_argument("--no-canary", action="store_true",
                       help="do not grade the solution first (it checks the grading environment, and "
                            "shares the models its demos train with every submission)")
    grade.add_argument("--force", action="store_true",
                       help="overwrite an output folder that holds grades entered in the formgrader")
    grade.set_defaults(run=_grade)
    book = commands.add_parser(
        "gradebook", help="rewrite a gradebook with the scores entered in the formgrader",
        description="After grading the written answers in the formgrader (INSTRUCTORS.md, section 5), "
        "rewrite gradebook.csv and summary.csv in the output folder with them: totals follow, and a "
        "student whose written answers are all graded is 'graded'.")
    book.add_argument("out", type=Path, metavar="DIR",
                      help="the output folder of `grade` (e.g. grading/LESSON)")
    book.set_defaults(run=_gradebook)


def _add_gpu_check(commands: argparse._SubParsersAction) -> None:
    from course_tools import gpu_check

    parser = commands.add_parser("gpu-check", help="run every notebook at the GPU profile, and as on a T4",
                                 description=gpu_check.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu_check.add_arguments(parser)
    parser.set_defaults(run=gpu_check.command)


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of `kind` above zero."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above zero, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="stamp solutions/ and regenerate notebooks/")
    rel.add_argument("lessons", nargs="*", help="only these lessons (default: all)")
    rel.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of sync")
    rel.set_defaults(run=_release)
    commands.add_parser("check", help="check the notebook conventions").set_defaults(run=_check)
    commands.add_parser("lessons", help="list the lessons").set_defaults(run=_lessons)
    _add_grade(commands)
    _add_gpu_check(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ReleaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
