"""Files no submission may change, hashed before and after each one runs.

The submissions as received must never change. Without the sandbox, a kernel can write
anywhere the grading user can, so the course files and the results of submissions already
graded are watched too. A change is blamed on the submissions that ran since the last clean
check: exactly the culprit when one runs at a time, a short list of suspects otherwise.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from pathlib import Path

Signature = tuple[int, int, int, int]  # size, mtime, ctime, inode: any write changes one
Hashes = dict[str, tuple[Signature, str]]  # path -> (signature, sha256) seen last


def _signature(path: Path) -> Signature:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def fingerprint(roots: Iterable[Path], known: Hashes | None = None) -> dict[str, str]:
    """path -> sha256 of every file under `roots` (a link is recorded by its target)."""
    # `known` spares re-reading a file whose signature has not changed since it was hashed:
    # checking after every submission then costs a stat per file, not a read
    known = {} if known is None else known
    found: dict[str, str] = {}
    for root in roots:
        paths = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for path in paths:
            if "__pycache__" in path.parts:  # Python's own byte-code cache, not course files
                continue
            if path.is_symlink():
                found[str(path)] = f"link to {path.readlink()}"
            elif path.is_file():
                signature = _signature(path)
                if known.get(str(path), (None,))[0] != signature:
                    known[str(path)] = (signature, hashlib.sha256(path.read_bytes()).hexdigest())
                found[str(path)] = known[str(path)][1]
    return found


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two fingerprints, one line per file."""
    lines = [f"changed {p}" for p in before if p in after and before[p] != after[p]]
    lines += [f"deleted {p}" for p in before if p not in after]
    lines += [f"created {p}" for p in after if p not in before]
    return sorted(lines)


class Watch:
    """Hashes protected files after each submission and blames the ones that ran meanwhile."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = list(roots)
        self._hashes: Hashes = {}
        self.expected = fingerprint(self.roots, self._hashes)
        self.running: set[str] = set()
        self.since_check: set[str] = set()  # ran at some point since the last clean check
        self.blame: dict[str, list[str]] = {}
        self.company: dict[str, set[str]] = {}  # the other suspects of each blamed submission
        self.unexplained: list[str] = []  # changes seen while no submission ran
        self._lock = threading.Lock()

    def started(self, student: str) -> None:
        with self._lock:
            self.running.add(student)
            self.since_check.add(student)

    def finished(self, student: str, protect: Iterable[Path] = ()) -> None:
        """Check the protected files; then protect `protect` too (this submission's results)."""
        with self._lock:
            self.running.discard(student)
            self._check()
            extra = list(protect)
            self.roots += extra
            self.expected.update(fingerprint(extra, self._hashes))

    def check(self) -> None:
        """Check once more, with nothing running: a change now has no suspect, only a witness."""
        with self._lock:
            self._check()

    def _check(self) -> None:
        now = fingerprint(self.roots, self._hashes)
        found = changes(self.expected, now)
        if found and not self.since_check:
            self.unexplained += found
        for suspect in sorted(self.since_check) if found else []:
            self.blame.setdefault(suspect, []).extend(found)
            self.company.setdefault(suspect, set()).update(self.since_check - {suspect})
        self.expected = now
        self.since_check = set(self.running)

    def problem(self, student: str) -> str:
        """The reason this submission cannot be trusted ("" when nothing changed on its watch)."""
        found = self.blame.get(student, [])
        if not found:
            return ""
        shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
        others = sorted(self.company.get(student, ()))
        if not others:
            return f"wrote outside its folder: {shown}"
        return (f"files outside its folder changed while it ran alongside {', '.join(others)} "
                f"(grade these again with --jobs 1 to tell which): {shown}")
