"""utils.claims (a measured claim, checked and recorded), COURSE_SEED, and the claims report."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

import utils
from course_tools import claims as report
from utils.claims import claim, margin


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "claims.jsonl"
    monkeypatch.setenv("COURSE_CLAIMS_LOG", str(path))
    monkeypatch.setenv("COURSE_SEED", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.chdir(tmp_path)
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_claim_that_holds_returns_its_value() -> None:
    assert claim("accuracy (%)", 96.5, at_least=95) == 96.5
    assert claim("ratio", 0.5, at_least=0.4, at_most=0.62) == 0.5


def test_a_claim_below_its_floor_says_what_was_measured_and_claimed() -> None:
    expected = r"claim failed: GRU accuracy = 93.2 %, but the lesson claims at least 95 %"
    with pytest.raises(AssertionError, match=expected):
        claim("GRU accuracy", 93.2, at_least=95, unit=" %")


def test_a_claim_above_its_ceiling_fails() -> None:
    with pytest.raises(AssertionError, match="at most 62"):
        claim("CNN far accuracy (%)", 70.0, at_most=62)


def test_a_range_claim_fails_outside_either_bound() -> None:
    for value in (0.3, 0.7):
        with pytest.raises(AssertionError, match="at least 0.4 and at most 0.62"):
            claim("half / float32 memory", value, at_least=0.4, at_most=0.62)


def test_a_nan_never_holds() -> None:
    with pytest.raises(AssertionError):
        claim("loss", float("nan"), at_most=1.0)


def test_a_claim_needs_a_threshold() -> None:
    with pytest.raises(ValueError, match="needs a threshold"):
        claim("accuracy", 90.0)


def test_margin_is_the_room_to_the_nearest_bound() -> None:
    assert margin(97.0, at_least=95) == pytest.approx(2.0)
    assert margin(50.0, at_most=62) == pytest.approx(12.0)
    assert margin(0.45, at_least=0.4, at_most=0.62) == pytest.approx(0.05)
    assert margin(93.0, at_least=95) == pytest.approx(-2.0)


def test_the_margin_of_a_ratio_is_a_factor_in_log10() -> None:
    assert margin(6.0, at_least=2, ratio=True) == pytest.approx(math.log10(3))
    assert margin(1.0, at_least=2, ratio=True) == pytest.approx(-math.log10(2))
    assert margin(0.0, at_least=2, ratio=True) == -math.inf


def test_nothing_is_recorded_without_the_log_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("COURSE_CLAIMS_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    claim("accuracy (%)", 96.0, at_least=95)
    assert list(tmp_path.iterdir()) == []


def test_every_claim_is_recorded_with_its_run(log) -> None:
    claim("accuracy (%)", 96.0, at_least=95)
    (entry,) = _lines(log)
    assert entry["claim"] == "accuracy (%)" and entry["value"] == 96.0 and entry["at_least"] == 95
    assert entry["margin"] == pytest.approx(1.0) and entry["holds"]
    assert entry["lesson"] == log.parent.name and entry["seed"] == "3" and entry["threads"] == "2"


def test_a_failing_claim_is_recorded_before_it_raises(log) -> None:
    with pytest.raises(AssertionError):
        claim("speed-up (x)", 1.5, at_least=2)
    (entry,) = _lines(log)
    assert not entry["holds"] and entry["margin"] == pytest.approx(-0.5)


def test_course_seed_shifts_every_seed(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert utils.run_seed(0) == 0 and utils.run_seed(5) == 5
    monkeypatch.setenv("COURSE_SEED", "3")
    assert utils.run_seed(0) == 3 and utils.run_seed(5) == 8


def test_course_seed_must_be_an_integer(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_SEED", "three")
    with pytest.raises(ValueError, match="COURSE_SEED must be an integer"):
        utils.run_seed(0)


def test_course_seed_changes_the_runs_and_splits_of_the_experiments(monkeypatch) -> None:
    from utils.distributed.train import TrainConfig
    from utils.experiments import common, sentiment, text_to_text

    monkeypatch.delenv("COURSE_SEED", raising=False)
    def splits() -> tuple:
        return sentiment.SentimentSplit(), common.ReviewTask(), text_to_text.TextToTextSplit(), TrainConfig()

    default = splits()
    assert all(x.seed == 0 for x in default)  # unset: today's runs, cache keys included
    monkeypatch.setenv("COURSE_SEED", "2")
    assert splits() == tuple(replace(x, seed=2) for x in default)


def test_setup_seeds_with_the_shifted_seed(monkeypatch, capsys) -> None:
    import torch

    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setenv("COURSE_SEED", "4")
    utils.setup(seed=0)
    assert "seed: 4" in capsys.readouterr().out
    shifted = torch.randn(3)
    monkeypatch.delenv("COURSE_SEED")
    utils.setup(seed=4, verbose=False)
    assert torch.equal(shifted, torch.randn(3))


def _run(lesson: str, seed: int, threads: int, *values: tuple[str, float, float],
         ratio: bool = False) -> dict:
    claims = [{"claim": name, "value": value, "at_least": floor, "at_most": None, "ratio": ratio,
               "margin": margin(value, floor, ratio=ratio), "holds": value >= floor, "seed": str(seed)}
              for name, value, floor in values]
    return {"lesson": lesson, "seed": seed, "threads": threads, "seconds": 1.0, "claims": claims,
            "errors": []}


def test_report_verdicts_ok_thin_failed_and_missing() -> None:
    runs = [_run("01_x", 0, 1, ("wide", 99, 90), ("thin", 91, 90), ("fails", 95, 90), ("gone", 95, 90)),
            _run("01_x", 1, 1, ("wide", 98, 90), ("thin", 95, 90), ("fails", 89, 90))]
    rows = {r["claim"]: r for r in report.summarize(runs)}
    assert rows["wide"]["verdict"] == "ok" and rows["wide"]["margin"] == 8 and rows["wide"]["spread"] == 1
    assert rows["thin"]["verdict"] == "THIN"  # margin 1 < spread 4
    assert rows["fails"]["verdict"] == "FAILED" and rows["fails"]["failed_runs"] == ["seed 1, 1 thread(s)"]
    assert rows["gone"]["verdict"] == "MISSING" and rows["gone"]["runs"] == "1/2"


def test_spread_is_across_seeds_at_one_thread_count() -> None:
    # two threads shift the value by 10 in every seed: the worst value shows it, not the spread
    runs = [_run("02_x", s, t, ("accuracy", 80 + 10 * (t - 1) + s, 75)) for s in range(3) for t in (1, 2)]
    (row,) = report.summarize(runs)
    assert row["worst"] == 80 and row["margin"] == 5 and row["spread"] == 2 and row["range"] == 12
    assert row["verdict"] == "ok"


def test_a_ratio_is_judged_in_factors() -> None:
    runs = [_run("05_y", s, 1, ("speed-up (x)", v, 2), ratio=True) for s, v in enumerate((6.0, 9.0, 12.0))]
    (row,) = report.summarize(runs)
    assert 10 ** row["margin"] == pytest.approx(3.0) and 10 ** row["spread"] == pytest.approx(2.0)
    assert row["verdict"] == "ok"  # x3 above the threshold, values within x2 of each other
    assert "| 05 | speed-up (x) | ≥ 2 | 6 | ×3 | ×2 | ×2 | 3/3 | ok |" in report.report(runs, [])


def test_report_table_lists_threshold_worst_value_and_margin() -> None:
    runs = [_run("05_y", s, 1, ("loss gap", 3 + s, 2)) for s in range(3)]
    assert "| 05 | loss gap | ≥ 2 | 3 | 1 | 2 | 2 | 3/3 | THIN |" in report.report(runs, [])


def test_the_gpu_profile_runs_the_gpu_sizes_on_whatever_device_is_there(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_DEVICE", "cpu")  # a user's choice must not decide where the check runs
    env = report._kernel_env(0, 1, tmp_path / "cache", tmp_path / "log", tmp_path, profile="gpu")
    assert env["COURSE_PROFILE"] == "gpu" and "COURSE_DEVICE" not in env
    assert report._kernel_env(0, 1, tmp_path, tmp_path, tmp_path)["COURSE_PROFILE"] == "cpu"


def test_timings_never_overlap_and_pause_training_only_on_a_gpu(tmp_path, monkeypatch) -> None:
    from utils import bench

    for gpu in (False, True):
        monkeypatch.setattr(report, "_has_gpu", lambda gpu=gpu: gpu)
        env = report._kernel_env(0, 1, tmp_path, tmp_path, tmp_path)
        assert env[bench.TIMING_LOCK_ENV] == str(tmp_path / "timing.lock")
        assert (env.get(bench.TIMING_PAUSE_ENV) == "0") is not gpu  # on a CPU each notebook has its core


def test_a_gpu_profile_report_says_so_and_what_its_timings_mean() -> None:
    runs = [_run("08_z", s, 1, ("BLEU", 90 + s, 70)) for s in range(2)]
    text = report.report(runs, [], profile="gpu")
    assert text.startswith("# Claims check at the GPU profile") and report.GPU_PROFILE_NOTE in text
    assert "at the GPU profile" not in report.report(runs, [])


def test_a_notebook_is_stopped_by_its_own_limit_not_by_its_cells(tmp_path, monkeypatch,
                                                                  code_notebook) -> None:
    # two cells of 4 s each, under the cell limit: the notebook's limit is what stops them
    slow = code_notebook(tmp_path / "slow.ipynb", "import time; time.sleep(4)", "time.sleep(4)",
                     "from utils.claims import claim; claim('never reached', 1, at_least=0)")
    monkeypatch.setattr(report, "solution_path", lambda lesson: slow)
    run = report.run_notebook("99_slow", 0, 1, tmp_path / "cache", tmp_path,
                              report.Settings(cell_timeout_s=6, notebook_timeout_s=6))
    assert run["claims"] == []
    assert run["errors"] == [{"cell": None, "error": "killed after 6 s (--notebook-timeout)"}]
    run = report.run_notebook("99_slow", 0, 1, tmp_path / "cache", tmp_path,
                              report.Settings(cell_timeout_s=6, notebook_timeout_s=120))
    assert run["errors"] == [] and [c["claim"] for c in run["claims"]] == ["never reached"]


def test_a_cell_past_its_limit_is_named_with_the_limit(tmp_path, monkeypatch, code_notebook) -> None:
    slow = code_notebook(tmp_path / "slow.ipynb", "import time; time.sleep(30)")
    monkeypatch.setattr(report, "solution_path", lambda lesson: slow)
    run = report.run_notebook("99_slow", 0, 1, tmp_path / "cache", tmp_path,
                              report.Settings(cell_timeout_s=3, notebook_timeout_s=120))
    assert {"cell": None, "error": "CellTimeoutError: a cell ran past 3 s (--timeout)"} in run["errors"]
