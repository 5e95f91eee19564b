"""The student-facing course on Windows and macOS, simulated on Linux (no such machine here).

One fresh Python is made to look like Windows where the course could notice: the Unix-only
modules `fcntl` and `resource` cannot be imported, neither can Triton (no Windows or macOS
wheels), and `os.uname`, `os.killpg`, `os.sysconf`, `signal.SIGKILL` and PyTorch's
`HashStore` (absent from its Windows build) are removed. Then every module a notebook can
import is imported, and the lesson paths that must work there are run. `course_tools`
(authoring, release, grading: instructor/) is for instructors on Linux; it is made unimportable
here, which also shows that no module of `utils` needs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.distributed import launch

pytestmark = pytest.mark.slow  # one subprocess that imports torch and the course: a few seconds

SIMULATION = r'''
import json, os, signal, sys
for name in ("fcntl", "resource", "triton", "triton.language", "triton.testing", "psutil"):
    sys.modules[name] = None  # `import fcntl` now raises ImportError, as on Windows
sys.modules["course_tools"] = None  # not installed for students

import torch, torch.distributed as dist
import torch.distributed.elastic.multiprocessing  # torch's own modules, before the removals below
for owner, attr in ((os, "uname"), (os, "killpg"), (os, "sysconf"), (signal, "SIGKILL"), (dist, "HashStore")):
    if hasattr(owner, attr):
        delattr(owner, attr)

import importlib, pkgutil, traceback
import utils

report = {"failed imports": {}, "imported": []}
for info in pkgutil.walk_packages(utils.__path__, "utils."):
    try:
        importlib.import_module(info.name)
        report["imported"].append(info.name)
    except Exception:
        report["failed imports"][info.name] = traceback.format_exc(limit=3)[-600:]

def outcome(fn):
    try:
        return {"ok": fn()}
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"}

# Lesson 10 without Triton: the kernels' source can be shown; running one says what to do.
import inspect
from utils.models import triton_attention as ta
kernel = ta._flash_attention_forward_kernel  # a plain function without Triton
report["kernel source"] = outcome(lambda: '"""One program' in inspect.getsource(kernel))
q = torch.randn(1, 1, 8, 16)
report["triton call"] = outcome(lambda: ta.triton_flash_attention(q, q, q).shape[-1])

# Lesson 10's peak memory on a Windows CPU: not measurable, and both helpers say so.
from utils import memory
from utils.bench import attention as bench_attention
real_platform, sys.platform = sys.platform, "win32"
report["can measure"] = memory.can_measure("cpu")
report["measure peaks"] = outcome(lambda: memory.measure_peaks([memory.AttentionCall("naive", 8)]))
report["benchmark peak"] = outcome(lambda: bench_attention.peak_memory_bytes(
    "naive", batch=1, heads=1, length=8, head_dim=16, block_size=8))
sys.platform = real_platform
report["free bytes"] = outcome(lambda: bench_attention._free_bytes(torch.device("cpu")))

# File locks: none on Windows, and the blocks they guard still run.
from utils import bench, run_cache
os.environ[bench.TIMING_LOCK_ENV] = os.path.join(sys.argv[1], "timing.lock")
report["timing"] = outcome(lambda: bench.time_it(lambda: None, repeat=1).median >= 0)
def cache_lock():
    with run_cache._exclusive(__import__("pathlib").Path(sys.argv[1]) / "model.lock", "model"):
        return True
report["cache lock"] = outcome(cache_lock)

# Lessons 11 and 12 in the notebook: a group of one process, and an in-process training run.
from utils.distributed import env, launch
def group_of_one():
    group = env.init("cpu")
    t = torch.ones(2)
    dist.all_reduce(t)
    return [group.world_size, t.tolist()]
report["group of one"] = outcome(group_of_one)
tiny = {"steps": 2, "global_batch": 4, "seq_len": 8, "log_every": 1, "save_model": True}
report["in-process run"] = outcome(lambda: len(launch.run(
    "utils.distributed.train", tiny, in_process=True, threads=1,
    out_dir=os.path.join(sys.argv[1], "run")).metrics["losses"]))
print("REPORT " + json.dumps(report))
'''


@pytest.fixture(scope="module")
def windows_like(tmp_path_factory, root: Path) -> dict:
    """What the simulated Windows Python reported (see the module's doc)."""
    scratch = tmp_path_factory.mktemp("windows-like")
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "COURSE_DEVICE": "cpu"}
    env.pop("COURSE_TIMING_LOCK", None)
    done = subprocess.run([sys.executable, "-c", SIMULATION, str(scratch)], capture_output=True, text=True,
                          env=env, cwd=scratch, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("REPORT "))
    return json.loads(line.removeprefix("REPORT "))


def test_every_student_facing_module_imports_without_unix_only_modules_and_triton(windows_like) -> None:
    assert windows_like["failed imports"] == {}
    assert {"utils.bench.attention", "utils.memory", "utils.training", "utils.run_cache",
            "utils.models.triton_attention", "utils.distributed.launch",
            "utils.distributed.train"} <= set(windows_like["imported"])


def test_lesson_10_shows_the_triton_kernel_without_triton_and_says_what_to_do(windows_like) -> None:
    assert windows_like["kernel source"] == {"ok": True}
    assert "needs Triton, which is not installed here" in windows_like["triton call"]["error"]


def test_peak_memory_on_a_windows_cpu_is_reported_as_not_measurable(windows_like) -> None:
    assert windows_like["can measure"] is False  # lesson 10 then prints "not measured" and goes on
    assert "peak memory can be measured on CUDA or on a Linux CPU" in windows_like["measure peaks"]["error"]
    assert "WSL2" in windows_like["benchmark peak"]["error"]
    assert windows_like["free bytes"]["ok"] > 0  # no psutil, no sysconf: the benchmark tries every row


def test_timing_and_the_model_cache_run_without_file_locks(windows_like) -> None:
    assert windows_like["timing"] == {"ok": True}
    assert windows_like["cache lock"] == {"ok": True}


def test_lessons_11_and_12_make_a_group_of_one_and_train_in_process_without_hashstore(windows_like) -> None:
    assert windows_like["group of one"] == {"ok": [1, [1.0, 1.0]]}
    assert windows_like["in-process run"] == {"ok": 2}


def test_torchrun_failing_for_want_of_libuv_says_to_use_wsl2_or_colab() -> None:
    output = ("Traceback (most recent call last):\n  File \"rendezvous.py\", line 67, in next_rendezvous\n"
              "RuntimeError: use_libuv was requested but PyTorch was build without libuv support\n")
    message = str(launch._failure(1, output, ["python", "-m", "torch.distributed.run"]))
    assert "no libuv" in message and "WSL2" in message and "Colab" in message


def test_torchrun_workers_on_windows_are_told_not_to_use_libuv(monkeypatch) -> None:
    plan = launch.Plan(2, "cpu", "gloo", 1)
    monkeypatch.delenv("USE_LIBUV", raising=False)
    assert "USE_LIBUV" not in launch._environment(plan, None)
    monkeypatch.setattr(launch.sys, "platform", "win32")
    assert launch._environment(plan, None)["USE_LIBUV"] == "0"
