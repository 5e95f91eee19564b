"""`make gpu-check`: every notebook at the GPU profile on this machine's GPU, and under a T4's limits.

Students on Colab and Kaggle get a GPU, and then every notebook runs its `gpu` profile: sizes,
dtypes and code paths that CI (a CPU) never executes. This command runs them all:

- two **conditions**: `gpu`, the GPU as it is; `t4`, the same GPU made to behave like Colab's
  and Kaggle's free T4, with `COURSE_GPU_MEMORY_GIB=14` (PyTorch's allocator refuses more than
  14 GiB per process: what a T4 leaves it, see `T4_MEMORY_GIB`) and `COURSE_NO_BF16=1` (the
  course picks float16 wherever it would pick bfloat16). A notebook that would not fit or not
  run on a T4 fails here.
- every notebook, solution and student version (student versions run with every exercise
  unattempted, as in CI), each in its own process, in a fresh kernel started in the notebook's
  folder. The notebook file is never written: a last cell, added to the copy in memory,
  reports the kernel's peak GPU memory (what PyTorch's allocator handed out at most, and what
  it reserved from the GPU, cached blocks included).
- several at a time, planned by `gpu_schedule` from the last report's times and memory: three
  for every four CPU cores, as many as the GPU's memory holds, in rounds (every lesson's
  student version under the T4's limits first: what a student on Colab runs), longest first.
  With `--deadline`, a notebook expected to end past it is not started. Each condition has
  its own model cache, fresh for the run: a lesson that needs an earlier lesson's model
  trains it, or waits on the cache's file lock while another notebook does, then loads it.

The result is a Markdown table (lesson, version, condition, seconds, peak GPU memory, result)
with the machine it ran on, written to `docs/gpu_check.md`, and the error of each failure.
`--dry-run` lists what would run, on any machine, and with `--gpu-memory` how long it would
take on a GPU of that size (`--jobs` for its cores: 12 on a 16-core H100 machine).

    python -m course_tools gpu-check [--conditions gpu,t4] [--jobs N] [--lessons 05 10 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from course_tools import gpu_schedule
from course_tools.config import lessons, repo_root, solution_path, student_path

# What PyTorch's allocator gets on a T4: sold as 16 GB, it reports a total of 14.74 GiB on Colab
# (14.56 on Google Cloud), and the CUDA context takes a few hundred MiB of it outside the
# allocator (the cap below counts only the allocator's bytes). 15, the card's nominal size after
# ECC, let a notebook pass here that a T4 could not hold.
T4_MEMORY_GIB = "14"
CONDITIONS = {
    "gpu": {},
    "t4": {"COURSE_GPU_MEMORY_GIB": T4_MEMORY_GIB, "COURSE_NO_BF16": "1"},  # read by utils.runtime
}
TIMING_LOCK_ENV = "COURSE_TIMING_LOCK"  # read by utils.bench.exclusive_timing
TIMING_PAUSE_ENV = "COURSE_TIMING_PAUSE"  # "0" (--no-pause): read by utils.bench.wait_while_timing
# (names, not imports: this module, and each notebook's runner process, never import torch)
GIB = 2**30
GPU_HEADROOM_GIB = 2.0  # left unplanned: CUDA contexts of processes the plan does not see
PEAK_MARKER = "GPU_CHECK_PEAK "
NOT_RUN = "not run:"  # how the error of a job the deadline left out begins
_PEAK_CELL = (  # the peak memory, and the seconds spent timing and paused (utils.bench.timing_totals)
    "import json as _json, torch as _torch\n"
    "try:\n"
    "    from utils.bench import timing_totals as _totals\n"
    "except ImportError:  # a notebook outside the course\n"
    "    _totals = lambda: {'timing': 0.0, 'paused': 0.0}\n"
    "_cuda = _torch.cuda.is_available() and _torch.cuda.is_initialized()\n"
    "_peak = [_torch.cuda.max_memory_allocated(), _torch.cuda.max_memory_reserved()] if _cuda else [0, 0]\n"
    f"print({PEAK_MARKER!r} + _json.dumps([*_peak, _totals()['timing'], _totals()['paused']]))\n"
)


@dataclass(frozen=True)
class Job:
    """One notebook to run under one condition."""

    lesson: str
    version: str  # "solution" or "student"
    condition: str  # a key of CONDITIONS
    path: Path

    @property
    def label(self) -> str:
        return f"{self.lesson} {self.version} [{self.condition}]"


@dataclass
class Outcome:
    """What one run of a notebook gave."""

    job: Job
    passed: bool
    seconds: float
    peak_bytes: int = 0  # the most PyTorch's allocator handed out at once
    reserved_bytes: int = 0  # the most it held from the GPU (cached blocks included)
    profile: str = "?"  # what the setup cell printed
    error: str = ""  # the failing cell and the error, or why it did not run
    details: list[str] = field(default_factory=list)
    ran: bool = True  # False: the deadline left it out
    timing_seconds: float = 0.0  # spent timing, holding the lock others' training steps wait on
    paused_seconds: float = 0.0  # its training steps spent waiting while others timed


def plan(conditions: Sequence[str] = tuple(CONDITIONS), only: Sequence[str] = (),
         root: Path | None = None) -> list[Job]:
    """The jobs, in curriculum order: each lesson's solution, then its student version."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; choose from {sorted(CONDITIONS)}")
    chosen = [lesson for lesson in lessons(root) if not only or any(lesson.startswith(o) for o in only)]
    if only and not chosen:
        raise ValueError(f"no lesson starts with any of {list(only)}; the lessons are: {lessons(root)}")
    return [Job(lesson, version, condition, path)
            for lesson in chosen
            for version, path in (("solution", solution_path(lesson, root)),
                                  ("student", student_path(lesson, root)))
            for condition in conditions]


def default_jobs(gpu_bytes: int | None, cores: int | None = None) -> int:
    """How many notebooks at once: three for every four CPU cores (a notebook on a GPU keeps
    about one core busy launching kernels), and no more than the GPU's memory holds at
    `gpu_schedule.FLOOR_GIB` each. Which ones run together is `gpu_schedule`'s business."""
    cores = cores or os.cpu_count() or 2
    by_memory = int((gpu_bytes / GIB if gpu_bytes else gpu_schedule.CAP_GIB) // gpu_schedule.FLOOR_GIB)
    return int(max(1, min(by_memory, cores * 3 // 4)))


def memory_to_share(gpu_bytes: int) -> float:
    """GiB the notebooks may plan to use together: the GPU's, less room for stray contexts."""
    return max(1.0, gpu_bytes / GIB - GPU_HEADROOM_GIB)


# The rounds of a run, by how many people meet each: students on Colab's and Kaggle's T4 first,
# then instructors' solutions on their GPU. `gpu_schedule` starts each round longest first.
ROUNDS = (("student", "t4"), ("solution", "gpu"), ("student", "gpu"), ("solution", "t4"))


def start_order(jobs: Sequence[Job], estimates: dict[Job, gpu_schedule.Estimate]) -> list[Job]:
    return gpu_schedule.in_rounds(jobs, estimates, lambda job: ROUNDS.index((job.version, job.condition)))


def estimates_for(jobs: Sequence[Job], rows: Sequence[dict]) -> dict[Job, gpu_schedule.Estimate]:
    return {job: gpu_schedule.estimate(job.lesson, job.version, job.condition, rows) for job in jobs}


# --------------------------------------------------------------------------------------
# One notebook, in this process (the worker) and from the parent
# --------------------------------------------------------------------------------------


def execute(path: Path, timeout_s: float, keep: Path | None = None) -> dict:
    """Run the notebook at `path` in a fresh kernel in its folder; never write it (the executed
    copy goes to `keep`, if given). The peak-memory cell runs even after a failing cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from course_tools.kernels import AsyncIpcKernelManager

    nb = nbformat.read(path, as_version=4)
    cells, peak_cell = list(nb.cells), nbformat.v4.new_code_cell(_PEAK_CELL)
    nb.cells.append(peak_cell)
    client = NotebookClient(nb, timeout=int(timeout_s), kernel_name="python3",
                            kernel_manager_class=AsyncIpcKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    result = {"passed": False, "error": "", "details": []}
    with client.setup_kernel():
        try:
            for index, cell in enumerate(cells):
                client.execute_cell(cell, index)
            result["passed"] = True
        except CellExecutionError as err:
            result["error"] = _cell_error(nb, err)
        except (CellTimeoutError, DeadKernelError) as err:
            result["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"
        with contextlib.suppress(Exception):  # a dead kernel has no peak to report
            client.execute_cell(peak_cell, len(cells))
    result["profile"], (allocated, reserved, timing, paused) = _read_outputs(nb)
    result.update(peak_bytes=int(allocated), reserved_bytes=int(reserved), timing_seconds=timing,
                  paused_seconds=paused)
    result["details"] = _tracebacks(nb)
    if keep is not None:  # text outputs only: figures would make the copies large
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                output.get("data", {}).pop("image/png", None)
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / f"{path.parent.parent.name}-{path.name}")
    return result


def _cell_error(nb, err: Exception) -> str:
    """`cell N: ErrorName: message` for the first cell that raised."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = str(output.get("evalue", "")).strip().splitlines()
                return f"cell {index}: {output.get('ename')}: {message[0][:300] if message else ''}"
    return str(err).strip().splitlines()[-1][:300]


def _text_outputs(nb) -> list[str]:
    return [str(o.get("text", "")) for cell in nb.cells for o in cell.get("outputs", [])
            if o.get("output_type") == "stream"]


def _read_outputs(nb) -> tuple[str, list[float]]:
    """The profile the setup cell printed, and what the last cell reported: peak memory
    allocated and reserved (bytes), seconds spent timing and paused."""
    profile, peak = "?", [0, 0, 0.0, 0.0]
    for text in _text_outputs(nb):
        if "| profile: " in text and profile == "?":
            profile = text.split("| profile: ", 1)[1].split()[0]
        for line in text.splitlines():
            if line.startswith(PEAK_MARKER):
                peak = json.loads(line[len(PEAK_MARKER):])
    return profile, peak


def _tracebacks(nb) -> list[str]:
    """The last lines of every error's traceback (colour codes are off: see `kernel_env`)."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append("\n".join(output.get("traceback", [])[-6:])[-3000:])
    return found


def run_job(job: Job, env: dict[str, str], timeout_s: float, keep: Path | None = None) -> Outcome:
    """Run one job in a child process (a crash or a hang there stays there); the executed
    notebook goes to keep/CONDITION/ if `keep` is given."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "course_tools.gpu_check", "--one", str(job.path),
               "--timeout", str(timeout_s)]
    if keep is not None:
        command += ["--keep", str(keep / job.condition)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=repo_root(),
                              timeout=timeout_s + 30)
    except subprocess.TimeoutExpired:
        return Outcome(job, False, time.perf_counter() - start, error=f"killed after {timeout_s + 30:.0f} s")
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return Outcome(job, False, seconds, error=f"runner failed: {done.stderr.strip()[-500:]}")
    result = json.loads(lines[-1])
    return Outcome(job, result["passed"], seconds, result["peak_bytes"], result["reserved_bytes"],
                   result["profile"], result["error"], result["details"],
                   timing_seconds=result["timing_seconds"], paused_seconds=result["paused_seconds"])


def kernel_env(condition: str, cache: Path, ipython_dir: Path, timing_lock: Path,
               pause: bool = True) -> dict[str, str]:
    """The environment a condition's kernels start with. Every kernel times its code under one
    lock (`utils.bench.exclusive_timing`): two notebooks never time at the same moment, and
    (unless `pause` is False) the others' training steps wait meanwhile."""
    root = str(repo_root())
    env = dict(os.environ)
    if not pause:
        env[TIMING_PAUSE_ENV] = "0"
    for name in (*CONDITIONS["t4"], "COURSE_PROFILE", "NBGRADER_EXECUTION"):
        env.pop(name, None)  # each condition says exactly what it sets
    env.update(CONDITIONS[condition])
    env[TIMING_LOCK_ENV] = str(timing_lock)
    env.update(COURSE_CACHE=str(cache), IPYTHONDIR=str(ipython_dir), MPLBACKEND="Agg",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p))
    return env


def plain_traceback_ipython_dir(folder: Path) -> Path:
    """An IPython folder (for IPYTHONDIR) whose kernels print tracebacks without colour codes:
    readable in logs and reports (the test suite's kernels use it too)."""
    profile = folder / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text('c.InteractiveShell.colors = "nocolor"\n')
    return folder


# --------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------


def run_all(jobs: Sequence[Job], limits: gpu_schedule.Limits, timeout_s: float,
            estimates: dict[Job, gpu_schedule.Estimate] | None = None,
            on_outcome: Callable[[Outcome], None] = lambda outcome: None,
            keep: Path | None = None, pause: bool = True) -> list[Outcome]:
    """Run `jobs` as `gpu_schedule` plans them from `estimates` (default: the committed report's
    rows): in `start_order`, as many at once as `limits` allow. Jobs the deadline leaves out are
    reported, not run. `on_outcome` sees each outcome as it comes (the command rewrites its
    report each time, so that a run stopped from outside still leaves what it measured)."""
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    ipython_dir = plain_traceback_ipython_dir(scratch / "ipython")
    timing_lock = scratch / "timing.lock"
    envs = {c: kernel_env(c, scratch / f"cache-{c}", ipython_dir, timing_lock, pause)
            for c in {j.condition for j in jobs}}
    estimates = estimates or estimates_for(jobs, read_rows(default_report()))
    start = time.perf_counter()

    def one(job: Job) -> Outcome:
        began = time.perf_counter()
        try:
            return _expect_gpu_profile(run_job(job, envs[job.condition], timeout_s, keep))
        except Exception as err:  # a broken runner fails its own row, never the whole run
            return Outcome(job, False, time.perf_counter() - began, error=f"runner failed: {err!r}"[:300])

    def not_run(job: Job) -> Outcome:
        expected = estimates[job].seconds
        why = f"{NOT_RUN} expected to take {expected:.0f} s, past the {limits.deadline_s:.0f} s deadline"
        return Outcome(job, False, 0.0, ran=False, error=why)

    def report(outcome: Outcome) -> None:
        print(f"{time.perf_counter() - start:6.0f} s  {'pass' if outcome.passed else 'FAIL'}  "
              f"{outcome.job.label}  {outcome.seconds:.0f} s  {outcome.peak_bytes / GIB:.1f} GiB  "
              f"{outcome.error}", flush=True)
        on_outcome(outcome)

    return gpu_schedule.run(start_order(jobs, estimates), estimates, limits, one, not_run, report)


def _expect_gpu_profile(outcome: Outcome) -> Outcome:
    """On a GPU every notebook must have run its gpu profile: anything else checked nothing."""
    import torch

    if outcome.passed and torch.cuda.is_available() and outcome.profile != "gpu":
        outcome.passed = False
        outcome.error = f"ran at profile {outcome.profile!r}, not 'gpu'"
    return outcome


def machine_description() -> str:
    """The GPU and the software versions: where a row of the table was measured."""
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name} ({props.total_memory / GIB:.0f} GiB)"
    else:
        gpu = "no GPU"
    return (f"{datetime.date.today().isoformat()}, {gpu}, torch {torch.__version__}, "
            f"Triton {triton_version}, Python {platform.python_version()}")


# --------------------------------------------------------------------------------------
# The report: rows in a JSON file beside the Markdown page, merged across runs
# --------------------------------------------------------------------------------------


def row(outcome: Outcome, ran_on: str) -> dict:
    job = outcome.job
    return {"lesson": job.lesson, "version": job.version, "condition": job.condition,
            "seconds": round(outcome.seconds, 1), "peak_gib": round(outcome.peak_bytes / GIB, 2),
            "reserved_gib": round(outcome.reserved_bytes / GIB, 2),
            "timing_s": round(outcome.timing_seconds, 1), "paused_s": round(outcome.paused_seconds, 1),
            "profile": outcome.profile, "passed": outcome.passed, "error": outcome.error,
            "details": outcome.details, "ran_on": ran_on}


def updated_rows(earlier: Sequence[dict], outcomes: Sequence[Outcome], ran_on: str) -> list[dict]:
    """The report's rows after these outcomes: a notebook run now replaces its earlier row; one
    the deadline left out gets a "not run" row only where it had none (an earlier measurement
    says more)."""
    have = {(r["lesson"], r["version"], r["condition"]) for r in earlier}
    new = [row(o, ran_on) for o in outcomes
           if o.ran or (o.job.lesson, o.job.version, o.job.condition) not in have]
    return merge(earlier, new)


def merge(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """`old` rows with those of `new` replacing the same (lesson, version, condition), in order."""
    key = lambda r: (r["lesson"], r["version"], r["condition"])
    merged = {key(r): r for r in old}
    merged.update({key(r): r for r in new})
    order = {"solution": 0, "student": 1}
    return sorted(merged.values(), key=lambda r: (r["lesson"], order.get(r["version"], 2), r["condition"]))


def report(rows: Sequence[dict], summary: str) -> str:
    """The Markdown page: what was run, the table, then every failure's traceback."""
    passed = sum(r["passed"] for r in rows)
    lines = [
        "# GPU check: every notebook at the GPU profile",
        "",
        "Written by `make gpu-check` (`python -m course_tools gpu-check`); do not edit by hand.",
        f"Condition `gpu` is the GPU as it is; `t4` caps each process at {T4_MEMORY_GIB} GiB of GPU",
        f"memory and forbids bfloat16 (`COURSE_GPU_MEMORY_GIB={T4_MEMORY_GIB} COURSE_NO_BF16=1`), as on",
        "Colab's and Kaggle's free T4 (what one leaves PyTorch). Seconds include the kernel's start",
        "and, for a lesson that needs an earlier lesson's model, the wait while another notebook",
        "trains it. Peak memory is the notebook kernel's,",
        "not its subprocesses': the most PyTorch's allocator handed out at once, and in brackets what",
        "it reserved from the GPU (freed blocks it keeps cached, which it gives back before it would",
        "fail); `?` where a run measured only the reserved bytes. *Timing / paused*: seconds the",
        "notebook spent timing its code (holding the lock), and its training steps spent waiting",
        "while other notebooks timed theirs (`utils.bench.wait_while_timing`); `?`: not measured.",
        "",
        f"**{passed} of {len(rows)} passed.** {summary}",
        "",
        "| lesson | version | condition | seconds | peak GPU memory, GiB (reserved) | timing / paused, s "
        "| result | ran on |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        result = "pass" if r["passed"] else f"**FAIL** {r['error']}".replace("|", "\\|")
        lines.append(f"| {r['lesson']} | {r['version']} | {r['condition']} | {r['seconds']:.0f} | "
                     f"{_memory(r)} | {_timing(r)} | {result} | {r['ran_on']} |")
    failures = [r for r in rows if not r["passed"] and r["details"]]
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            title = f"### {r['lesson']} {r['version']} [{r['condition']}]"
            lines += [title, "", "```", *r["details"], "```", ""]
    return "\n".join(lines) + "\n"


def _memory(r: dict) -> str:
    """'1.20 (3.50)': allocated, then reserved; rows of the first run measured reserved only."""
    allocated = "?" if r.get("peak_gib") is None else f"{r['peak_gib']:.2f}"
    return f"{allocated} ({r.get('reserved_gib', 0):.2f})"


def _timing(r: dict) -> str:
    """'12 / 3': seconds timing, then paused; rows of runs before 2026-12-07 measured neither."""
    if r.get("timing_s") is None:
        return "?"
    return f"{r['timing_s']:.0f} / {r['paused_s']:.0f}"


def write_report(out: Path, rows: Sequence[dict], summary: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(list(rows), indent=1) + "\n")
    out.write_text(report(rows, summary))


def read_rows(out: Path) -> list[dict]:
    path = out.with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the worker: one notebook
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(execute(args.one, args.timeout, args.keep)))
        return 0
    return command(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conditions", default="gpu,t4",
                        help="comma-separated, from: gpu, t4 (default: both)")
    parser.add_argument("--lessons", nargs="*", default=[], metavar="NN",
                        help="only lessons whose names start with these (default: all)")
    parser.add_argument("--jobs", type=int, help="notebooks at once (default: by GPU memory and cores)")
    parser.add_argument("--timeout", type=float, default=420.0,
                        help="seconds a cell may run (default: 420); a notebook is killed 30 s later")
    parser.add_argument("--deadline", type=float,
                        help="start no notebook expected to end after this many seconds (expected: its time "
                             "in the last report, plus a fifth); those are reported as not run")
    parser.add_argument("--gpu-memory", type=float, metavar="GIB",
                        help="plan for a GPU of this many GiB (default: this machine's GPU): a dry run "
                             "here can then say how long the run would take there")
    parser.add_argument("--out", type=Path, help="the Markdown report (default: docs/gpu_check.md)")
    parser.add_argument("--update", action="store_true",
                        help="keep the report's other rows: replace only the notebooks run now")
    parser.add_argument("--rest", action="store_true",
                        help="only the notebooks the report has no run of (no row, or 'not run' by a "
                             "deadline): with --update, a second session finishes the first one's run")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write each executed notebook (with its outputs) to DIR/CONDITION/")
    parser.add_argument("--no-pause", action="store_true",
                        help="training steps go on while another notebook times its code (by default "
                             "they wait: the report's 'timing / paused' column says what that costs)")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")


def command(args: argparse.Namespace) -> int:
    import torch

    try:
        jobs = plan([c.strip() for c in args.conditions.split(",") if c.strip()], args.lessons)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or default_report()
    if args.rest:
        jobs = not_yet_run(jobs, read_rows(out))
    gpu_bytes = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None
    planned_bytes = int(args.gpu_memory * GIB) if args.gpu_memory else gpu_bytes
    limits = gpu_schedule.Limits(workers=args.jobs or default_jobs(planned_bytes),
                                 memory_gib=memory_to_share(planned_bytes or int(gpu_schedule.CAP_GIB * GIB)),
                                 deadline_s=args.deadline)
    estimates = estimates_for(jobs, read_rows(default_report()))
    if args.dry_run:
        print(dry_run(jobs, estimates, limits, args.timeout, planned=planned_bytes is not None))
        return 0
    if gpu_bytes is None:
        print("error: no CUDA GPU here. `make gpu-check` runs the notebooks' GPU profile and needs one "
              "(Colab, Kaggle or a GPU machine); `--dry-run` lists what it would run.", file=sys.stderr)
        return 2
    earlier = read_rows(out) if args.update else []
    ran_on, start, done = machine_description(), time.perf_counter(), []

    def record(outcome: Outcome) -> None:
        done.append(outcome)
        seconds = time.perf_counter() - start
        summary = (f"Last run: {sum(o.ran for o in done)} of {len(jobs)} notebook(s) in {seconds:.0f} s, "
                   f"up to {limits.workers} at a time, on {ran_on}.")
        write_report(out, updated_rows(earlier, done, ran_on), summary)

    outcomes = run_all(jobs, limits, args.timeout, estimates, on_outcome=record, keep=args.keep,
                       pause=not args.no_pause)
    failed = [o for o in outcomes if not o.passed]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} passed in {time.perf_counter() - start:.0f} s; "
          f"report: {out}")
    return 1 if failed else 0


def not_yet_run(jobs: Sequence[Job], rows: Sequence[dict]) -> list[Job]:
    """The jobs that have no row in the report, or one a deadline left as not run."""
    ran = {(r["lesson"], r["version"], r["condition"]) for r in rows
           if not r.get("error", "").startswith(NOT_RUN)}
    return [job for job in jobs if (job.lesson, job.version, job.condition) not in ran]


def default_report() -> Path:
    """The committed report: where `make gpu-check` writes, and what it plans from."""
    return repo_root() / "docs" / "gpu_check.md"


def dry_run(jobs: Sequence[Job], estimates: dict[Job, gpu_schedule.Estimate], limits: gpu_schedule.Limits,
            timeout_s: float, planned: bool) -> str:
    """What would run, in the order it would start, with each notebook's estimate and, for a
    known GPU, how long the whole run would take."""
    order = start_order(jobs, estimates)
    lines = [f"would run {len(jobs)} notebook(s), {limits.workers} at a time at most, "
             f"{timeout_s:.0f} s a cell at most, in this order:"]
    for job in order:
        est = estimates[job]
        guess = "" if est.measured else " (a guess: no pass)"
        extra = " ".join(f"{k}={v}" for k, v in CONDITIONS[job.condition].items())
        lines.append(f"  {job.label:52s} ~{est.seconds:4.0f} s {est.gib:4.1f} GiB{guess:24s} "
                     f"{job.path.relative_to(repo_root())}  {extra}")
    if not planned:
        lines.append("(no GPU here: --gpu-memory GIB says how long it would take on a GPU of that size)")
        return "\n".join(lines)
    seconds, left_out = gpu_schedule.simulate(order, estimates, limits)
    unknown = sum(not estimates[job].measured for job in jobs)
    lines.append(f"expected: about {seconds:.0f} s, {limits.memory_gib:.0f} GiB of GPU memory shared out, "
                 f"from the times in {default_report().relative_to(repo_root())}; {unknown} notebook(s) "
                 f"without a passing run there are guesses (see `gpu_schedule`)")
    if left_out:
        lines.append(f"the deadline would leave out {len(left_out)}: "
                     + ", ".join(job.label for job in left_out))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
