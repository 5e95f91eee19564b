"""Asserted claims: a measurement the text states, checked against its threshold.

    claim("GRU test accuracy (%)", accuracy, at_least=95)
    claim("Transformer minus CNN, cues 13-18 (points)", tr - cnn, at_least=25)
    claim("speed-up of the KV cache (x)", uncached / cached, at_least=2, ratio=True)

`claim` fails like an `assert`, with a message that says what was measured and what was
claimed. A comparison between two measurements is one value (their difference or ratio),
named so. `ratio=True` marks a positive quantity that varies by factors (a speed-up, a memory
ratio): the claims check then measures its margin and spread as factors (x1.5) rather than
differences, as 2x -> 4x is as far as 4x -> 8x.

When `COURSE_CLAIMS_LOG` names a file, every claim first appends one JSON line to it (recorded
before the check, so a failing claim is recorded too): `make claims` reruns the lessons over
seeds and thread counts and reads these lines to report how much room each claim has.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

LOG_ENV = "COURSE_CLAIMS_LOG"


def margin(value: float, at_least: float | None = None, at_most: float | None = None,
           ratio: bool = False) -> float:
    """How far `value` is inside its bounds (negative: outside): a difference in the value's units,
    or for a `ratio`, the log10 of the factor (log10(3 / 2) for 3x against at least 2x)."""
    if math.isnan(value) or (ratio and value <= 0):
        return -math.inf
    if ratio:
        value, at_least, at_most = (None if x is None else math.log10(x) for x in (value, at_least, at_most))
    room = [value - at_least] if at_least is not None else []
    room += [at_most - value] if at_most is not None else []
    return min(room)


def _bounds(at_least: float | None, at_most: float | None, unit: str) -> str:
    parts = ([f"at least {at_least:g}{unit}"] if at_least is not None else []) + (
        [f"at most {at_most:g}{unit}"] if at_most is not None else [])
    return " and ".join(parts)


def _record(path: str, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as log:  # one short line per write: appends do not interleave
        log.write(json.dumps(entry) + "\n")


def claim(name: str, value: float, *, at_least: float | None = None, at_most: float | None = None,
          ratio: bool = False, unit: str = "") -> float:
    """Check that the measured `value` is >= `at_least` and/or <= `at_most`; return it."""
    if at_least is None and at_most is None:
        raise ValueError(f"claim {name!r} needs a threshold: at_least=..., at_most=... or both")
    value = float(value)
    room = margin(value, at_least, at_most, ratio)
    log = os.environ.get(LOG_ENV)
    if log:
        _record(log, {"lesson": Path.cwd().name, "claim": name, "value": value, "at_least": at_least,
                      "at_most": at_most, "margin": room, "holds": room >= 0,
                      "ratio": ratio,
                      "seed": os.environ.get("COURSE_SEED", "0"),
                      "threads": os.environ.get("OMP_NUM_THREADS"),
                      "profile": os.environ.get("COURSE_PROFILE")})
    if not room >= 0:
        raise AssertionError(f"claim failed: {name} = {value:.4g}{unit}, "
                             f"but the lesson claims {_bounds(at_least, at_most, unit)}")
    return value
