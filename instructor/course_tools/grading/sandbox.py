"""Where a graded kernel runs: in a bubblewrap sandbox where bubblewrap works here.

Only the kernel is sandboxed, not nbgrader: the two talk over ZMQ on Unix sockets (the
IPC transport) in a folder bound into the sandbox, so the kernel needs no network at all,
and the gradebook, the solutions, the other submissions and the grading output stay out
of its sight and reach. Inside it sees a read-only root, its own scratch folder (its only
writable place on disk) and a private, size-capped /tmp.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CHOICES = ("auto", "bwrap", "none")
TMP_BYTES = 512 * 2**20  # the private /tmp lives in RAM: cap it
HIDE_BYTES = 2**20  # a tmpfs that hides a folder only needs room for mount points
KERNEL = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
NAMESPACES = ["--unshare-all", "--die-with-parent", "--new-session"]


class SandboxError(RuntimeError):
    """bubblewrap was asked for but cannot run here."""


@cache
def bwrap_works() -> bool:
    """True when bubblewrap is installed and can create a sandbox on this machine."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    probe = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
             *NAMESPACES, "--", "true"]
    try:  # installed is not enough: containers often forbid the namespaces it needs
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve(choice: str) -> str:
    """"bwrap" or "none" for a --sandbox choice; asking for "bwrap" where it cannot run fails."""
    if choice not in CHOICES:
        raise ValueError(f"--sandbox must be one of {CHOICES}, got {choice!r}")
    if choice == "none":
        return "none"
    if bwrap_works():
        return "bwrap"
    if choice == "bwrap":
        raise SandboxError("bubblewrap is not installed or cannot create namespaces here "
                           "(Debian/Ubuntu: apt-get install bubblewrap); use --sandbox auto or none")
    return "none"


@dataclass(frozen=True)
class Jail:
    """What one kernel may see: everything read-only, minus `hidden`, plus two writable folders."""

    scratch: Path  # the kernel's working folder and HOME
    sockets: Path  # its IPC sockets and connection file (a short path: sockets have a length limit)
    hidden: tuple[Path, ...]  # folders replaced by an empty read-only one
    visible: tuple[Path, ...]  # folders shown again where they lie inside a hidden one


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def _hidden(jail: Jail) -> list[Path]:
    """The hidden paths bwrap can mount on (they exist) that the private /tmp does not hide already:
    those outside /tmp, and those inside a visible folder (a checkout under /tmp, say), which
    re-showing that folder would otherwise expose again."""
    def shown_again(p: Path) -> bool:
        return any(p == v or _inside(p, v) for v in jail.visible)

    return [p for p in jail.hidden if p.exists() and (not p.is_relative_to("/tmp") or shown_again(p))]


def _hide(jail: Jail) -> list[str]:
    """An empty tmpfs on each hidden folder, outermost first, re-showing visible ones; /dev/null on files."""
    folders = [(Path("/tmp"), TMP_BYTES)] + [(p, HIDE_BYTES) for p in _hidden(jail) if p.is_dir()]
    args: list[str] = []
    for folder, size in sorted(set(folders), key=lambda item: (len(item[0].parts), str(item[0]))):
        args += ["--size", str(size), "--tmpfs", str(folder)]
        args += [a for v in jail.visible if _inside(v, folder) for a in ("--ro-bind", str(v), str(v))]
    return args + [a for p in _hidden(jail) if not p.is_dir() for a in ("--ro-bind", "/dev/null", str(p))]


def bwrap_args(jail: Jail) -> list[str]:
    """bubblewrap's arguments, up to and including the `--` before the command."""
    read_only = [str(p) for p in _hidden(jail) if p.is_dir()]
    return [
        "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_hide(jail),
        "--bind", str(jail.scratch), str(jail.scratch), "--bind", str(jail.sockets), str(jail.sockets),
        *[a for p in read_only for a in ("--remount-ro", p)],
        "--chdir", str(jail.scratch), "--setenv", "TMPDIR", "/tmp",
        # ipykernel exits when its parent pid looks like init, as bwrap's pid 1 does; the
        # sandbox dies with its parent anyway (--die-with-parent)
        "--setenv", "JPY_PARENT_PID", "0",
        *NAMESPACES, "--",
    ]


def kernel_argv(sandbox: str, jail: Jail) -> list[str]:
    """The kernelspec argv that starts a graded kernel, sandboxed or not."""
    return KERNEL if sandbox == "none" else [*bwrap_args(jail), *KERNEL]


def default_hidden(repo: Path, home: Path, extra: Sequence[Path]) -> tuple[Path, ...]:
    """What a kernel must not see: solutions, history and grading state, the home folder, `extra`."""
    # grading state holds solutions and hidden tests too (earlier runs' source/ and gradebooks);
    # the home folder may hold keys and a private fork; `extra`: the submissions, the output
    state = ["grading", "submitted", "autograded", "feedback", "downloaded", "release", "gradebook.db"]
    found = [repo / "solutions", repo / ".git", *(repo / name for name in state), *extra]
    if home != Path("/"):
        found.append(home)
    return tuple(p.resolve() for p in found)


def default_visible(repo: Path) -> tuple[Path, ...]:
    """What a kernel needs even where it lies in a hidden folder: the course and Python itself."""
    return tuple(Path(p).resolve() for p in {repo, Path(sys.prefix), Path(sys.base_prefix)})
