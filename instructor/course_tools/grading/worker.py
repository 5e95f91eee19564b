"""Grade one submission in its own process: nbgrader autograde and feedback, then result.json.

`course_tools.grading.grade` forks one process per submission (`run_child`; by hand: `python -m
course_tools.grading.worker WORK/task.json`). It runs nbgrader as a library inside
WORK/course (its own gradebook, its own copy of the notebook); nbgrader starts the student's
kernel through a kernelspec that puts it in the sandbox (`course_tools.grading.sandbox`), under the
memory limit of `course_tools.grading.memory`. What nbgrader alone would record as a plain
zero (a dead kernel, a cell stopped by the timeout or the memory limit, an error in a cell of
the lesson itself) becomes a named problem in result.json.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from nbgrader.preprocessors.execute import UnresponsiveKernelError
from traitlets import Unicode
from traitlets.config import Config

from course_tools.grading import flags, sandbox
from course_tools.grading.memory import MemoryGuard, limit_process_memory
from course_tools.stamp import SETUP_TAG

COURSE_ID = "attention-from-scratch"
KERNEL_NAME = "graded-python"
KERNEL_CACHE = Path(".cache") / "attention-from-scratch"  # utils.run_cache's cache, in the scratch folder
FILE_BYTES = 2**30  # no single file a kernel writes may exceed this (a full disk hurts everyone)
UNRESPONSIVE_AFTER = 2  # consecutive timed-out cells: the interrupt did not stop the kernel
OUT_OF_MEMORY = re.compile(r"can't allocate memory|cannot allocate memory|out of memory|bad_alloc", re.I)


@dataclass(frozen=True)
class Task:
    """Everything the worker needs to grade one submission (written by the parent as JSON)."""

    lesson: str
    student: str
    work: str  # this submission's folder: course/, scratch/, jupyter/, result.json
    sockets: str  # a short folder for the kernel's IPC sockets
    cell_timeout: int
    memory_bytes: int
    sandbox: str  # "bwrap" or "none"
    hidden: list[str] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)
    threads: int = 1
    device: str = "cpu"  # where the kernel computes: "cpu" hides any GPU from it; "cuda" does not
    delegation: str = "zero"  # an exercise that calls its reference: "zero" scores it 0, "flag" only flags it

    @property
    def course(self) -> Path:
        return Path(self.work) / "course"

    @property
    def scratch(self) -> Path:
        return Path(self.work) / "scratch"

    @property
    def result(self) -> Path:
        return Path(self.work) / "result.json"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Task:
        return cls(**json.loads(path.read_text()))


@dataclass
class Result:
    """What grading one submission found: nbgrader's scores and the problems it could not see."""

    scores: dict[str, float | None]  # grade_id -> autograded score; None: no score
    problems: list[str]  # each makes the submission "could not be graded"
    manual: list[str] = field(default_factory=list)  # grade_ids awaiting the formgrader
    feedback: bool = False
    seconds: float = 0.0
    delegated: list[str] = field(default_factory=list)  # "delegated: EXERCISE -> NAME" (flags.delegations)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Result:
        return cls(**json.loads(path.read_text()))


def cell_label(index: int, cell: nbformat.NotebookNode) -> str:
    metadata = cell.get("metadata", {})
    setup = SETUP_TAG if SETUP_TAG in metadata.get("tags", []) else ""
    name = metadata.get("nbgrader", {}).get("grade_id") or setup
    return f"cell {index + 1}" + (f" ({name})" if name else "")


def _is_exercise_or_check(cell: nbformat.NotebookNode) -> bool:
    flags = cell.get("metadata", {}).get("nbgrader", {})
    return bool(flags.get("solution") or flags.get("grade"))


def _errors(cell: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _timed_out(cell: nbformat.NotebookNode) -> bool:
    return any(o.get("ename") == "CellTimeoutError" for o in _errors(cell))


def _out_of_memory(output: nbformat.NotebookNode) -> bool:
    return output.get("ename") == "MemoryError" or bool(OUT_OF_MEMORY.search(output.get("evalue", "")))


def _exit_note(code: int | None) -> str:
    """' (exit code 1)' or ' (killed by SIGKILL)'; bwrap reports a signal n as 128 + n."""
    if code is None:
        return ""
    number = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        name = signal.Signals(number).name if number else ""
    except ValueError:
        name = ""
    if not name:
        return f" (exit code {code})"
    # a failed allocation inside C++ code (torch) aborts, and the kernel killer sends SIGKILL
    hint = ", often the memory limit" if name in ("SIGABRT", "SIGKILL", "SIGSEGV", "SIGBUS") else ""
    return f" (killed by {name}{hint})"


class GuardedExecute(Execute):
    """nbgrader's Execute, with the kernel in a scratch folder, recording how a kernel failed."""

    scratch = Unicode("", help="the kernel's working folder").tag(config=True)
    failures: ClassVar[list[str]] = []  # read by the worker once autograde returns
    running: ClassVar[str] = "the kernel's start"  # the cell executing now, for the memory guard
    guard: ClassVar[MemoryGuard | None] = None  # set by the worker while it grades

    def preprocess(self, nb, resources=None, km=None):
        resources = resources or {}
        # the kernel works in its scratch folder, never where nbgrader writes its results
        resources.setdefault("metadata", {})["path"] = self.scratch
        self._timeouts, self._started = 0, False
        try:
            return super().preprocess(nb, resources, km)
        except RuntimeError as err:  # a dead kernel is recorded where it died; the rest is new
            if not self.failures:
                what = "stopped" if self._started else "did not start"
                self.failures.append(f"the kernel {what}: {err}")
            raise

    def _exit_code(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return process.poll() if process is not None else None

    def preprocess_cell(self, cell, resources, index):
        self._started = True
        GuardedExecute.running = cell_label(index, cell)
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            if self.guard is not None and self.guard.tripped:
                self.failures.append(self.guard.tripped)
            else:
                note = _exit_note(self._exit_code())
                self.failures.append(f"the kernel died in {cell_label(index, cell)}{note}")
            raise
        except CellTimeoutError:  # nbclient's verdict when the interrupt did not stop the cell
            self.failures.append(f"timed out: {cell_label(index, cell)} ran over {self.timeout} s and "
                                 "ignored the interrupt, so grading stopped there")
            raise
        self._timeouts = self._timeouts + 1 if _timed_out(cell) else 0
        if self._timeouts >= UNRESPONSIVE_AFTER:
            self.failures.append(f"timed out: the kernel ignored the interrupt after {self.timeout} s "
                                 f"and was still busy at {cell_label(index, cell)}, so it was stopped")
            raise UnresponsiveKernelError()
        return cell, resources


def nbgrader_config(task: Task) -> Config:
    """nbgrader's configuration for this submission's course folder."""
    c = Config()
    c.CourseDirectory.root = str(task.course)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = "source"
    c.CourseDirectory.db_url = f"sqlite:///{task.course / 'gradebook.db'}"
    c.Execute.timeout = task.cell_timeout
    c.Execute.kernel_name = KERNEL_NAME
    c.Execute.shutdown_kernel = "immediate"  # its state is thrown away: no need to wait seconds for it
    c.GuardedExecute.scratch = str(task.scratch)
    c.OverwriteCells.add_missing_cells = True  # a deleted check cell comes back from the source
    c.KernelManager.transport = "ipc"  # Unix sockets: the sandboxed kernel has no network
    c.KernelManager.ip = f"{task.sockets}/kernel"
    c.KernelManager.connection_file = f"{task.sockets}/kernel.json"
    default = Autograde.class_traits()["autograde_preprocessors"].default()
    c.Autograde.autograde_preprocessors = [GuardedExecute if p is Execute else p for p in default]
    return c


def write_kernelspec(task: Task) -> Path:
    """The kernelspec nbgrader starts: the sandbox (or not), the kernel's environment."""
    jail = sandbox.Jail(task.scratch, Path(task.sockets), tuple(map(Path, task.hidden)),
                        tuple(map(Path, task.visible)))
    scratch = str(task.scratch)
    env = {
        "HOME": scratch, "IPYTHONDIR": f"{scratch}/.ipython", "MPLCONFIGDIR": f"{scratch}/.matplotlib",
        "XDG_CACHE_HOME": f"{scratch}/.cache", "TMPDIR": f"{scratch}/tmp", "PYTHONDONTWRITEBYTECODE": "1",
        "COURSE_CACHE": str(task.scratch / KERNEL_CACHE),  # models the demos train (utils.run_cache)
        # the kernel's compute threads (grade.KERNEL_THREADS says why one); few malloc arenas,
        # as each keeps freed memory of its own, which counts against the memory limit
        "OMP_NUM_THREADS": str(task.threads), "MKL_NUM_THREADS": str(task.threads), "MALLOC_ARENA_MAX": "2",
        "COURSE_DEVICE": task.device,
        "COURSE_DELEGATION": task.delegation,  # what utils.checks does when an exercise calls its reference
    }
    if task.device == "cpu":  # a GPU grading machine grades like any other, and CUDA never starts
        env["CUDA_VISIBLE_DEVICES"] = ""
    spec = {"argv": sandbox.kernel_argv(task.sandbox, jail), "display_name": "graded submission",
            "language": "python", "interrupt_mode": "message", "env": env}
    folder = Path(task.work) / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    (task.scratch / "tmp").mkdir(parents=True, exist_ok=True)
    return folder.parent.parent


def notebook_problems(nb: nbformat.NotebookNode, task: Task, source: nbformat.NotebookNode) -> list[str]:
    """What nbgrader scores as a silent zero: cells stopped by the timeout or the memory limit,
    and errors in the lesson's own cells (the setup cell, imports, demos) as the source has them,
    which no exercise should be able to cause: the grading environment is the usual suspect."""
    found = []
    rest = "the rest of the notebook was graded"
    lesson_cells = {c.source for c in source.cells if c.cell_type == "code" and not _is_exercise_or_check(c)}
    for index, cell in enumerate(nb.cells):
        label = cell_label(index, cell)
        if _timed_out(cell):
            found.append(f"timed out: {label} ran over {task.cell_timeout} s and was interrupted; {rest}")
        elif any(_out_of_memory(o) for o in _errors(cell)):
            limit = f"{task.memory_bytes / 2**30:g} GiB"
            found.append(f"memory limit: {label} ran out of memory (limit {limit}); {rest}")
        elif _errors(cell) and cell.source in lesson_cells:
            error = _errors(cell)[0]
            message = (error.get("evalue", "").strip().splitlines() or [""])[0][:200]
            found.append(f"a cell of the lesson failed: {label} raised {error.get('ename')}: {message} "
                         "(not an exercise: check the grading environment, or the student's earlier cells)")
    return found


def _last_error_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines()
             if re.match(r"\s*[\w.]+(Error|Exception)\b", line)]
    return lines[-1] if lines else "no error message"


def read_scores(task: Task) -> tuple[dict[str, float | None], list[str]]:
    """Autograded scores by grade_id, and the grade_ids that wait for manual grading."""
    with Gradebook(f"sqlite:///{task.course / 'gradebook.db'}", COURSE_ID) as gb:
        try:
            submitted = gb.find_submission_notebook(task.lesson, task.lesson, task.student)
        except MissingEntry:  # nbgrader failed before it recorded the submission
            return {}, []
        grades = list(submitted.grades)
        manual = [g.name for g in grades if g.needs_manual_grade and g.auto_score is None]
        return {g.name: g.auto_score for g in grades}, manual


def grade(task: Task) -> Result:
    """Autograde, then generate feedback; the problems found on the way make up the result."""
    config = nbgrader_config(task)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    outcome = api.autograde(task.lesson, task.student, force=True, create=True)
    print(outcome.get("log", ""), flush=True)
    if not outcome["success"]:
        problems = GuardedExecute.failures or [f"nbgrader failed: {_last_error_line(outcome.get('log', ''))}"]
        scores = dict.fromkeys(read_scores(task)[0])
        return Result(scores, problems)
    graded = task.course / "autograded" / task.student / task.lesson / f"{task.lesson}.ipynb"
    source = task.course / "source" / task.lesson / f"{task.lesson}.ipynb"
    executed, source = nbformat.read(graded, as_version=4), nbformat.read(source, as_version=4)
    problems = notebook_problems(executed, task, source)
    scores, manual = read_scores(task)
    feedback = api.generate_feedback(task.lesson, task.student, force=True)
    print(feedback.get("log", ""), flush=True)
    return Result(scores, problems, manual, feedback=bool(feedback["success"]),
                  delegated=flags.delegations(executed))


def run_child(task_file: str, log: str) -> None:
    """Entry point of a process forked for one submission: its output, and its kernel's, go to `log`."""
    sys.stdout.flush()
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    sys.exit(main([task_file]))


def main(argv: list[str] | None = None) -> int:
    """Grade the submission described by the task file argv[0]; write its result.json."""
    start = time.perf_counter()
    task = Task.load(Path((sys.argv[1:] if argv is None else argv)[0]))
    limit_process_memory(task.memory_bytes, FILE_BYTES, task.device)
    warnings.filterwarnings("ignore", module="sqlalchemy")  # nbgrader's harmless SAWarnings
    warnings.filterwarnings("ignore", message=".*not in session.*")
    os.environ["JUPYTER_PATH"] = str(write_kernelspec(task))
    os.environ["JUPYTER_RUNTIME_DIR"] = task.sockets
    GuardedExecute.guard = MemoryGuard(task.memory_bytes, lambda: GuardedExecute.running)
    with GuardedExecute.guard:
        result = grade(task)
    result.seconds = round(time.perf_counter() - start, 2)
    result.save(task.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
