"""`python -m utils.bench NAME [ARGS]`: run one of the course's benchmarks.

Every module `utils/bench/NAME.py` with a `main(argv) -> int` is a benchmark; each prints
one table measured side by side in one run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import utils.bench


def available() -> list[str]:
    """The benchmark names: the modules of utils.bench."""
    return sorted(m.name for m in pkgutil.iter_modules(utils.bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m utils.bench NAME [ARGS]; NAME is one of: {', '.join(names)}")
        return 0 if argv else 2
    if argv[0] not in names:
        print(f"unknown benchmark {argv[0]!r}; the benchmarks are: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"utils.bench.{argv[0]}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
