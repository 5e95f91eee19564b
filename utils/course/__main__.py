"""`python -m utils.course COMMAND`: the maintainers' and instructors' tools.

    release [LESSON ...] [--check]   stamp solutions/ and regenerate notebooks/
    check                            notebook conventions of every lesson
    lessons                          list the lessons
"""

from __future__ import annotations

import argparse
import sys

from utils.course import conformance
from utils.course.config import lessons, load_config, require_lesson, solution_path, student_path
from utils.course.release import ReleaseError, out_of_sync, read_notebook, release


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="stamp solutions/ and regenerate notebooks/")
    rel.add_argument("lessons", nargs="*", help="only these lessons (default: all)")
    rel.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of sync")
    rel.set_defaults(run=_release)
    commands.add_parser("check", help="check the notebook conventions").set_defaults(run=_check)
    commands.add_parser("lessons", help="list the lessons").set_defaults(run=_lessons)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ReleaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
