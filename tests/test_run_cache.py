"""utils.run_cache: a trained model is saved once, then served back, keyed by name and config."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from utils import run_cache, training


@dataclass(frozen=True)
class TinyConfig:
    width: int = 4
    steps: int = 30


def test_cached_run_trains_once_then_loads(tmp_path, monkeypatch, regression) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    calls, (batches, mse) = [], regression

    def fit(model: nn.Module) -> dict:
        calls.append(1)
        training.train(model, batches, mse, steps=TinyConfig().steps, lr=0.05)
        return {"metric": 1.5}

    first, info1 = run_cache.cached_run("tiny", TinyConfig(), lambda: nn.Linear(4, 1), fit)
    second, info2 = run_cache.cached_run("tiny", TinyConfig(), lambda: nn.Linear(4, 1), fit)
    assert calls == [1] and info1 == {"metric": 1.5, "cached": False} and info2["cached"]
    assert torch.equal(first.weight, second.weight)
    run_cache.cached_run("tiny", TinyConfig(steps=31), lambda: nn.Linear(4, 1), fit)
    assert calls == [1, 1], "another configuration must not reuse the cached weights"


_TRAIN_IN_ANOTHER_PROCESS = """
import sys, time
from torch import nn
from utils import run_cache

def fit(model):
    with open(sys.argv[1], "a") as log:
        log.write("fit\\n")
    time.sleep(1.0)  # long enough for the other process to arrive while this one trains
    return {"trained_by": sys.argv[2]}

_, info = run_cache.cached_run("shared", {"width": 4}, lambda: nn.Linear(4, 1), fit)
print(info["trained_by"], info["cached"])
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="flock is POSIX-only; elsewhere unlocked")
def test_two_processes_needing_the_same_model_train_it_once(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COURSE_CACHE": str(tmp_path / "cache")}
    fits = tmp_path / "fits.log"
    procs = [subprocess.Popen([sys.executable, "-c", _TRAIN_IN_ANOTHER_PROCESS, str(fits), name],
                              env=env, stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert fits.read_text().splitlines() == ["fit"], "the second process must wait, not train again"
    trainer = {out[-2] for out in outputs}
    assert len(trainer) == 1  # both report the metrics of the one run
    assert sorted(out[-1] for out in outputs) == ["False", "True"]  # one trained, one loaded


def test_corrupt_cache_entry_is_retrained(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    key = run_cache.run_key("tiny", TinyConfig())
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"{key}.pt").write_bytes(b"torn write")
    _, info = run_cache.cached_run("tiny", TinyConfig(), lambda: nn.Linear(4, 1), lambda m: {})
    assert info == {"cached": False} and "unusable" in capsys.readouterr().out
