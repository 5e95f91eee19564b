"""`python -m course_tools grade LESSON --submissions DIR`: a class's notebooks into a gradebook.

nbgrader does the grading (restoring check cells, hidden tests, scores, feedback); this adds
what a class of a hundred needs: the solution graded first as a canary of the grading
environment; one process and one copy per submission, run in parallel, each kernel sandboxed
(course_tools.grading.sandbox) under a per-cell timeout and a memory limit
(course_tools.grading.memory);
a status that tells "graded" from "could not be graded" and why; the submissions hashed
before and after; and gradebook.csv and summary.csv written with pandas. The output folder
is an nbgrader course (course_tools.grading.course): the formgrader works there.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat
import pandas as pd
import psutil

from course_tools.config import repo_root, require_lesson, solution_path, student_path
from course_tools.grading import course, flags, intake, report, sandbox
from course_tools.grading.integrity import Watch
from course_tools.grading.report import Outcome
from course_tools.grading.worker import KERNEL_CACHE, Result, Task, run_child

START_S = 120  # beyond the cells' own time: kernel start, nbgrader, feedback
DEFAULT_CELL_TIMEOUT_S = 60
DEFAULT_MEMORY_GIB = 4.0
CANARY = ".canary"  # the solution's run; a hidden folder's name is never a student's (intake skips them)


class GradingError(RuntimeError):
    """Grading cannot start; the message says what to change."""


@dataclass(frozen=True)
class Options:
    lesson: str
    submissions: Path
    out: Path
    jobs: int
    cell_timeout: int = DEFAULT_CELL_TIMEOUT_S
    memory_gib: float = DEFAULT_MEMORY_GIB
    sandbox: str = "auto"
    device: str = "cpu"  # where graded kernels compute; "cuda" only when an instructor asks
    force: bool = False  # discard grades entered in the formgrader in an earlier run's output
    canary: bool = True  # grade the solution first, and stop unless it scores full marks
    delegation: str = "zero"  # an exercise whose code calls its reference: "zero" scores it 0, "flag" keeps
    # its score; both flag it (utils.checks, `forbid=`). Zero by default: the visible check told the student.


# One compute thread per kernel, whatever the number of jobs. The course's graded demos are
# small models, which a second thread does not speed up; and OpenMP threads spin while they
# wait, so a kernel with 2 threads on a machine where anything else holds a core ran 4x slower
# in a side-by-side measurement (60 steps of a GRU + MLP: 0.38 s with 1 thread, 1.60 s with 2;
# a lesson 08 submission took 118 s instead of 9 s).
KERNEL_THREADS = 1


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs(memory_gib: float) -> int:
    """One submission per core, as long as their memory limits fit in the memory available."""
    fits = int(psutil.virtual_memory().available // (memory_gib * 2**30))
    return max(1, min(cores(), fits))


def _check_folders(submissions: Path, out: Path) -> None:
    if out == submissions or submissions.is_relative_to(out):
        raise GradingError(f"--submissions {submissions} lies inside --out {out}, which every run "
                           "rewrites: keep the submissions elsewhere")
    if out.is_relative_to(submissions):
        raise GradingError(f"--out {out} lies inside --submissions {submissions}: it would be graded "
                           "as a student's folder; choose an output folder elsewhere")


def protected(mode: str, options: Options, tasks: dict[str, Task]) -> list[Path]:
    """What no submission may change: the submissions; unsandboxed, the course files and copies too."""
    # (unsandboxed, each submission's results join these as it finishes: see run_all)
    if mode == "bwrap":  # the sandbox hides all this from kernels; the check stays, as a witness
        return [options.submissions]
    root, lesson, out = repo_root(), options.lesson, options.out
    copies = [Path(t.work) / "course" / part for t in tasks.values() for part in ("submitted", "source")]
    return [options.submissions, solution_path(lesson).parent, student_path(lesson).parent, root / "utils",
            root / "instructor", root / "pyproject.toml", out / "source", out / "release",
            out / "gradebook.db", *copies]


def _kill_tree(pid: int) -> None:
    """Stop a worker and everything it started (nbgrader, the kernel, whatever that spawned)."""
    try:
        worker = psutil.Process(pid)
        family = [*worker.children(recursive=True), worker]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


def processes() -> multiprocessing.context.BaseContext:
    """Workers forked from a server that imported nbgrader once: seconds saved per submission."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["course_tools.grading.worker"])
    return context


def start_workers() -> None:
    """Start the fork server now, so that its imports overlap the preparations."""
    processes()
    multiprocessing.forkserver.ensure_running()


def run_worker(task: Task, log: Path, cap_s: float) -> Result:
    """Grade one submission in a process of its own, stopped after `cap_s` seconds whatever happens."""
    task_file = Path(task.work) / "task.json"
    task.save(task_file)
    worker = processes().Process(target=run_child, args=(str(task_file), str(log)), name=task.student)
    worker.start()
    worker.join(cap_s)
    if worker.is_alive():
        _kill_tree(worker.pid)
        worker.join()
        return Result({}, [f"timed out: grading took longer than {cap_s:.0f} s and was stopped"],
                      seconds=cap_s)
    if task.result.is_file():
        return Result.load(task.result)
    return Result({}, [f"the grader stopped without a result (exit code {worker.exitcode}); "
                       f"see logs/{task.student}.log"])


def _cap(solution: nbformat.NotebookNode, cell_timeout: int) -> float:
    """The longest a submission can legitimately take: every code cell at the timeout."""
    return START_S + cell_timeout * (1 + sum(c.cell_type == "code" for c in solution.cells))


def _to_grade(submission: intake.Submission, released: nbformat.NotebookNode) -> bytes:
    """The notebook nbgrader gets: as submitted, with deleted exercise and check cells put back."""
    nb = submission.read()
    if course.restore_deleted_cells(nb, released):
        return nbformat.writes(nb).encode()
    return submission.content


def _task(options: Options, mode: str, student: str, work: Path) -> Task:
    root = repo_root()
    hidden = sandbox.default_hidden(root, Path.home(), [options.submissions, options.out])
    socket_base = "/tmp" if Path("/tmp").is_dir() else None  # socket paths must stay short
    return Task(lesson=options.lesson, student=student, work=str(work),
                sockets=tempfile.mkdtemp(prefix="grade-", dir=socket_base),
                cell_timeout=options.cell_timeout, memory_bytes=int(options.memory_gib * 2**30),
                sandbox=mode, hidden=[str(p) for p in hidden],
                visible=[str(p) for p in sandbox.default_visible(root)], threads=KERNEL_THREADS,
                device=options.device, delegation=options.delegation)


def make_tasks(options: Options, mode: str, found: list[intake.Submission],
               released: nbformat.NotebookNode, cache: Path | None) -> dict[str, Task]:
    """A work folder and a task per gradable submission, all copied before any code runs."""
    tasks = {}
    for submission in found:
        if submission.gradable:
            work = course.make_workdir(options.out, options.lesson, submission.student,
                                       _to_grade(submission, released), cache)
            tasks[submission.student] = _task(options, mode, submission.student, work)
    return tasks


def canary_failures(result: Result, solution: nbformat.NotebookNode) -> list[str]:
    """Why the solution's run is not a clean full score, if it is not."""
    scores, written = result.scores, report.written_answers(solution)  # those wait for a person
    lost = [f"{grade_id} scored {scores.get(grade_id)} of {points:g}"
            for grade_id, points in report.exercises(solution)
            if grade_id not in written and scores.get(grade_id) != points]
    # a solution that calls what its exercise forbids: the lesson's `forbid=` lists are wrong
    return result.problems + lost + [f"the solution {d}" for d in result.delegated]


def grade_canary(options: Options, mode: str, solution: nbformat.NotebookNode,
                 say: Callable[[str], None]) -> tuple[Path | None, Result]:
    """Grade the solution in the students' conditions; stop unless it scores full marks. Return the
    models its demos trained, for every submission to start from, and its result."""
    # A broken grading environment (a missing package, a memory limit too small for torch, a
    # sandbox that hides the course) would otherwise give every student the same wrong grade.
    # And lessons train their demo models through a cache (utils.run_cache.cached_run); each
    # kernel has a cache of its own, so without this every submission would train them all again.
    say("canary: grading the solution first, in the same conditions as the submissions")
    content = nbformat.writes(solution).encode()
    work = course.make_workdir(options.out, options.lesson, CANARY, content)
    task = _task(options, mode, CANARY, work)
    result = run_worker(task, options.out / "logs" / f"{CANARY}.log", _cap(solution, options.cell_timeout))
    shutil.rmtree(task.sockets, ignore_errors=True)
    if failures := canary_failures(result, solution):
        log = options.out / "logs" / f"{CANARY}.log"
        raise GradingError(
            f"the solution of {options.lesson} does not score full marks in this grading environment, so no "
            f"submission was graded: {'; '.join(failures)}. Its run is in {log}; INSTRUCTORS.md "
            "(Troubleshooting) lists the usual causes")
    say(f"canary: full marks in {result.seconds:.1f} s")
    cache = task.scratch / KERNEL_CACHE
    return (cache if cache.is_dir() and any(cache.iterdir()) else None), result


def run_all(tasks: dict[str, Task], options: Options, cap_s: float, watch: Watch,
            on_done: Callable[[str, Result, int], None]) -> dict[str, Result]:
    """Grade every task, `options.jobs` at a time; `on_done` hears of each as it finishes."""
    logs = options.out / "logs"

    def one(task: Task) -> Result:
        watch.started(task.student)
        try:
            result = run_worker(task, logs / f"{task.student}.log", cap_s)
        except Exception as err:  # one submission's trouble never stops the class
            result = Result({}, [f"the grader failed: {type(err).__name__}: {err}"])
        finally:  # unsandboxed, a finished submission's results are protected from the others
            extra = [Path(task.work) / "course", task.result] if task.sandbox == "none" else []
            watch.finished(task.student, protect=[p for p in extra if p.exists()])
        result.problems += [watch.problem(task.student)] if watch.problem(task.student) else []
        return result

    results: dict[str, Result] = {}
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {pool.submit(one, task): student for student, task in tasks.items()}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            on_done(futures[future], results[futures[future]], len(results))
    for task in tasks.values():
        shutil.rmtree(task.sockets, ignore_errors=True)
    return results


def outcome(submission: intake.Submission, result: Result | None,
            notebooks: tuple[nbformat.NotebookNode, nbformat.NotebookNode]) -> Outcome:
    """Everything known about one student: the intake's findings, or the worker's."""
    if result is None:
        return Outcome(submission.student, problems=[submission.problem])
    notes = report.awaiting_note(result.manual)
    if not result.feedback and not result.problems:
        notes.append(f"no feedback was generated; see logs/{submission.student}.log")
    flagged = result.delegated + flags.flags(submission.read(), *notebooks)
    return Outcome(submission.student, result.scores, result.problems, notes, flagged, awaiting=result.manual)


def _say(line: str) -> None:
    print(line, flush=True)


def _progress(say: Callable[[str], None], total: int) -> Callable[[str, Result, int], None]:
    def tell(student: str, result: Result, done: int) -> None:
        status = "could not be graded: " + "; ".join(result.problems) if result.problems else "graded"
        say(f"[{done}/{total}] {student}: {status} ({result.seconds:.1f} s)")

    return tell


def write_reports(out: Path, outcomes: list[Outcome], solution: nbformat.NotebookNode) -> pd.DataFrame:
    """gradebook.csv and summary.csv, each written atomically; returns the gradebook."""
    graded = report.exercises(solution)
    book = report.gradebook(outcomes, graded)
    report.write_atomically(book, out / "gradebook.csv")
    report.write_atomically(report.summary(book, graded), out / "summary.csv")
    return book


def _announce(say: Callable[[str], None], run: Run) -> None:
    if run.mode == "none":
        say("note: no bubblewrap sandbox here; kernels run unsandboxed and files outside their "
            "folder are hashed before and after each one instead (see INSTRUCTORS.md)")
    options = run.options
    say(f"grading {len(run.tasks)} of {len(run.found)} submission(s) of {options.lesson}, {options.jobs} "
        f"at a time (sandbox: {run.mode}, cell timeout {options.cell_timeout} s, memory limit "
        f"{options.memory_gib:g} GiB)")


@dataclass
class Run:
    """One grading run, prepared: every copy made before any student's code runs."""

    options: Options
    mode: str  # "bwrap" or "none"
    found: list[intake.Submission]
    notebooks: tuple[nbformat.NotebookNode, nbformat.NotebookNode]  # released and solution
    tasks: dict[str, Task]
    watch: Watch
    canary: Result | None  # the solution's run, when there was one


def prepare(options: Options, say: Callable[[str], None]) -> Run:
    """Check the folders, read the submissions, make the output course and a copy per submission."""
    require_lesson(options.lesson)
    options = replace(options, submissions=options.submissions.resolve(), out=options.out.resolve())
    _check_folders(options.submissions, options.out)
    found = intake.find_all(options.submissions, options.lesson)
    notebooks = (nbformat.read(student_path(options.lesson), as_version=4),
                 nbformat.read(solution_path(options.lesson), as_version=4))
    mode = sandbox.resolve(options.sandbox)
    start_workers()
    course.clear_output(options.out, options.force)
    course.make_course(options.out, options.lesson)
    (options.out / "logs").mkdir()
    cache, canary = grade_canary(options, mode, notebooks[1], say) if options.canary else (None, None)
    tasks = make_tasks(options, mode, found, notebooks[0], cache)
    return Run(options, mode, found, notebooks, tasks, Watch(protected(mode, options, tasks)), canary)


def finish(run: Run, results: dict[str, Result], say: Callable[[str], None]) -> pd.DataFrame:
    """Check the watched files once more, merge into the output course, write the reports."""
    run.watch.check()
    for line in run.watch.unexplained:
        say(f"warning: {line} while no submission ran")
    out = run.options.out
    course.merge(out, run.options.lesson, {s: Path(t.work) for s, t in run.tasks.items()},
                 {s.student: s.content for s in run.found if s.student in run.tasks})
    book = write_reports(out, [outcome(s, results.get(s.student), run.notebooks) for s in run.found],
                         run.notebooks[1])
    seconds = {**({CANARY: run.canary.seconds} if run.canary else {}),
               **{student: results[student].seconds for student in sorted(results)}}
    # kept apart from the gradebook, which must not change from one run to the next
    pd.Series(seconds, name="seconds").rename_axis("student_id").to_csv(out / "logs" / "seconds.csv")
    shutil.rmtree(out / ".work", ignore_errors=True)
    return book


def grade(options: Options, say: Callable[[str], None] = _say) -> pd.DataFrame:
    """Grade every submission of `options.lesson`; write the output folder; return the gradebook."""
    # Workers are forked by multiprocessing: a script calling this needs `if __name__ == "__main__":`
    run = prepare(options, say)
    _announce(say, run)
    start = time.perf_counter()
    cap = _cap(run.notebooks[1], run.options.cell_timeout)
    results = run_all(run.tasks, run.options, cap, run.watch, _progress(say, len(run.tasks)))
    book = finish(run, results, say)
    failed = int((book["status"] == report.FAILED).sum())
    manual = int((book["status"] == report.MANUAL).sum())
    say(f"{len(book) - failed - manual} graded, {manual} need manual grading (written answers: "
        f"INSTRUCTORS.md, section 5), {failed} could not be graded, in {time.perf_counter() - start:.0f} s: "
        f"{run.options.out / 'gradebook.csv'}")
    return book
