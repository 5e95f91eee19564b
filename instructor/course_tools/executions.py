"""Executed student notebooks, stored by what they depend on: the outputs the website shows.

Outputs are never committed, so the website (`make site`) shows each student notebook as a
fresh execution made it. Executing them all takes minutes, and the test suite has usually just
done it (nbval runs every student notebook), so the suite keeps each student notebook that
ran without a failure, and the site build reuses it while nothing it depends on has changed.
What an execution depends on is its **key**: the notebook's bytes, every file of the course
package `utils`, the installed torch, and the environment variables that choose the profile
and the device. Anything with no stored execution under its current key runs again here.

    python -m course_tools.executions [--lessons NN ...]   # execute what is missing
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import nbformat

from course_tools.config import lessons, repo_root, student_path

STORE_ENV = "COURSE_EXECUTIONS"  # where executions are kept (default: _build/executions)
KEPT_PER_LESSON = 3  # older executions of a lesson are removed when a new one is stored
# what changes a notebook's outputs besides its own text and the course package
KEY_ENVIRONMENT = ("COURSE_PROFILE", "COURSE_DEVICE", "COURSE_GPU_MEMORY_GIB", "COURSE_NO_BF16",
                   "NBGRADER_EXECUTION")


def store(root: Path | None = None) -> Path:
    return Path(os.environ.get(STORE_ENV) or (root or repo_root()) / "_build" / "executions")


@cache
def _package_digest(root: Path) -> str:
    """One hash of every file of `utils` (code, shipped data, checkpoints), with their paths."""
    digest = hashlib.sha256()
    for path in sorted((root / "utils").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(notebook: Path, root: Path | None = None) -> str:
    """What the notebook's outputs depend on, hashed: the same key, the same execution."""
    root = (root or repo_root()).resolve()
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    digest = hashlib.sha256(Path(notebook).read_bytes())
    digest.update(_package_digest(root).encode())
    digest.update(f"torch {torch_version}".encode())
    for name in KEY_ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()[:16]


def _stored_path(lesson: str, notebook: Path, root: Path | None) -> Path:
    return store(root) / f"{lesson}-{key(notebook, root)}.ipynb"


def stored(lesson: str, root: Path | None = None) -> Path | None:
    """The stored execution of the lesson's student notebook as it is now, or None."""
    path = _stored_path(lesson, student_path(lesson, root), root)
    return path if path.is_file() else None


def save(nb: nbformat.NotebookNode, lesson: str, root: Path | None = None) -> Path:
    """Store an execution of the lesson's student notebook (atomically: a reader never sees
    half a file), and drop the lesson's oldest executions beyond KEPT_PER_LESSON."""
    path = _stored_path(lesson, student_path(lesson, root), root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        nbformat.write(nb, tmp)
    os.replace(tmp.name, path)
    older = sorted(path.parent.glob(f"{lesson}-*.ipynb"), key=lambda p: p.stat().st_mtime)
    for old in older[:-KEPT_PER_LESSON]:
        old.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------
# What the test suite ran: nbval's cells, gathered into whole notebooks (see conftest.py)
# --------------------------------------------------------------------------------------


class NbvalRecorder:
    """Collects the outputs nbval gets for each cell of a student notebook; when the notebook's
    last cell has run and every cell passed, stores the notebook with those outputs."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self._failed: set[str] = set()
        self._ran: dict[str, int] = {}

    def _lesson(self, notebook_item) -> str | None:
        path = Path(str(notebook_item.fspath)).resolve()
        rel = path.relative_to(self.root) if path.is_relative_to(self.root) else None
        if rel is None or rel.parts[0] != "notebooks" or path != student_path(path.stem, self.root):
            return None
        return path.stem

    def record(self, cell_item, passed: bool) -> None:
        """After a cell's test: keep its outputs on the notebook nbval read, or note a failure."""
        notebook_item = cell_item.parent
        if self._lesson(notebook_item) is None:
            return
        outputs = getattr(cell_item, "test_outputs", None)
        if not passed or outputs is None:
            self._failed.add(notebook_item.nodeid)
            return
        count = self._ran.get(notebook_item.nodeid, 0) + 1
        self._ran[notebook_item.nodeid] = count
        cell_item.cell.outputs = [nbformat.from_dict(dict(output)) for output in outputs]
        for output in cell_item.cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
        cell_item.cell.execution_count = count

    def finish(self, notebook_item) -> Path | None:
        """The notebook's items are done: store it if every code cell ran and passed."""
        lesson = self._lesson(notebook_item)
        if lesson is None or notebook_item.nodeid in self._failed:
            return None
        nb = notebook_item.nb
        code_cells = sum(cell.cell_type == "code" for cell in nb.cells)
        if self._ran.get(notebook_item.nodeid, 0) != code_cells:
            return None  # a filtered run (-k, ::Cell) ran only part of it
        return save(nb, lesson, self.root)


# --------------------------------------------------------------------------------------
# Executing what is missing
# --------------------------------------------------------------------------------------


class ExecutionError(RuntimeError):
    """A student notebook failed to execute: the website cannot show it."""


@dataclass
class Executed:
    lesson: str
    path: Path  # the stored execution
    seconds: float  # 0 when it was already stored


def execute(notebook: Path, env: dict[str, str], timeout_s: float) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel started in its folder, with `env`."""
    from nbclient import NotebookClient

    from course_tools.kernels import AsyncIpcKernelManager

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=int(timeout_s), kernel_name="python3",
                            kernel_manager_class=AsyncIpcKernelManager,
                            resources={"metadata": {"path": str(notebook.parent)}})
    client.execute(env=env)
    return nb


def ensure(chosen: Sequence[str] | None = None, workers: int = 2, timeout_s: float = 300.0,
           root: Path | None = None, log=print, reuse_only: bool = False) -> list[Executed]:
    """A stored execution of each chosen lesson's student notebook: reused where its key
    matches, else executed now, `workers` at a time in curriculum order (so that a lesson
    needing an earlier lesson's model finds it trained, in one fresh model cache).
    `reuse_only`: execute nothing, and fail if an execution is missing."""
    from course_tools.gpu_check import kernel_env, plain_traceback_ipython_dir

    root = root or repo_root()
    chosen = list(chosen or lessons(root))
    done = {lesson: stored(lesson, root) for lesson in chosen}
    missing = [lesson for lesson in chosen if done[lesson] is None]
    results = [Executed(lesson, path, 0.0) for lesson, path in done.items() if path is not None]
    if not missing:
        return sorted(results, key=lambda e: e.lesson)
    if reuse_only:
        raise ExecutionError(f"no stored execution matches {', '.join(missing)} as they are now, and "
                             f"only reuse was asked for: run the test suite first (make test), or "
                             f"build without --reuse-only to execute them ({store(root)})")
    scratch = Path(tempfile.mkdtemp(prefix="course-executions-"))
    env = kernel_env("gpu", scratch / "cache", plain_traceback_ipython_dir(scratch / "ipython"),
                     scratch / "timing.lock")
    env.pop("MPLBACKEND", None)  # Jupyter's inline backend, as in the test suite: figures are outputs
    env.update({name: os.environ[name] for name in KEY_ENVIRONMENT if name in os.environ})  # as keyed
    log(f"executing {len(missing)} student notebook(s), {workers} at a time: {' '.join(missing)}")

    def one(lesson: str) -> Executed:
        start = time.perf_counter()
        try:
            nb = execute(student_path(lesson, root), env, timeout_s)
        except Exception as err:  # nbclient's errors carry the cell and its traceback
            raise ExecutionError(f"{lesson}: the student notebook failed to execute, so the site "
                                 f"cannot show it. Fix it (make test TESTS=notebooks/{lesson}) and "
                                 f"build again.\n{str(err)[-3000:]}") from None
        executed = Executed(lesson, save(nb, lesson, root), time.perf_counter() - start)
        log(f"{executed.seconds:6.1f} s  {lesson}")
        return executed

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results += list(pool.map(one, missing))
    return sorted(results, key=lambda e: e.lesson)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.executions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", nargs="*", default=[], metavar="NN",
                        help="only lessons whose names start with these (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at once (default: 2)")
    args = parser.parse_args(argv)
    chosen = [lesson for lesson in lessons() if not args.lessons or lesson.startswith(tuple(args.lessons))]
    try:
        for executed in ensure(chosen, workers=args.jobs):
            print(f"{'executed' if executed.seconds else 'reused  '}  {executed.path}")
    except ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
