"""course_tools.gpu_check (`make gpu-check`): what it plans, how it runs one notebook, its report.

The GPU run itself needs a GPU; here the runner executes small notebooks on the CPU.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch

from course_tools import gpu_check
from course_tools.config import lessons
from utils import bench, runtime, training


def test_the_plan_covers_every_notebook_under_both_conditions() -> None:
    jobs = gpu_check.plan()
    assert len(jobs) == 2 * 2 * len(lessons())
    assert {(j.version, j.condition) for j in jobs} == {
        (v, c) for v in ("solution", "student") for c in ("gpu", "t4")}
    assert [j.lesson for j in jobs] == sorted(j.lesson for j in jobs)  # curriculum order
    assert all(j.path.is_file() for j in jobs)


def test_every_lesson_is_checked_as_a_colab_student_runs_it_before_any_twice() -> None:
    jobs = gpu_check.plan()
    est = gpu_check.estimates_for(jobs, [])  # all unknown: the rounds alone decide
    first = gpu_check.start_order(jobs, est)[:len(lessons())]
    assert {(j.version, j.condition) for j in first} == {("student", "t4")}
    assert sorted(j.lesson for j in first) == lessons()


def test_the_plan_can_be_narrowed_and_refuses_what_does_not_exist() -> None:
    jobs = gpu_check.plan(["t4"], ["05", "10"])
    assert {j.lesson[:2] for j in jobs} == {"05", "10"} and {j.condition for j in jobs} == {"t4"}
    with pytest.raises(ValueError, match="unknown condition"):
        gpu_check.plan(["a100"])
    with pytest.raises(ValueError, match="no lesson starts with"):
        gpu_check.plan(["gpu"], ["99"])


def test_the_t4_condition_is_a_memory_cap_and_no_bf16() -> None:
    assert gpu_check.CONDITIONS["t4"] == {"COURSE_GPU_MEMORY_GIB": "14", "COURSE_NO_BF16": "1"}
    assert gpu_check.CONDITIONS["gpu"] == {}
    assert set(gpu_check.CONDITIONS["t4"]) == {runtime.GPU_MEMORY_ENV, runtime.NO_BF16_ENV}
    assert gpu_check.TIMING_LOCK_ENV == bench.TIMING_LOCK_ENV


def test_jobs_follow_cores_and_gpu_memory() -> None:
    assert gpu_check.default_jobs(140 * 2**30, cores=16) == 12  # three for every four cores
    assert gpu_check.default_jobs(140 * 2**30, cores=4) == 3
    assert gpu_check.default_jobs(15 * 2**30, cores=16) == 3  # a T4: three of the smallest at most
    assert gpu_check.default_jobs(None, cores=1) == 1
    assert gpu_check.memory_to_share(80 * 2**30) == 78.0


def test_dry_run_lists_the_runs_anywhere(capsys) -> None:
    assert gpu_check.main(["--dry-run", "--lessons", "00", "--jobs", "3"]) == 0
    out = capsys.readouterr().out
    assert "would run 4 notebook(s), 3 at a time at most" in out
    assert "COURSE_GPU_MEMORY_GIB=14 COURSE_NO_BF16=1" in out
    assert "--gpu-memory GIB says how long" in out or "expected: about" in out  # the latter on a GPU


def test_a_dry_run_for_a_named_gpu_says_how_long_it_would_take(capsys) -> None:
    assert gpu_check.main(["--dry-run", "--lessons", "00", "05", "--jobs", "12", "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    assert "expected: about" in out and "78 GiB of GPU memory shared out" in out
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(lines) == 8 and all("~" in line and " GiB" in line for line in lines)


def test_a_run_past_its_deadline_keeps_the_rows_it_had() -> None:
    job = gpu_check.Job("01_a", "solution", "gpu", Path("x"))
    other = gpu_check.Job("02_b", "solution", "gpu", Path("y"))
    left_out = [gpu_check.Outcome(j, False, 0.0, ran=False, error="not run: past the deadline")
                for j in (job, other)]
    rows = gpu_check.updated_rows([_row("01_a", True)], left_out, "today")
    assert [(r["lesson"], r["passed"], r["error"]) for r in rows] == [
        ("01_a", True, ""), ("02_b", False, "not run: past the deadline")]
    rest = gpu_check.not_yet_run([job, other, gpu_check.Job("03_c", "student", "t4", Path("z"))], rows)
    assert [j.lesson for j in rest] == ["02_b", "03_c"]  # what a second session would take (--rest)
    ran = [gpu_check.Outcome(job, False, 5.0, error="cell 2: boom")]
    rows = gpu_check.updated_rows([_row("01_a", True)], ran, "today")
    assert [r["error"] for r in rows] == ["cell 2: boom"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_what_it_needs(capsys) -> None:
    assert gpu_check.main(["--lessons", "00"]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err


DEMO = Path("solutions") / "99_demo" / "99_demo.ipynb"


@pytest.mark.slow
def test_the_seconds_a_notebook_spends_timing_are_reported(tmp_path: Path, code_notebook,
                                                            monkeypatch) -> None:
    monkeypatch.setenv(bench.TIMING_LOCK_ENV, str(tmp_path / "timing.lock"))  # as gpu-check's kernels
    path = code_notebook(tmp_path / DEMO, "import time\nfrom utils import bench",
                         "bench.time_it(lambda: time.sleep(0.1), repeat=3, warmup=0)")
    result = gpu_check.execute(path, timeout_s=60)
    assert result["passed"] and 0.3 <= result["timing_seconds"] < 10 and result["paused_seconds"] == 0
    assert gpu_check.TIMING_PAUSE_ENV == bench.TIMING_PAUSE_ENV
    env = gpu_check.kernel_env("gpu", tmp_path, tmp_path, tmp_path / "lock", pause=False)
    assert env[bench.TIMING_PAUSE_ENV] == "0"
    assert bench.TIMING_PAUSE_ENV not in gpu_check.kernel_env("gpu", tmp_path, tmp_path, tmp_path / "lock")


@pytest.mark.slow
def test_one_notebook_passes_and_is_never_written(tmp_path: Path, code_notebook) -> None:
    path = code_notebook(tmp_path / DEMO, "print('torch x | device: cuda | profile: gpu | seed: 0')",
                         "x = 2 + 2")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = gpu_check.execute(path, timeout_s=60, keep=tmp_path / "kept")
    assert result["passed"] and result["error"] == "" and result["profile"] == "gpu"
    assert result["peak_bytes"] == result["reserved_bytes"] == 0  # no CUDA used
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    kept = nbformat.read(tmp_path / "kept" / "solutions-99_demo.ipynb", as_version=4)
    assert "GPU_CHECK_PEAK" in kept.cells[-1].outputs[0]["text"]


@pytest.mark.slow
def test_a_failing_cell_is_named_and_the_peak_still_measured(tmp_path: Path, code_notebook) -> None:
    path = code_notebook(tmp_path / DEMO, "x = 1", "assert x == 2, 'x should be 2'", "print('never')")
    result = gpu_check.execute(path, timeout_s=60)
    assert not result["passed"]
    assert result["error"] == "cell 1: AssertionError: x should be 2"
    assert any("x should be 2" in d for d in result["details"])
    assert result["peak_bytes"] == 0 and result["profile"] == "?"  # the peak cell ran all the same


def _row(lesson: str, passed: bool, error: str = "", condition: str = "gpu") -> dict:
    outcome = gpu_check.Outcome(gpu_check.Job(lesson, "solution", condition, Path("x")), passed, 12.3,
                                3 * 2**30, 4 * 2**30, "gpu", error, ["Traceback | line"] if error else [])
    return gpu_check.row(outcome, "today, a GPU")


def test_report_merges_reruns_and_shows_failures() -> None:
    first = [_row("01_a", False, "cell 3: AssertionError: a | b"), _row("02_b", True)]
    rerun = [_row("01_a", True)]
    rows = gpu_check.merge(first, rerun)
    assert [(r["lesson"], r["passed"]) for r in rows] == [("01_a", True), ("02_b", True)]
    page = gpu_check.report(gpu_check.merge(first, [_row("03_c", False, "x | y", "t4")]), "one run")
    assert "**1 of 3 passed.** one run" in page
    failed = "**FAIL** cell 3: AssertionError: a \\| b"  # a pipe would split the table's cell
    assert f"| 01_a | solution | gpu | 12 | 3.00 (4.00) | 0 / 0 | {failed} | today, a GPU |" in page
    older = {k: v for k, v in _row("02_b", True).items() if k not in ("timing_s", "paused_s")}
    assert "| 02_b | solution | gpu | 12 | 3.00 (4.00) | ? | pass |" in gpu_check.report([older], "")
    assert "### 03_c solution [t4]" in page and "Traceback | line" in page


def test_the_report_and_its_rows_are_written_together(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "gpu_check.md"
    gpu_check.write_report(out, [_row("01_a", True)], "one run")
    assert gpu_check.read_rows(out) == [_row("01_a", True)]
    assert "| 01_a |" in out.read_text()


def test_timing_waits_for_the_lock_of_another_notebook(tmp_path: Path, monkeypatch) -> None:
    lock = tmp_path / "timing.lock"
    monkeypatch.setenv(bench.TIMING_LOCK_ENV, str(lock))
    timed_at: list[float] = []
    with open(lock, "a") as other:  # another notebook is timing
        fcntl.flock(other, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: timed_at.append(
            bench.time_it(lambda: time.perf_counter(), repeat=1, warmup=0).best))
        worker.start()
        time.sleep(0.3)
        assert not timed_at, "time_it ran while another process held the timing lock"
        fcntl.flock(other, fcntl.LOCK_UN)
    worker.join(timeout=10)
    assert timed_at


def test_timing_needs_no_lock_outside_gpu_check(monkeypatch) -> None:
    monkeypatch.delenv(bench.TIMING_LOCK_ENV, raising=False)
    timings = bench.compare({"a": lambda: None, "b": lambda: None}, repeat=2)
    assert set(timings) == {"a", "b"} and os.environ.get(bench.TIMING_LOCK_ENV) is None


def test_timing_on_one_thread_restores_the_pool_even_after_an_error() -> None:
    original = torch.get_num_threads()
    torch.set_num_threads(2)  # as under `make lab` on 2 cores (make test runs one thread)
    before = torch.get_num_threads()
    seen: list[int] = []
    bench.compare({"a": lambda: seen.append(torch.get_num_threads())}, repeat=1, threads=1)
    assert seen and set(seen) == {1} and torch.get_num_threads() == before
    try:
        bench.time_it(lambda: 1 / 0, repeat=1, warmup=0, threads=1)
    except ZeroDivisionError:
        pass
    assert torch.get_num_threads() == before
    with bench.cpu_threads(1, device="cuda"):  # a GPU's timings leave the CPU pool alone
        assert torch.get_num_threads() == before
    torch.set_num_threads(original)


def test_a_thread_clock_leaves_out_the_time_the_thread_waits() -> None:
    timings = bench.compare({"sleep": lambda: time.sleep(0.05)}, repeat=2, warmup=0, threads=1,
                            clock=time.thread_time)
    assert timings["sleep"].best < 0.02  # asleep, the thread ran for almost none of the 0.05 s
    wall = bench.compare({"sleep": lambda: time.sleep(0.05)}, repeat=2, warmup=0, threads=1)
    assert wall["sleep"].best >= 0.05


def test_a_thread_clock_needs_one_cpu_thread() -> None:
    with pytest.raises(ValueError, match="threads=1 on the CPU"):
        bench.compare({"a": lambda: None}, clock=time.thread_time)
    with pytest.raises(ValueError, match="threads=1 on the CPU"):
        bench.compare({"a": lambda: None}, threads=1, device="cuda", clock=time.thread_time)


def _session(tmp_path: Path, seconds: int, *steps: str, args: str = "") -> str:
    """tools/gpu_session.sh on this machine (no GPU: its first lines complain and go on)."""
    env = dict(os.environ, SESSION_SECONDS=str(seconds), GPU_CHECK_ARGS=args,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    done = subprocess.run(["bash", "tools/gpu_session.sh", str(tmp_path / "out"), *steps], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    return done.stdout


def test_a_gpu_session_gives_the_notebooks_what_is_left_and_a_deadline_inside_it(tmp_path: Path) -> None:
    out = _session(tmp_path, 300, "notebooks", args="--dry-run --gpu-memory 80 --jobs 12 --lessons 00")
    header = next(line for line in out.splitlines() if line.startswith("=== notebooks ("))
    limit = int(re.search(r"at most (\d+) s", header).group(1))
    deadline = int(re.search(r"--deadline (\d+)", header).group(1))
    assert 250 < limit <= 290 and deadline == limit - 20
    assert "expected: about" in out  # gpu-check planned the run
    assert "skipped" in _session(tmp_path, 20, "notebooks")  # no time left for it: said, not started


def test_a_gpu_session_finds_the_course_without_installing_it(tmp_path: Path) -> None:
    """A bare GPU image has the repository and nothing of it installed: the script's own
    PYTHONPATH must reach `utils` and `course_tools` (a python3 here that only prints it)."""
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "PYTHONPATH=$PYTHONPATH"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=os.pathsep.join([str(fake.parent), os.environ["PATH"]]))
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", "tools/gpu_session.sh", str(tmp_path / "out"), "ddp"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    line = next(x for x in done.stdout.splitlines() if x.startswith("PYTHONPATH="))
    entries = [Path(p) for p in line.split("=", 1)[1].split(os.pathsep) if p]
    assert any((p / "utils" / "__init__.py").is_file() for p in entries)
    assert any((p / "course_tools" / "__init__.py").is_file() for p in entries)


def test_a_runner_that_breaks_fails_its_own_row_and_the_run_goes_on(monkeypatch) -> None:
    from course_tools import gpu_schedule

    jobs = gpu_check.plan(["gpu"], ["00"])  # the solution and the student version

    def run_job(job, env, timeout_s, keep=None):
        if job.version == "student":
            raise ValueError("no JSON on the runner's last line")
        return gpu_check.Outcome(job, True, 1.0)

    monkeypatch.setattr(gpu_check, "run_job", run_job)
    seen = []
    outcomes = gpu_check.run_all(jobs, gpu_schedule.Limits(2, 32.0), 60, on_outcome=seen.append)
    assert {o.job.version: o.passed for o in outcomes} == {"solution": True, "student": False}
    broken = next(o for o in outcomes if not o.passed)
    assert broken.error.startswith("runner failed: ValueError") and len(seen) == 2


def test_training_steps_wait_while_another_notebook_times(tmp_path: Path, monkeypatch) -> None:
    lock = tmp_path / "timing.lock"
    monkeypatch.setenv(bench.TIMING_LOCK_ENV, str(lock))
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stepped_at: list[float] = []

    def one_step() -> None:
        training.take_step(model, model(torch.ones(1, 2)).sum(), optimizer, None, None)
        stepped_at.append(time.perf_counter())

    with open(lock, "a") as other:  # another notebook is timing
        fcntl.flock(other, fcntl.LOCK_EX)
        worker = threading.Thread(target=one_step)
        worker.start()
        time.sleep(0.3)
        assert not stepped_at, "a training step ran while another notebook was timing"
        released = time.perf_counter()
        fcntl.flock(other, fcntl.LOCK_UN)
    worker.join(timeout=10)
    assert stepped_at and stepped_at[0] >= released
    one_step()  # nobody timing: at once
    with bench.exclusive_timing():  # the timing process itself never waits on its own lock
        one_step()
    assert len(stepped_at) == 3


def test_a_timer_that_dies_frees_the_steps_it_held(tmp_path: Path) -> None:
    lock = tmp_path / "timing.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; h = open(sys.argv[1], 'a'); fcntl.flock(h, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(60)"), str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        _wait_for_a_timer_that_dies(holder, lock)
    finally:
        holder.kill()


def _wait_for_a_timer_that_dies(holder: subprocess.Popen, lock: Path) -> None:
    assert holder.stdout.readline().strip() == "held"
    env = dict(os.environ, **{bench.TIMING_LOCK_ENV: str(lock)})
    waiter = subprocess.Popen([sys.executable, "-c", "from utils import bench; print('asking', flush=True); "
                               "bench.wait_while_timing()"], env=env, cwd=Path(__file__).parents[1],
                              stdout=subprocess.PIPE, text=True)
    assert waiter.stdout.readline().strip() == "asking"
    time.sleep(0.5)
    assert waiter.poll() is None  # waiting
    holder.kill()  # the timer's kernel dies mid-timing: its lock goes with it
    assert waiter.wait(timeout=30) == 0
