"""The grading pipeline's parts, without kernels: sandbox arguments, flags, the watch, intake,
problem detection and the gradebook's arithmetic."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from course_tools.grading import flags, sandbox
from course_tools.grading.course import restore_deleted_cells
from course_tools.grading.intake import find_one, unreadable
from course_tools.grading.integrity import Watch
from course_tools.grading.memory import MemoryGuard
from course_tools.grading.report import Outcome, gradebook, summary
from course_tools.grading.worker import Task, _exit_note, notebook_problems, write_kernelspec


@pytest.fixture
def course_outside_tmp():
    """A stand-in course tree outside /tmp (the sandbox's private /tmp hides /tmp already, so
    these tests need folders elsewhere, wherever the checkout itself lies)."""
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else Path.home()
    folder = Path(tempfile.mkdtemp(prefix="course-sandbox-", dir=base))
    (folder / "utils" / "course").mkdir(parents=True)
    (folder / "pyproject.toml").write_text("")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _jail(root: Path) -> sandbox.Jail:
    """Folders that exist outside /tmp (those inside it are private to the sandbox anyway)."""
    return sandbox.Jail(scratch=root / "grading" / "scratch", sockets=Path("/tmp/grade-x"),
                        hidden=(root, root / "utils" / "course"), visible=(root / "utils",))


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_sandbox_hides_folders_outermost_first_and_shows_the_course_again(course_outside_tmp: Path) -> None:
    root = course_outside_tmp
    args = sandbox.bwrap_args(_jail(root))
    assert _pairs(args, "--tmpfs") == ["/tmp", str(root), str(root / "utils" / "course")]
    assert _pairs(args, "--ro-bind") == ["/", str(root / "utils")]
    assert args.index(str(root / "utils")) < args.index(str(root / "utils" / "course"))
    assert _pairs(args, "--bind") == [str(root / "grading" / "scratch"), "/tmp/grade-x"]
    assert _pairs(args, "--remount-ro") == [str(root), str(root / "utils" / "course")]
    assert "--unshare-all" in args and "--die-with-parent" in args and args[-1] == "--"


def test_sandbox_hides_a_file_behind_dev_null(course_outside_tmp: Path) -> None:
    root = course_outside_tmp
    jail = sandbox.Jail(root / "scratch", Path("/tmp/grade-x"), hidden=(root / "pyproject.toml",), visible=())
    args = sandbox.bwrap_args(jail)
    assert args[args.index(str(root / "pyproject.toml")) - 2:][:3] == ["--ro-bind", "/dev/null",
                                                                        str(root / "pyproject.toml")]
    assert str(root / "pyproject.toml") not in _pairs(args, "--remount-ro")


def test_sandbox_skips_folders_it_cannot_mount_on(course_outside_tmp: Path) -> None:
    root = course_outside_tmp
    jail = sandbox.Jail(root / "scratch", Path("/tmp/grade-x"), hidden=(root / "no such folder",), visible=())
    assert _pairs(sandbox.bwrap_args(jail), "--tmpfs") == ["/tmp"]


def test_unsandboxed_kernel_is_plain_python(root: Path) -> None:
    argv = sandbox.kernel_argv("none", _jail(root))
    assert argv[1:4] == ["-m", "ipykernel_launcher", "-f"]


def test_unknown_sandbox_choice_is_refused() -> None:
    assert sandbox.resolve("none") == "none"
    with pytest.raises(ValueError, match="--sandbox must be one of"):
        sandbox.resolve("docker")


@pytest.mark.parametrize("source, flag", [
    ("import utils.checks\nutils.checks.exercise = lambda name: None", "reassigns utils.checks.exercise"),
    ("checks.check_close = print", "reassigns checks.check_close"),
    ("import torch as t\nt.allclose = lambda *a, **k: True", "reassigns t.allclose"),
    ("setattr(checks, 'check_shape', None)", "calls setattr"),
    ("get_ipython().set_custom_exc((Exception,), None)", "calls get_ipython"),
    ("import ctypes", "imports ctypes"),
    ("import os\nos._exit(0)", "uses os._exit"),
    ("!rm -rf /", "runs shell commands"),
])
def test_code_that_reaches_for_the_grading_machinery_is_flagged(source: str, flag: str) -> None:
    assert flag in flags.code_flags(source, {"checks", "torch"})


def test_ordinary_student_code_is_not_flagged() -> None:
    source = "class Net:\n    def __init__(self):\n        self.weight = 1\n"
    source += "model = Net()\nmodel.weight = 2\n%time x = 1"
    assert flags.code_flags(source, {"checks", "torch"}) == set()


def _graded_cell(grade_id: str, source: str, check: bool = True) -> nbformat.NotebookNode:
    node = nbformat.v4.new_code_cell(source)
    node.metadata["nbgrader"] = {"grade": check, "grade_id": grade_id, "locked": check, "solution": not check,
                                 **({"points": 1} if check else {})}
    return node


def _released() -> nbformat.NotebookNode:
    stub = "raise NotImplementedError()"
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# L01"), _graded_cell("a", f"def a(): {stub}", False),
        _graded_cell("a_check", "check(a)"), _graded_cell("b", f"def b(): {stub}", False),
        _graded_cell("b_check", "check(b)")])


def test_deleted_and_edited_cells_are_named() -> None:
    solution = nbformat.v4.new_notebook(cells=[_graded_cell("a_check", "check(a)\nhidden(a)"),
                                               _graded_cell("b_check", "check(b)\nhidden(b)")])
    submitted = _released()
    submitted.cells = [submitted.cells[1], _graded_cell("a_check", "pass")]
    assert flags.restored_cell_flags(submitted, _released(), solution) == [
        "edited check cell a_check (restored)", "deleted exercise cell b (restored)",
        "deleted check cell b_check (restored)"]


def test_deleted_exercise_and_check_cells_come_back_in_place() -> None:
    submitted = _released()
    del submitted.cells[3:5]  # exercise b and its check
    del submitted.cells[1]  # exercise a
    assert restore_deleted_cells(submitted, _released()) == ["a", "b", "b_check"]
    assert [c.source for c in submitted.cells] == [c.source for c in _released().cells]


def test_watch_blames_the_one_submission_that_ran(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("original")
    watch = Watch([tmp_path])
    watch.started("alice")
    (tmp_path / "kept.txt").write_text("changed")
    watch.finished("alice")
    watch.started("bob")
    watch.finished("bob")
    assert watch.problem("alice") == f"wrote outside its folder: changed {tmp_path / 'kept.txt'}"
    assert watch.problem("bob") == ""


def test_watch_names_every_suspect_when_several_ran(tmp_path: Path) -> None:
    watch = Watch([tmp_path])
    watch.started("alice")
    watch.started("bob")
    (tmp_path / "new.txt").write_text("x")
    watch.finished("alice")
    watch.finished("bob")
    assert "alongside bob" in watch.problem("alice") and "alongside alice" in watch.problem("bob")
    assert "--jobs 1" in watch.problem("alice")


def test_watch_protects_results_once_they_are_done(tmp_path: Path) -> None:
    result = tmp_path / "alice.json"
    result.write_text("{}")
    watch = Watch([])
    watch.started("alice")
    watch.finished("alice", protect=[result])
    watch.started("bob")
    result.write_text('{"total": 10}')
    watch.finished("bob")
    assert watch.problem("bob").startswith("wrote outside its folder: changed")


def test_intake_accepts_both_layouts_and_names_a_wrong_file(tmp_path: Path) -> None:
    notebook = nbformat.writes(nbformat.v4.new_notebook())
    for folder in (tmp_path / "flat", tmp_path / "nested" / "L01"):
        folder.mkdir(parents=True)
    (tmp_path / "flat" / "L01.ipynb").write_text(notebook)
    (tmp_path / "nested" / "L01" / "L01.ipynb").write_text(notebook)
    (tmp_path / "renamed").mkdir()
    (tmp_path / "renamed" / "Copy of L01.ipynb").write_text(notebook)
    (tmp_path / "empty").mkdir()
    assert find_one(tmp_path / "flat", "L01").gradable and find_one(tmp_path / "nested", "L01").gradable
    assert find_one(tmp_path / "renamed", "L01").problem == (
        "wrong file: found Copy of L01.ipynb, expected L01.ipynb")
    assert find_one(tmp_path / "empty", "L01").problem.startswith("no notebook")


def test_unreadable_notebooks_say_why() -> None:
    assert unreadable(b'{"cells": [').startswith("unreadable notebook: NotJSONError")
    assert unreadable(b"{}").startswith("unreadable notebook:")
    assert unreadable(nbformat.writes(nbformat.v4.new_notebook()).encode()) == ""


def _failed(source: str, ename: str, evalue: str = "", **metadata) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata=metadata)
    cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]
    return cell


def test_timeouts_memory_errors_and_failing_lesson_cells_are_named_with_their_cell() -> None:
    setup = "import utils\ndevice, profile = utils.setup(seed=0)"
    demo = "plt.plot(losses)"
    check = "with checks.exercise('big'):\n    big()"
    nb = nbformat.v4.new_notebook(cells=[
        _failed(setup, "ImportError", "libtorch_cuda.so: failed to map segment\nmore", tags=["setup"]),
        _failed("while True: pass", "CellTimeoutError"),
        _failed("torch.empty(10**12)", "RuntimeError", "DefaultCPUAllocator: can't allocate memory",
                nbgrader={"grade_id": "big_check", "grade": True}),
        _failed(check, "AssertionError", "wrong", nbgrader={"grade_id": "big_check", "grade": True}),
        _failed(demo, "NameError", "name 'plt' is not defined"),
        _failed("print(undefined)  # the student's own cell", "NameError", "name 'undefined' is not defined"),
    ])
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(demo),
        nbformat.v4.new_code_cell(check, metadata={"nbgrader": {"grade": True}})])
    task = Task("L01", "alice", "/w", "/s", cell_timeout=5, memory_bytes=3 * 2**30, sandbox="none")
    rest = "the rest of the notebook was graded"
    why = "(not an exercise: check the grading environment, or the student's earlier cells)"
    # a failing check is the student's score, and a failing cell of their own is their business
    assert notebook_problems(nb, task, source) == [
        f"a cell of the lesson failed: cell 1 (setup) raised ImportError: libtorch_cuda.so: failed to map "
        f"segment {why}",
        f"timed out: cell 2 ran over 5 s and was interrupted; {rest}",
        f"memory limit: cell 3 (big_check) ran out of memory (limit 3 GiB); {rest}",
        f"a cell of the lesson failed: cell 5 raised NameError: name 'plt' is not defined {why}"]


def _holding(*mib: int) -> subprocess.Popen:
    """A shell whose children each hold one of `mib` MiB of touched memory until killed."""
    hold = " & ".join(f"{sys.executable} -c 'import time; held = b\"x\" * {m} * 2**20; time.sleep(60)'"
                      for m in mib)
    return subprocess.Popen(["sh", "-c", f"{hold} & wait"])


def test_memory_guard_stops_the_processes_below_it_once_together_over_the_limit() -> None:
    shell = _holding(200, 200)  # neither alone is over the limit
    try:
        with MemoryGuard(300 * 2**20, lambda: "cell 7 (big_check)", poll_s=0.02, root=shell.pid) as guard:
            shell.wait(timeout=30)  # returns once the guard has killed both children
        assert guard.tripped.startswith("memory limit: cell 7 (big_check) used 0.")
        assert guard.tripped.endswith("over the limit of 0.292969 GiB, and the kernel was stopped there")
    finally:
        shell.kill()


def test_memory_guard_leaves_processes_under_the_limit_alone() -> None:
    shell = _holding(20)
    try:
        with MemoryGuard(300 * 2**20, lambda: "cell 1", poll_s=0.02, root=shell.pid) as guard:
            time.sleep(1.5)
        assert guard.tripped is None and shell.poll() is None and guard.peak_bytes > 20 * 2**20
    finally:
        shell.kill()


def test_exit_codes_read_as_signals_where_they_are() -> None:
    assert _exit_note(1) == " (exit code 1)"
    assert _exit_note(-9) == " (killed by SIGKILL, often the memory limit)"
    assert _exit_note(134) == " (killed by SIGABRT, often the memory limit)"  # bwrap: 128 + n
    assert _exit_note(-15) == " (killed by SIGTERM)"


def test_gradebook_keeps_no_score_apart_from_zero() -> None:
    graded = [("a_check", 2.0), ("b_check", 3.0)]
    book = gradebook([Outcome("zed", {"a_check": 0.0, "b_check": 0.0}),
                      Outcome("amy", {"a_check": 2.0, "b_check": None}, problems=["timed out: ..."]),
                      Outcome("bob", problems=["the kernel died in cell 3"])], graded).set_index("student_id")
    assert list(book.index) == ["amy", "bob", "zed"]
    assert book.loc["zed", "total"] == 0.0 and book.loc["zed", "status"] == "graded"
    assert math.isnan(book.loc["bob", "total"]) and book.loc["bob", "status"] == "could not be graded"
    assert book.loc["amy", "total"] == 2.0 and math.isnan(book.loc["amy", "b_check"])
    table = summary(book.reset_index(), graded).set_index("exercise")
    assert table.loc["a_check", "scored"] == 2 and table.loc["a_check", "share_full_marks"] == 0.5


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_graded_kernels_compute_on_the_cpu_unless_asked(tmp_path, device: str) -> None:
    task = Task("L01", "alice", str(tmp_path / "w"), str(tmp_path / "s"), cell_timeout=5,
                memory_bytes=3 * 2**30, sandbox="none", device=device)
    spec = json.loads((write_kernelspec(task) / "kernels" / "graded-python" / "kernel.json").read_text())
    assert spec["env"]["COURSE_DEVICE"] == device
    hidden = spec["env"].get("CUDA_VISIBLE_DEVICES")
    assert hidden == "" if device == "cpu" else hidden is None
