"""Run a script under `torchrun` from a notebook or a test, and get its metrics back.

    run = launch.run("utils.distributed.train", {"steps": 40}, nproc=2)
    run.metrics["losses"]

`run` picks the backend and the number of processes (`plan`): one process per GPU with
NCCL where GPUs exist, two gloo processes on the CPU otherwise. It starts
`python -m torch.distributed.run` (the `torchrun` command), streams the workers' output
into the notebook as it comes, and returns the `metrics.json` the script wrote into its
`--out` folder. Nothing here replaces torchrun: the command it runs is printed, and the
same command works in a terminal.

Errors say what went wrong before anything starts where possible (more GPUs asked for than
exist, a port already in use) and otherwise after: a worker's traceback is shown, not
swallowed. `run_nodes` simulates a multi-node job on this machine: one `torchrun` per
"node", meeting at a c10d rendezvous on 127.0.0.1.

The workers get `COURSE_DEVICE` (the plan's device), `OMP_NUM_THREADS` (the plan's threads)
and, unless already set, `PYTHONWARNINGS=ignore`, so that library warnings repeated by every
rank do not bury the output.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.distributed.env import free_port, port_in_use

TRACEBACK = re.compile(r"Traceback \(most recent call last\):")


class LaunchError(RuntimeError):
    """A distributed run could not start or did not finish; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """How many processes, on which device, talking through which backend."""

    nproc: int
    device: str  # "cuda" or "cpu"
    backend: str  # "nccl" or "gloo"
    threads: int  # intra-op threads per process (CPU)

    def describe(self) -> str:
        per = "one GPU each" if self.device == "cuda" else f"{self.threads} CPU thread(s) each"
        return f"{self.nproc} process(es), {per}, backend {self.backend}"


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan(nproc: int | None = None, device: str | None = None, threads: int | None = None) -> Plan:
    """NCCL with one process per GPU where GPUs exist; otherwise gloo with 2 CPU processes.

    `threads`: intra-op threads per process (default: the cores shared out); 1 makes each CPU
    rank one core, the fair setting for measuring how throughput scales with ranks.
    """
    gpus = _gpu_count()
    device = device or os.environ.get("COURSE_DEVICE") or ("cuda" if gpus else "cpu")
    if device not in ("cuda", "cpu"):
        raise LaunchError(f"device must be 'cuda' or 'cpu' for a distributed run, got {device!r} "
                          "(no collective backend supports Apple's MPS: use 'cpu')")
    if nproc is not None and (not isinstance(nproc, int) or nproc < 1):
        raise LaunchError(f"nproc must be a positive int, got {nproc!r}")
    cores = os.cpu_count() or 1
    if device == "cuda":
        if gpus == 0:
            raise LaunchError("device='cuda' was asked for, but this machine has no CUDA GPU; use "
                              "device='cpu' (gloo processes on the CPU)")
        nproc = nproc or gpus
        if nproc > gpus:
            raise LaunchError(
                f"asked for {nproc} processes on CUDA, one GPU each, but this machine has {gpus} GPU(s). "
                f"Use nproc <= {gpus}, or device='cpu' to run {nproc} gloo processes on the CPU.")
        return Plan(nproc, "cuda", "nccl", threads or max(1, cores // nproc))
    nproc = nproc or 2
    return Plan(nproc, "cpu", "gloo", threads or max(1, cores // nproc))


@dataclass
class Run:
    """What a finished run left: its metrics (rank 0's metrics.json), output and timing."""

    metrics: dict[str, Any]
    output: str
    seconds: float
    command: list[str]
    out_dir: Path
    plan: Plan
    ranks: list[dict[str, Any]] = field(default_factory=list)  # every rank's rank{r}.json

    def __repr__(self) -> str:
        return f"Run({self.plan.describe()}, {self.seconds:.1f} s, out_dir={str(self.out_dir)!r})"


def _argv(args: Sequence[str] | Mapping[str, Any] | None) -> list[str]:
    if args is None:
        return []
    if isinstance(args, Mapping):
        argv: list[str] = []
        for key, value in args.items():
            flag = "--" + str(key).replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + str(key).replace("_", "-"))
            elif value is not None:
                argv += [flag, str(value)]
        return argv
    if isinstance(args, str):
        return shlex.split(args)
    return [str(a) for a in args]


def command(module: str, args: Sequence[str] | Mapping[str, Any] | None = None, *, nproc: int,
            nnodes: int = 1, node_rank: int | None = None, endpoint: str | None = None,
            rdzv_id: str = "course", max_restarts: int = 0, python: str | None = None) -> list[str]:
    """The torchrun command line: `--standalone` for one node, a c10d rendezvous for several.

    With c10d, `--node-rank` is informational: the rendezvous assigns the ranks (NOTES.md).
    """
    cmd = [python or sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1 and endpoint is None:
        cmd += ["--standalone"]
    else:
        if endpoint is None:
            raise LaunchError("a multi-node run needs endpoint='HOST:PORT', the address of node 0")
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                f"--rdzv-id={rdzv_id}"]
        if node_rank is not None:
            cmd += [f"--node-rank={node_rank}"]
    cmd += [f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}", "--monitor-interval=0.1"]
    return cmd + ["-m", module, *_argv(args)]


def _environment(p: Plan, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COURSE_DEVICE": p.device,
           "OMP_NUM_THREADS": str(p.threads), "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore")}
    if sys.platform == "win32":  # no libuv in PyTorch's Windows wheels: the stores that read this obey it
        env.setdefault("USE_LIBUV", "0")
    root = str(Path(__file__).resolve().parents[2])  # the workers import `utils` from here
    env["PYTHONPATH"] = os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH", "")) if x)
    env.setdefault("LOGLEVEL", "WARNING")
    return {**env, **(extra or {})}


class _Process:
    """One torchrun process whose merged stdout/stderr is read by a thread, line by line."""

    def __init__(self, cmd: list[str], env: dict[str, str], label: str, lines: queue.Queue):
        self.label, self.lines = label, lines
        self.buffer: list[str] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1, env=env, start_new_session=True, errors="replace")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.buffer.append(line)
            self.lines.put((self.label, line))
        self.lines.put((self.label, None))

    def kill(self) -> None:
        try:
            if hasattr(os, "killpg"):
                os.killpg(self.proc.pid, signal.SIGKILL)  # torchrun and every worker it started
            else:  # Windows: no process groups; taskkill /T ends the process tree
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.proc.pid)], capture_output=True)
        except ProcessLookupError:
            pass


def _stream(procs: list[_Process], lines: queue.Queue, echo: bool, timeout: float, prefix: bool) -> None:
    deadline, open_streams = time.monotonic() + timeout, len(procs)
    while open_streams:
        try:
            label, line = lines.get(timeout=max(0.01, min(0.5, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                tail = "".join(l for p in procs for l in p.buffer[-20:])
                raise LaunchError(f"the run did not finish within {timeout:g} s and was stopped. "
                                  f"Its last output:\n{tail}") from None
            continue
        if line is None:
            open_streams -= 1
        elif echo:
            print(f"[{label}] {line}" if prefix else line, end="", flush=True)
    for p in procs:
        p.proc.wait()
        p.reader.join()


def root_cause(output: str) -> str:
    """The last worker traceback in `output` (what to show when a run fails), or its tail."""
    starts = [m.start() for m in TRACEBACK.finditer(output)]
    if not starts:
        return "\n".join(output.strip().splitlines()[-15:])
    lines = output[starts[-1]:].splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line and not line.startswith((" ", "Traceback"))
                and not re.match(r"^\w+(\.\w+)*(Error|Exception|Interrupt|Exit)\b", line)), len(lines))
    keep = lines[: end + 1] if end < len(lines) else lines
    return "\n".join(keep[-25:])


WINDOWS_ADVICE = (
    "On Windows, run the torchrun cells of lessons 11 and 12 in WSL2 (Ubuntu; `wsl --install`, "
    "then the course's Linux instructions there) or on Colab or Kaggle; the rest of these "
    "lessons (simulated ranks, a group of one process, in_process runs) works on Windows itself."
)


def _failure(returncode: int, output: str, cmd: list[str]) -> LaunchError:
    if "without libuv support" in output:
        # PyTorch's Windows wheels have no libuv TCPStore, and torchrun's rendezvous asks for it
        # whatever USE_LIBUV says (torch 2.13 still: pytorch/pytorch#148283, #178600).
        return LaunchError("torchrun could not start its rendezvous: this PyTorch build has no libuv "
                           "TCPStore, which torchrun's rendezvous requires (PyTorch's Windows wheels). "
                           + WINDOWS_ADVICE)
    if re.search(r"address already in use|EADDRINUSE|errno: 98", output, re.I):
        return LaunchError("the rendezvous port is already in use (an earlier run still alive? check "
                           "`ps`), so the processes could not meet. Leave port=None to let torchrun pick "
                           "a free one.")
    return LaunchError(f"torchrun exited with code {returncode}: a worker failed. Its error:\n"
                       f"{root_cause(output)}\n(command: {shlex.join(cmd)})")


def _read_results(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    metrics_file = out_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    ranks = [json.loads(p.read_text()) for p in sorted(out_dir.glob("rank*.json"),
                                                       key=lambda p: int(p.stem[4:]))]
    return metrics, ranks


def _out_dir(args: list[str], out_dir: str | Path | None) -> tuple[list[str], Path]:
    if "--out" in args:
        return args, Path(args[args.index("--out") + 1])
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="course-run-"))
    return [*args, "--out", str(folder)], folder


def run(module: str, args: Sequence[str] | Mapping[str, Any] | None = None, *, nproc: int | None = None,
        device: str | None = None, threads: int | None = None, max_restarts: int = 0,
        port: int | None = None, out_dir: str | Path | None = None, timeout: float = 600.0, echo: bool = True,
        in_process: bool = False, env: Mapping[str, str] | None = None) -> Run:
    """Run `python -m module ARGS --out DIR` under torchrun; stream its output; return its metrics.

    `port=None` lets torchrun pick a free port (`--standalone`); a given port is checked first.
    `in_process=True` calls the module's `main(argv)` in this process instead, as a group of
    one (`nproc` must then be 1): a single-process baseline without a start-up, and what a
    notebook runs under nbgrader, which must not start processes.
    """
    argv, folder = _out_dir(_argv(args), out_dir)
    if in_process:
        return _run_in_process(module, argv, folder, nproc, threads)
    p = plan(nproc, device, threads)
    if port is not None and port_in_use(port):
        raise LaunchError(f"port {port} on 127.0.0.1 is already in use (an earlier torchrun still running? "
                          "another service?). Pass port=None to let torchrun pick a free port.")
    endpoint = None if port is None else f"127.0.0.1:{port}"
    cmd = command(module, argv, nproc=p.nproc, endpoint=endpoint, max_restarts=max_restarts)
    if echo:
        print(f"$ torchrun {shlex.join(cmd[3:])}    # {p.describe()}", flush=True)
    lines: queue.Queue = queue.Queue()
    start = time.perf_counter()
    proc = _Process(cmd, _environment(p, env), "torchrun", lines)
    try:
        _stream([proc], lines, echo, timeout, prefix=False)
    except BaseException:
        proc.kill()  # an interrupted notebook cell must not leave workers behind
        raise
    output = "".join(proc.buffer)
    if proc.proc.returncode != 0:
        raise _failure(proc.proc.returncode, output, cmd)
    metrics, ranks = _read_results(folder)
    if not metrics:
        raise LaunchError(f"the run finished but wrote no {folder / 'metrics.json'}: does `{module}` accept "
                          "--out and write its metrics there?")
    return Run(metrics, output, time.perf_counter() - start, cmd, folder, p, ranks)


def _run_in_process(module: str, argv: list[str], folder: Path, nproc: int | None,
                    threads: int | None) -> Run:
    import importlib

    import torch

    if nproc not in (None, 1):
        raise LaunchError(f"in_process runs are a group of one process; got nproc={nproc}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    start = time.perf_counter()
    try:
        importlib.import_module(module).main(argv)
    finally:
        torch.set_num_threads(before)
    metrics, ranks = _read_results(folder)
    return Run(metrics, "", time.perf_counter() - start, ["<in process>", module, *argv], folder,
               Plan(1, "cpu", "gloo", threads or before), ranks)


def run_nodes(module: str, args: Sequence[str] | Mapping[str, Any] | None = None, *, nnodes: int = 2,
              nproc_per_node: int = 1, port: int | None = None, out_dir: str | Path | None = None,
              timeout: float = 600.0, echo: bool = True, env: Mapping[str, str] | None = None) -> Run:
    """Simulate `nnodes` machines on this one: one `torchrun` per node, each with
    `--nnodes`, a c10d rendezvous on 127.0.0.1 and `--node-rank`; gloo on the CPU.

    On real machines the commands are the same with node 0's address as the endpoint.
    """
    argv, folder = _out_dir(_argv(args), out_dir)
    port = port or free_port()
    if port_in_use(port):
        raise LaunchError(f"port {port} on 127.0.0.1 is already in use; pass port=None to pick a free one")
    p = plan(nproc_per_node, "cpu")
    p = Plan(p.nproc, "cpu", "gloo", max(1, (os.cpu_count() or 1) // (nnodes * nproc_per_node)))
    endpoint, rdzv_id = f"127.0.0.1:{port}", f"course-{port}"
    cmds = [command(module, argv, nproc=nproc_per_node, nnodes=nnodes, node_rank=n, endpoint=endpoint,
                    rdzv_id=rdzv_id) for n in range(nnodes)]
    if echo:
        for n, cmd in enumerate(cmds):
            print(f"node {n}$ torchrun {shlex.join(cmd[3:])}", flush=True)
    lines: queue.Queue = queue.Queue()
    start = time.perf_counter()
    procs = [_Process(cmd, _environment(p, env), f"node {n}", lines) for n, cmd in enumerate(cmds)]
    try:
        _stream(procs, lines, echo, timeout, prefix=True)
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    for proc, cmd in zip(procs, cmds, strict=True):
        if proc.proc.returncode != 0:
            raise _failure(proc.proc.returncode, "".join(proc.buffer), cmd)
    metrics, ranks = _read_results(folder)
    output = "".join(line for proc in procs for line in proc.buffer)
    return Run(metrics, output, time.perf_counter() - start, cmds[0], folder,
               Plan(nnodes * nproc_per_node, "cpu", "gloo", p.threads), ranks)
