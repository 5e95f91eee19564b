"""Suite-wide pytest hooks for the notebook run (nbval).

- kernels print tracebacks without colour codes, so CI logs stay readable;
- a per-notebook timing table closes the run, flagging notebooks over their 60 s budget;
- a notebook that executed no cell fails the run (nbval alone would pass it silently);
- trained models are cached in a fresh folder per run (`COURSE_CACHE`);
- kernels talk over Unix sockets, so two workers starting kernels at once cannot race for a
  TCP port (instructor/course_tools/kernels.py);
- each student notebook that passes whole is stored with its outputs, for the website
  (`make site` reuses it while its key still matches: instructor/course_tools/executions.py).
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

NOTEBOOK_BUDGET_S = 60.0
NOTEBOOK_DIRS = ("solutions", "notebooks")

_seconds: dict[str, float] = defaultdict(float)
_cells: dict[str, int] = defaultdict(int)
_reports: list[str] = []  # what tests record with record_property("report", text), shown at the end
_executions = None  # course_tools.executions.NbvalRecorder, set in pytest_configure


def pytest_configure(config: pytest.Config) -> None:
    # One fresh cache of trained models per test run (kernels and workers inherit it):
    # notebooks share it within the run, but never depend on what an earlier run left.
    if "COURSE_CACHE" not in os.environ:
        os.environ["COURSE_CACHE"] = tempfile.mkdtemp(prefix="course-cache-")
    if "IPYTHONDIR" not in os.environ:  # kernels inherit it: no ANSI colours in tracebacks
        from course_tools.gpu_check import plain_traceback_ipython_dir

        ipython_dir = plain_traceback_ipython_dir(Path(tempfile.mkdtemp(prefix="course-ipython-")))
        os.environ["IPYTHONDIR"] = str(ipython_dir)
    import nbval.kernel

    from course_tools.kernels import IpcKernelManager

    nbval.kernel.KernelManager = IpcKernelManager  # nbval's start_new_kernel builds its manager from here

    from course_tools.executions import NbvalRecorder

    global _executions
    _executions = NbvalRecorder(Path(config.rootpath))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and hasattr(item, "cell"):  # an nbval cell
        _executions.record(item, passed=report.passed)
    return report


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if hasattr(item, "cell") and (nextitem is None or nextitem.parent is not item.parent):
        _executions.finish(item.parent)  # the notebook's last cell has run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":  # user properties travel from xdist workers to the controller
        _reports.extend(f"{report.nodeid}\n{text}" for key, text in report.user_properties if key == "report")
    path, _, _ = report.nodeid.partition("::")
    if not path.endswith(".ipynb"):
        return
    _seconds[path] += report.duration
    if report.when == "call":
        _cells[path] += 1


def _expected_notebooks(config: pytest.Config) -> list[str]:
    root = Path(config.rootpath)
    args = config.args or [str(root / d) for d in NOTEBOOK_DIRS]
    found = []
    for arg in args:
        path = Path(arg.partition("::")[0])
        path = path if path.is_absolute() else Path(config.invocation_params.dir) / path
        candidates = [path] if path.suffix == ".ipynb" else path.rglob("*.ipynb") if path.is_dir() else []
        for nb in candidates:
            rel = nb.resolve().relative_to(root.resolve()).as_posix()
            if ".ipynb_checkpoints" not in rel and rel.split("/")[0] in NOTEBOOK_DIRS:
                found.append(rel)
    return sorted(set(found))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput") or config.option.keyword or config.option.markexpr:
        return  # only the controller checks, and only on a full (unfiltered) run
    if config.option.collectonly:
        return
    silent = [nb for nb in _expected_notebooks(config) if _cells.get(nb, 0) == 0]
    if silent:
        config._course_silent = silent  # reported in the terminal summary
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _reports:
        terminalreporter.section("reports")
        for text in _reports:
            terminalreporter.write_line(text)
    if _seconds:
        terminalreporter.section("notebook timings (kernel start included)")
        for path, seconds in sorted(_seconds.items(), key=lambda item: -item[1]):
            flag = "  OVER BUDGET" if seconds > NOTEBOOK_BUDGET_S else ""
            terminalreporter.write_line(f"{seconds:7.1f} s  {_cells[path]:3d} cells  {path}{flag}")
        terminalreporter.write_line(f"{sum(_seconds.values()):7.1f} s  in all ({len(_seconds)} notebooks)")
    for nb in getattr(config, "_course_silent", []):
        terminalreporter.write_line(f"FAILED {nb}: the notebook executed no cell", red=True)
