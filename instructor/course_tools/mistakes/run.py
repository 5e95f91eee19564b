"""Run a lesson's planted mistakes (see course_tools.mistakes) and report how the checks answered.

    python -m course_tools.mistakes [--lessons 05 07] [--timeout 300] [--out docs/mistakes.md]

The lesson's solution notebook runs once, at the grading profile (seconds), in a fresh kernel in
its folder; after each check cell, a cell of our own plants each mistake of that exercise (the
edited exercise cell, then the check's visible part, hidden tests stripped), records what the
check said, and puts the right exercise back before the notebook goes on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import nbformat

from course_tools.config import lessons, solution_path
from course_tools.gpu_check import plain_traceback_ipython_dir
from course_tools.mistakes import CatalogueError, Mistake, Outcome

RESULTS = "_planted_mistake_messages"
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
_EXERCISE = re.compile(r"""checks\.exercise\(\s*["']([^"']+)["']""")


def catalogue(lesson: str) -> list[Mistake]:
    """The planted mistakes of `lesson` (instructor/course_tools/mistakes/lNN.py), or none."""
    try:
        module = importlib.import_module(f"course_tools.mistakes.l{lesson[:2]}")
    except ModuleNotFoundError:
        return []
    return list(module.MISTAKES)


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _locate(nb, mistake: Mistake, lesson: str) -> tuple[int, int]:
    """(index of the exercise's solution cell, index of its check cell)."""
    checks = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _nbgrader(c).get("grade")
              and mistake.exercise in _EXERCISE.findall(c.source)]
    if len(checks) != 1:
        raise CatalogueError(f"{lesson}: {mistake.what!r}: {len(checks)} check cells run "
                             f"checks.exercise({mistake.exercise!r}); expected one")
    check = checks[0]
    solutions = [i for i in range(check)
                 if nb.cells[i].cell_type == "code" and _nbgrader(nb.cells[i]).get("solution")]
    if not solutions:
        raise CatalogueError(f"{lesson}: no exercise cell before the check of {mistake.exercise!r}")
    exercise = solutions[-1]
    found = nb.cells[exercise].source.count(mistake.old)
    if found != 1:
        raise CatalogueError(f"{lesson}: {mistake.what!r}: {mistake.old!r} occurs {found} times in the "
                             f"exercise cell of {mistake.exercise!r}; it must occur exactly once")
    return exercise, check


def _planting_cell(exercise_source: str, check_source: str, planted: list[tuple[int, Mistake]]):
    """A code cell that runs each mistake's exercise and the visible check, then restores the exercise."""
    cases = [(key, exercise_source.replace(m.old, m.new, 1)) for key, m in planted]
    source = f"""\
{RESULTS} = globals().get({RESULTS!r}, {{}})
for _key, _planted in {cases!r}:
    try:
        exec(compile(_planted, "<exercise>", "exec"), globals())
        exec(compile({HIDDEN.sub("", check_source)!r}, "<check>", "exec"), globals())
        {RESULTS}[_key] = None
    except Exception as _err:
        {RESULTS}[_key] = f"{{type(_err).__name__}}: {{_err}}"
exec(compile({exercise_source!r}, "<exercise>", "exec"), globals())
"""
    return nbformat.v4.new_code_cell(source)


def planted_notebook(nb, mistakes: Sequence[Mistake], lesson: str):
    """`nb` with a planting cell after each check cell that has mistakes, and a final report cell."""
    by_check: dict[int, tuple[int, list[tuple[int, Mistake]]]] = {}
    for key, mistake in enumerate(mistakes):
        exercise, check = _locate(nb, mistake, lesson)
        by_check.setdefault(check, (exercise, []))[1].append((key, mistake))
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    for index, cell in enumerate(nb.cells):
        out.cells.append(cell)
        if index in by_check:
            exercise, planted = by_check[index]
            out.cells.append(_planting_cell(nb.cells[exercise].source, cell.source, planted))
    out.cells.append(nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({RESULTS}))"))
    return out


def run_lesson(lesson: str, timeout_s: float = 300) -> list[Outcome]:
    """Plant every mistake of `lesson` and collect what its checks said."""
    from nbclient import NotebookClient

    from course_tools.kernels import AsyncIpcKernelManager

    mistakes = catalogue(lesson)
    if not mistakes:
        return []
    path = solution_path(lesson)
    nb = planted_notebook(nbformat.read(path, as_version=4), mistakes, lesson)
    saved = dict(os.environ)  # the kernel inherits these; this process (a pytest worker) must not keep them
    os.environ["NBGRADER_EXECUTION"] = "autograde"  # the grading profile: seconds, claims not asserted
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("COURSE_CACHE", tempfile.mkdtemp(prefix="course-cache-"))
    if "IPYTHONDIR" not in os.environ:  # tracebacks without colour codes in the messages
        os.environ["IPYTHONDIR"] = str(plain_traceback_ipython_dir(Path(tempfile.mkdtemp(prefix="ipy-"))))
    client = NotebookClient(nb, timeout=int(timeout_s), kernel_name="python3",
                            kernel_manager_class=AsyncIpcKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    report = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    messages = {int(k): v for k, v in json.loads(report.strip().splitlines()[-1]).items()}
    return [Outcome(lesson, m, messages[key]) for key, m in enumerate(mistakes)]


def table(outcomes: Sequence[Outcome]) -> str:
    """A markdown report: per lesson and in all, then every mistake without a specific hint."""
    lines = ["| lesson | planted | caught | specific hint | share |", "|---|---:|---:|---:|---:|"]
    groups = sorted({o.lesson for o in outcomes})
    rows = [(g, [o for o in outcomes if o.lesson == g]) for g in groups] + [("all", list(outcomes))]
    for name, group in rows:
        caught, specific = sum(o.caught for o in group), sum(o.specific for o in group)
        share = f"{specific / len(group):.0%}" if group else "-"
        lines.append(f"| {name} | {len(group)} | {caught} | {specific} | {share} |")
    vague = [o for o in outcomes if not o.specific]
    if vague:
        lines += ["", "Without a specific hint:", ""]
        for o in vague:
            said = (o.message or "the check passed").splitlines()[0][:160]
            lines.append(f"- {o.lesson} `{o.mistake.exercise}`: {o.mistake.what} "
                         f"(wanted {list(o.mistake.hint)}): {said}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.mistakes",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", nargs="*", default=[], help="lesson numbers or names (default: all)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per cell")
    parser.add_argument("--out", type=Path, help="also write the report here (e.g. docs/mistakes.md)")
    args = parser.parse_args(argv)
    chosen = [name for name in lessons() if not args.lessons or any(name.startswith(w) for w in args.lessons)]
    outcomes: list[Outcome] = []
    for lesson in chosen:
        found = run_lesson(lesson, args.timeout)
        print(f"{lesson}: {sum(o.specific for o in found)} of {len(found)} with a specific hint", flush=True)
        outcomes += found
    report = table(outcomes)
    print(report)
    if args.out:
        args.out.write_text(f"# Planted mistakes and the hints they get\n\n`python -m "
                            f"course_tools.mistakes`, {len(outcomes)} mistakes in {len(chosen)} lessons."
                            f"\n\n{report}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
