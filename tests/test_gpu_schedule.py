"""course_tools.gpu_schedule: how `make gpu-check` plans notebooks into a short GPU session."""

from __future__ import annotations

import threading
import time

from course_tools import gpu_schedule as gs
from course_tools.gpu_schedule import Estimate, Limits


def _row(lesson: str, seconds: float, reserved: float, passed: bool = True,
         version: str = "solution", condition: str = "gpu") -> dict:
    return {"lesson": lesson, "version": version, "condition": condition, "seconds": seconds,
            "reserved_gib": reserved, "passed": passed}


def test_a_passing_row_gives_its_time_and_its_memory_with_room() -> None:
    rows = [_row("09_gpt", 160, 14.4), _row("05_sa", 30, 2.7), _row("00_tour", 9, 0.0)]
    assert gs.estimate("05_sa", "solution", "gpu", rows) == Estimate(30, 1.25 * 2.7 + 1, measured=True)
    assert gs.estimate("09_gpt", "solution", "gpu", rows).gib == gs.CAP_GIB  # 19 capped: sized for a T4
    assert gs.estimate("00_tour", "solution", "gpu", rows).gib == gs.FLOOR_GIB  # torchrun's unseen memory


def test_without_its_own_pass_a_notebook_goes_by_its_lesson_then_by_its_failure() -> None:
    rows = [_row("05_sa", 30, 2.7, condition="t4"), _row("05_sa", 36, 0.0, passed=False),
            _row("07_enc", 24, 0.0, passed=False)]
    assert gs.estimate("05_sa", "solution", "gpu", rows) == gs.estimate("05_sa", "solution", "t4", rows)
    failed = gs.estimate("07_enc", "solution", "gpu", rows)
    assert failed == Estimate(2 * 24 + 60, gs.FLOOR_GIB, measured=False)  # it stopped early
    assert gs.estimate("13_lm", "solution", "gpu", rows) == gs.UNKNOWN


def test_round_by_round_the_longest_start_first_and_ties_keep_their_order() -> None:
    est = {"a": Estimate(10, 4, True), "b": Estimate(50, 4, True), "c": Estimate(10, 4, True),
           "d": Estimate(99, 4, True)}
    assert gs.in_rounds(["a", "b", "c"], est) == ["b", "a", "c"]
    assert gs.in_rounds(["a", "b", "c", "d"], est, lambda job: job == "d") == ["b", "a", "c", "d"]


def test_a_job_starts_when_a_worker_and_its_memory_are_free() -> None:
    est = {"big": Estimate(100, 16, True), "small": Estimate(10, 4, True), "small2": Estimate(10, 4, True)}
    pending = ["big", "small", "small2"]
    start, give_up = gs.to_start(pending, {"x": Estimate(50, 10, True)}, 0.0, est, Limits(3, 16.0))
    assert start == ["small"] and give_up == [] and pending == ["big", "small2"]  # big waits, small passes
    start, _ = gs.to_start(pending, {}, 0.0, est, Limits(3, 12.0))
    assert start == ["big"]  # alone, a job starts whatever it plans: it could not start later either


def test_a_deadline_gives_up_what_would_end_past_it() -> None:
    est = {"long": Estimate(100, 4, True), "short": Estimate(10, 4, True)}
    pending = ["long", "short"]
    start, give_up = gs.to_start(pending, {}, 50.0, est, Limits(4, 80.0, deadline_s=100.0))
    assert start == ["short"] and give_up == ["long"] and pending == []
    assert 50 + gs.MARGIN * 10 <= 100 < 50 + gs.MARGIN * 100


def test_the_simulation_plays_the_schedule() -> None:
    est = {name: Estimate(10, 8, True) for name in "abcd"}
    assert gs.simulate(list("abcd"), est, Limits(4, 80.0)) == (10, [])
    assert gs.simulate(list("abcd"), est, Limits(2, 80.0)) == (20, [])
    assert gs.simulate(list("abcd"), est, Limits(4, 16.0)) == (20, [])  # memory: two at a time
    assert gs.simulate(list("abcd"), est, Limits(1, 80.0, deadline_s=25.0)) == (20, ["c", "d"])


def test_a_run_never_holds_more_than_its_memory_and_answers_in_order() -> None:
    est = {i: Estimate(1 + i % 3, 6 if i % 2 else 3, True) for i in range(10)}
    lock, running, most = threading.Lock(), {}, []

    def run_one(i: int) -> str:
        with lock:
            running[i] = est[i].gib
            most.append((len(running), sum(running.values())))
        time.sleep(0.02)
        with lock:
            del running[i]
        return f"ran {i}"

    seen = []
    results = gs.run(list(range(10)), est, Limits(3, 12.0), run_one, lambda i: f"skipped {i}", seen.append)
    assert results == [f"ran {i}" for i in range(10)] and sorted(seen) == sorted(results)
    assert max(n for n, _ in most) <= 3 and max(gib for _, gib in most) <= 12.0
    assert max(n for n, _ in most) >= 2  # and it did run several at once


def test_a_run_past_its_deadline_reports_what_it_left_out() -> None:
    est = {"a": Estimate(1000, 4, True), "b": Estimate(0.001, 4, True)}
    results = gs.run(["a", "b"], est, Limits(2, 80.0, deadline_s=60.0), lambda j: f"ran {j}",
                     lambda j: f"skipped {j}")
    assert results == ["skipped a", "ran b"]
