"""`make claims`: rerun every lesson's asserted claims over seeds and thread counts.

A claim (`utils.claims.claim`) holds for the run CI happens to make; this check asks whether it
holds for the runs students make. It executes the solution notebooks at the CPU profile for
every seed (`COURSE_SEED`, which shifts every seed the lessons use) and thread count
(`OMP_NUM_THREADS`), each combination with a fresh, empty model cache (lessons in curriculum
order, as in `make test`), and collects the JSON line each claim writes (`COURSE_CLAIMS_LOG`).

The report lists, for each claim: its threshold, the worst value seen, the margin (how far the
worst value is inside the threshold), the spread of the value across runs (max - min), and a
verdict: `ok`; `THIN` when the margin is smaller than the spread (another seed could cross
it); `FAILED` when some run crossed it; `MISSING` when some run never reached it (see the
errors). Errors that are not claims are listed too. Two one-thread notebooks run side by side
(a 2-core machine); a two-thread notebook runs alone; timings never overlap
(`COURSE_TIMING_LOCK`), and on a GPU the other notebook's training steps wait meanwhile.

    python -m course_tools.claims [--lessons 05 10] [--seeds 0-4] [--threads 1,2] [--jobs 2]
                                  [--timeout 600] [--notebook-timeout 3600] [--out docs/claims.md]
                                  [--profile gpu]

With --lessons, the other lessons' rows are kept from the previous report (docs/claims.json).
`--profile gpu` runs the GPU profile's sizes instead, on a GPU where there is one, else on the
CPU, and reports to docs/claims_gpu_profile.md: on a CPU it checks what Colab and Kaggle students'
models learn at those sizes (not their timings), which no CPU-profile run covers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from course_tools.config import lessons, repo_root, solution_path
from course_tools.gpu_check import plain_traceback_ipython_dir

CLAIM_FAILED = "claim failed:"  # the start of utils.claims' message
GPU_PROFILE_NOTE = (
    "Where no GPU was found (see the runs), the notebooks ran at the GPU profile's sizes on the CPU: "
    "what is measured there is what the models learn at the sizes a Colab or Kaggle student trains "
    "(accuracies, BLEU, perplexities, which do not depend on the device beyond rounding), not how "
    "fast or in how much memory a GPU runs them: timing and memory claims then describe the CPU, and one "
    "that holds only on a GPU fails there. `make gpu-check` runs every notebook on a GPU.")


# ------------------------------------------------------------------ one notebook (child process)


def execute(path: Path, timeout_s: float) -> dict:
    """Run a notebook in a fresh kernel in its folder, every cell even after an error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from course_tools.kernels import AsyncIpcKernelManager

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=int(timeout_s), kernel_name="python3",
                            kernel_manager_class=AsyncIpcKernelManager, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    stopped = ""
    try:
        client.execute()
    except CellTimeoutError:  # its message is the cell's source: say what happened instead
        stopped = f"CellTimeoutError: a cell ran past {timeout_s:.0f} s (--timeout)"
    except DeadKernelError as err:
        stopped = f"DeadKernelError: {str(err).strip().splitlines()[-1][:300]}"
    errors = [{"cell": i, "error": f"{o.get('ename')}: {str(o.get('evalue', '')).strip()[:300]}"}
              for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    return {"errors": errors, "stopped": stopped}


# ------------------------------------------------------------------ one run (parent process)


def _kernel_env(seed: int, threads: int, cache: Path, log: Path, scratch: Path,
                profile: str = "cpu") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "COURSE_DEVICE")}
    env.update(COURSE_SEED=str(seed), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               COURSE_PROFILE=profile, COURSE_CACHE=str(cache), COURSE_CLAIMS_LOG=str(log),
               COURSE_TIMING_LOCK=str(scratch / "timing.lock"), IPYTHONDIR=str(scratch / "ipython"),
               MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(repo_root()), env.get("PYTHONPATH")) if p))
    if not _has_gpu():  # one core each: the other notebook's training steps need not wait for a
        env["COURSE_TIMING_PAUSE"] = "0"  # timing (on one GPU they do: utils.bench.wait_while_timing)
    return env


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class Settings:
    """How every notebook runs: at which profile, and how long one cell and one notebook may take
    (the GPU profile's sizes on a CPU take many minutes a notebook)."""

    profile: str = "cpu"
    cell_timeout_s: float = 600
    notebook_timeout_s: float = 3600


def run_notebook(lesson: str, seed: int, threads: int, cache: Path, scratch: Path,
                 settings: Settings = Settings()) -> dict:
    """Execute one lesson for one seed and thread count; its claims and its other errors."""
    log = scratch / f"claims-{lesson}-s{seed}-t{threads}.jsonl"
    log.unlink(missing_ok=True)
    command = [sys.executable, "-m", "course_tools.claims", "--one", str(solution_path(lesson)),
               "--timeout", str(settings.cell_timeout_s)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=repo_root(),
                              timeout=settings.notebook_timeout_s,
                              env=_kernel_env(seed, threads, cache, log, scratch, settings.profile))
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if done.returncode == 0 and lines else {
            "errors": [], "stopped": f"runner failed: {done.stderr.strip()[-300:]}"}
    except subprocess.TimeoutExpired:
        limit = settings.notebook_timeout_s
        result = {"errors": [], "stopped": f"killed after {limit:.0f} s (--notebook-timeout)"}
    claims = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    errors = [e for e in result["errors"] if CLAIM_FAILED not in e["error"]]
    if result["stopped"]:
        errors.append({"cell": None, "error": result["stopped"]})
    return {"lesson": lesson, "seed": seed, "threads": threads, "claims": claims, "errors": errors,
            "seconds": round(time.perf_counter() - start, 1), "date": datetime.date.today().isoformat()}


class _Passes:
    """The (seed, threads) passes of one thread count: each pass runs its lessons in order, one
    at a time; different passes run side by side."""

    def __init__(self, chosen: Sequence[str], seeds: Sequence[int]) -> None:
        self.queues = {seed: list(chosen) for seed in seeds}
        self.busy: set[int] = set()
        self.lock = threading.Lock()

    def take(self) -> tuple[int, str] | None:
        """The next lesson of a pass that is not running (the one with most left), or None."""
        with self.lock:
            ready = [s for s, left in self.queues.items() if left and s not in self.busy]
            if not ready:
                return None
            seed = max(ready, key=lambda s: len(self.queues[s]))
            self.busy.add(seed)
            return seed, self.queues[seed].pop(0)

    def done(self, seed: int) -> None:
        with self.lock:
            self.busy.discard(seed)

    def finished(self) -> bool:
        with self.lock:
            return not any(self.queues.values())


def run_all(chosen: Sequence[str], seeds: Sequence[int], threads: Sequence[int], jobs: int,
            settings: Settings = Settings()) -> list[dict]:
    """Every (seed, threads) pass over the lessons, each with a fresh model cache. Passes of one
    thread count run together, on as many cores as `jobs` allows."""
    scratch = Path(tempfile.mkdtemp(prefix="course-claims-"))
    plain_traceback_ipython_dir(scratch / "ipython")
    results, lock, start = [], threading.Lock(), time.perf_counter()

    def worker(passes: _Passes, count: int) -> None:
        while not passes.finished():
            job = passes.take()
            if job is None:
                time.sleep(0.5)
                continue
            seed, lesson = job
            cache = scratch / f"cache-s{seed}-t{count}"
            run = run_notebook(lesson, seed, count, cache, scratch, settings)
            passes.done(seed)
            with lock:
                results.append(run)
                failed = sum(not c["holds"] for c in run["claims"])
                print(f"{time.perf_counter() - start:6.0f} s  {lesson}  seed {seed}  {count} thread(s)  "
                      f"{run['seconds']:5.1f} s  {len(run['claims'])} claims, {failed} failed, "
                      f"{len(run['errors'])} other error(s)", flush=True)

    for count in threads:
        passes, workers = _Passes(chosen, seeds), max(1, min(len(seeds), jobs // count))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker, passes, count) for _ in range(workers)]:
                future.result()  # a bug in the runner surfaces here, not silently
    return results


# ------------------------------------------------------------------ the report


def _threshold(c: dict) -> str:
    low, high = c["at_least"], c["at_most"]
    if low is not None and high is not None:
        return f"{low:g} … {high:g}"
    return f"≥ {low:g}" if low is not None else f"≤ {high:g}"


def _scaled(c: dict) -> float:
    """The value on the scale its margin is measured in: log10 for a ratio (see utils.claims)."""
    return math.log10(c["value"]) if c.get("ratio") and c["value"] > 0 else c["value"]


def summarize(runs: Sequence[dict]) -> list[dict]:
    """One row per (lesson, claim): threshold, worst value, margin, spread, runs, verdict.

    The spread is the largest range of the value across seeds at one thread count (the issue's
    "spread across seeds"); a thread count that shifts a value (a timing) shows in the worst
    value instead, and in `range`, the range over every run. Both are factors for a ratio."""
    runs_of = defaultdict(int)
    for run in runs:
        runs_of[run["lesson"]] += 1
    seen: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        for c in run["claims"]:
            seen[(run["lesson"], c["claim"])].append({**c, "threads": str(run["threads"])})
    rows = []
    for (lesson, name), records in seen.items():
        worst = min(records, key=lambda c: c["margin"])
        by_threads = defaultdict(list)
        for c in records:
            by_threads[c["threads"]].append(_scaled(c))
        spread = max(max(v) - min(v) for v in by_threads.values())
        values = [_scaled(c) for c in records]
        verdict = ("FAILED" if worst["margin"] < 0 else "MISSING" if len(records) < runs_of[lesson]
                   else "THIN" if worst["margin"] < spread else "ok")
        rows.append({"lesson": lesson, "claim": name, "ratio": bool(worst.get("ratio")),
                     "threshold": " / ".join(sorted({_threshold(c) for c in records})),
                     "worst": worst["value"], "margin": worst["margin"], "spread": spread,
                     "range": max(values) - min(values), "runs": f"{len(records)}/{runs_of[lesson]}",
                     "verdict": verdict, "failed_runs": [f"seed {c['seed']}, {c['threads']} thread(s)"
                                                         for c in records if not c["holds"]]})
    return sorted(rows, key=lambda r: r["lesson"])  # stable: claims stay in notebook order


def _g(x: float, ratio: bool = False) -> str:
    return f"×{10 ** x:.3g}" if ratio and math.isfinite(x) else f"{x:.4g}"


def report(runs: Sequence[dict], invocations: Sequence[dict], profile: str = "cpu") -> str:
    rows = summarize(runs)
    verdicts = defaultdict(int)
    for r in rows:
        verdicts[r["verdict"]] += 1
    ran = [f"{i['date']}: lessons {i['lessons']}, seeds {i['seeds']}, threads {i['threads']}, "
           f"{i['wall_seconds'] / 60:.0f} min on {i['machine']} (load average {i['load']})"
           for i in invocations]
    lines = ["# Claims check" + ("" if profile == "cpu" else f" at the {profile.upper()} profile"), "",
             "Every asserted claim of the solution notebooks (`utils.claims.claim`), rerun at the "
             f"{profile.upper()} profile for several seeds (`COURSE_SEED`) and thread counts "
             "(`OMP_NUM_THREADS`), each with a fresh model cache. *margin*: how far the worst value is "
             "inside the threshold; *spread*: "
             "the largest max - min of the value across seeds at one thread count; *range*: max - min "
             "over every run; THIN: margin < spread. Ratios (speed-ups, memory ratios: "
             "`claim(..., ratio=True)`) vary by factors, so their margin, spread and range are factors "
             "(×1.5: the worst value is 1.5 times the threshold, or the largest value 1.5 times the "
             "smallest). Generated by `make claims` (`python -m course_tools.claims`); do not edit.",
             *([] if profile == "cpu" else ["", GPU_PROFILE_NOTE]), "",
             "Runs:", "", *[f"- {line}" for line in ran], "",
             "Verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())), "",
             "| lesson | claim | threshold | worst value | margin | spread | range | runs | verdict |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = r["ratio"]
        lines.append(f"| {r['lesson'][:2]} | {r['claim']} | {r['threshold']} | {_g(r['worst'])} "
                     f"| {_g(r['margin'], ratio)} | {_g(r['spread'], ratio)} | {_g(r['range'], ratio)} "
                     f"| {r['runs']} | {r['verdict']} |")
    failures = [r for r in rows if r["failed_runs"]]
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- {r['lesson']}: {r['claim']}: {', '.join(r['failed_runs'])}"
                                               for r in failures]
    errors = [(run, e) for run in runs for e in run["errors"]]
    lines += ["", "## Errors that are not claims", ""]
    lines += [f"- {run['lesson']}, seed {run['seed']}, {run['threads']} thread(s), cell {e['cell']}: "
              f"`{e['error']}`" for run, e in errors] or ["None."]
    lines += ["", "## Seconds per notebook (fresh cache per seed and thread count; lessons in order)", "",
              "| lesson | threads | median | max |", "|---|---:|---:|---:|"]
    times = defaultdict(list)
    for run in runs:
        times[(run["lesson"], run["threads"])].append(run["seconds"])
    for (lesson, count), secs in sorted(times.items()):
        secs = sorted(secs)
        lines.append(f"| {lesson} | {count} | {secs[len(secs) // 2]:.0f} | {secs[-1]:.0f} |")
    return "\n".join(lines) + "\n"


def _machine() -> str:
    """Where the runs ran. The CPU model and the kernels torch picked for it (AVX2, AVX512) are
    part of it: the same seed can train to another end on another CPU, whose kernels round
    differently (lesson 07's post-norm race did, on an AMD EPYC with AVX2). The notebooks pick a
    CUDA GPU where there is one, so its name is part of it too."""
    import torch

    gpu = f", on an {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{os.cpu_count()} cores of {_cpu_model()} ({torch.backends.cpu.get_cpu_capability()}){gpu}, "
            f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        return names[0] if names else platform.processor() or "an unknown CPU"
    except OSError:
        return platform.processor() or "an unknown CPU"


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _range(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="*", default=[], help="lesson prefixes, e.g. 05 10 (default: all)")
    parser.add_argument("--seeds", default="0-4", help="COURSE_SEED values, e.g. 0-4 or 0,3")
    parser.add_argument("--threads", default="1,2", help="OMP_NUM_THREADS values")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="cores to fill (default: all)")
    parser.add_argument("--timeout", type=float, default=Settings.cell_timeout_s, help="seconds per cell")
    parser.add_argument("--notebook-timeout", type=float, default=Settings.notebook_timeout_s,
                        help="seconds per notebook, every cell together")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu",
                        help="the notebooks' sizes (COURSE_PROFILE); gpu runs on a GPU where there is one, "
                             "else on the CPU (default report: docs/claims_gpu_profile.md)")
    parser.add_argument("--out", type=Path, default=None, help="report (.md; .json beside it)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child: run one notebook
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(execute(args.one, args.timeout)))
        return 0
    chosen = [x for x in lessons() if not args.lessons or any(x.startswith(p) for p in args.lessons)]
    if not chosen:
        raise SystemExit(f"no lesson starts with any of {args.lessons}; the lessons are: {lessons()}")
    default = "claims.md" if args.profile == "cpu" else f"claims_{args.profile}_profile.md"
    out = args.out or repo_root() / "docs" / default
    store = out.with_suffix(".json")
    keep = store.exists() and args.lessons  # a partial rerun keeps the other lessons' rows
    old = json.loads(store.read_text()) if keep else {"runs": [], "invocations": []}
    load, start = _load(), time.perf_counter()
    settings = Settings(args.profile, args.timeout, args.notebook_timeout)
    runs = run_all(chosen, _range(args.seeds), _range(args.threads), args.jobs, settings)
    invocation = {"date": datetime.date.today().isoformat(), "lessons": " ".join(x[:2] for x in chosen),
                  "seeds": args.seeds, "threads": args.threads, "machine": _machine(),
                  "wall_seconds": round(time.perf_counter() - start),
                  "load": f"{load} before, {_load()} after"}
    runs = [r for r in old["runs"] if r["lesson"] not in chosen] + runs
    runs.sort(key=lambda r: (r["lesson"], r["threads"], r["seed"]))
    invocations = [*old["invocations"], invocation]
    out.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps({"invocations": invocations, "claims": summarize(runs), "runs": runs},
                                indent=1, ensure_ascii=False) + "\n")
    text = report(runs, invocations, args.profile)
    out.write_text(text)
    print(text)
    print(f"wrote {out} and {store} in {invocation['wall_seconds'] / 60:.1f} min")
    return 1 if any(r["verdict"] != "ok" for r in summarize(runs)) else 0


if __name__ == "__main__":
    sys.exit(main())
