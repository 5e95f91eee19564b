"""`python -m utils.bench NAME [ARGS]`: run one of the course's benchmarks."""

from __future__ import annotations

import importlib
import sys

# name -> module with a `main(argv)`; each prints one table measured side by side.
BENCHMARKS = {
    "data": "utils.bench.data",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown benchmark {argv[0]!r}.", file=sys.stderr)
        print("usage: python -m utils.bench NAME [ARGS]; NAME is one of: " + ", ".join(sorted(BENCHMARKS)))
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
