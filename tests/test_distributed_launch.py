"""utils.distributed under torchrun (gloo, CPU): N ranks train as one process does, two
simulated nodes agree, a killed worker is restarted and resumes from its checkpoint, and
the launcher reports failures with the worker's traceback.

Each launch costs a few seconds (process start-up), so the runs are shared through a
module fixture; every rendezvous uses a free port, so parallel test workers never collide.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from utils.distributed import checkpoint, launch

pytestmark = pytest.mark.slow
TRAIN = "utils.distributed.train"
# Small and fast; 3 epochs of 4 steps, so the data order crosses epoch boundaries.
SETTINGS = {"steps": 12, "num_samples": 64, "global_batch": 16, "seq_len": 16, "d_model": 32,
            "num_heads": 4, "d_ff": 64, "log_every": 4, "save_model": True}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, launch.Run]:
    """The same training on 1 and on 2 ranks (the 2-rank run also checks DDP against
    all_reduce by hand, and keeps checkpoints for the resume tests)."""
    root = tmp_path_factory.mktemp("runs")
    one = launch.run(TRAIN, {**SETTINGS, "check_grads": True}, nproc=1, device="cpu", threads=1,
                     out_dir=root / "one", echo=False, timeout=300)
    two = launch.run(TRAIN, {**SETTINGS, "check_grads": True, "ckpt_dir": root / "ckpt", "ckpt_every": 4},
                     nproc=2, device="cpu", threads=1, out_dir=root / "two", echo=False, timeout=300)
    return {"one": one, "two": two, "root": root}


def _model(run: launch.Run) -> dict[str, torch.Tensor]:
    return torch.load(run.out_dir / "model.pt")


def _assert_models_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float) -> None:
    """Equal up to rounding, except the keys' biases: their gradient is zero in exact arithmetic
    (softmax ignores a shift shared by all scores), so Adam normalises pure rounding noise into
    full-size steps, and runs that add in another order drift apart there."""
    assert a.keys() == b.keys()
    for key in a:
        if not key.endswith("k_proj.bias"):
            torch.testing.assert_close(a[key], b[key], atol=tol, rtol=10 * tol, msg=key)


def test_ddp_gradients_equal_gradients_averaged_with_all_reduce(runs) -> None:
    assert runs["two"].metrics["world_size"] == 2
    assert runs["two"].metrics["grad_check"]["max_abs_diff"] <= 1e-6


def test_two_ranks_equal_one_rank_on_the_same_global_batch(runs) -> None:
    one, two = runs["one"], runs["two"]
    g1, g2 = torch.load(one.out_dir / "grads.pt"), torch.load(two.out_dir / "grads.pt")
    torch.testing.assert_close(g2, g1, atol=1e-6, rtol=1e-5)  # the first step's gradients
    torch.testing.assert_close(torch.tensor(two.metrics["losses"]), torch.tensor(one.metrics["losses"]),
                               atol=1e-5, rtol=1e-5)
    _assert_models_close(_model(two), _model(one), tol=1e-4)
    assert len({r["digest"] for r in two.ranks}) == 1, "the two replicas are bitwise identical"


def test_two_simulated_nodes_train_and_agree_on_the_final_parameters(runs, tmp_path: Path) -> None:
    nodes = launch.run_nodes(TRAIN, SETTINGS, nnodes=2, nproc_per_node=1, out_dir=tmp_path,
                             echo=False, timeout=300)
    assert [r["rank"] for r in nodes.ranks] == [0, 1]
    assert {r["group_rank"] for r in nodes.ranks} == {"0", "1"}, "one rank on each node"
    assert nodes.ranks[0]["digest"] == nodes.ranks[1]["digest"]
    torch.testing.assert_close(torch.tensor(nodes.metrics["losses"]),
                               torch.tensor(runs["two"].metrics["losses"]), atol=1e-5, rtol=1e-5)


def test_a_killed_worker_is_restarted_and_resumes_to_the_same_model(runs, tmp_path: Path) -> None:
    faulty = launch.run(TRAIN, {**SETTINGS, "check_grads": True, "ckpt_dir": tmp_path / "ckpt",
                                "ckpt_every": 4, "fail_at_step": 6, "fail_rank": 1},
                        nproc=2, device="cpu", threads=1, max_restarts=1, out_dir=tmp_path / "out",
                        echo=False, timeout=300)
    assert "killing this worker (SIGKILL) at step 6" in faulty.output
    assert faulty.metrics["restart_count"] == 1 and faulty.metrics["resumed_from"] == 4
    reference = runs["two"].metrics
    assert faulty.metrics["losses"] == reference["losses"], "nothing lost, nothing changed"
    assert faulty.metrics["digest"] == reference["digest"], "bitwise the uninterrupted run's model"


def test_a_checkpoint_resumes_on_another_number_of_processes(runs, tmp_path: Path) -> None:
    saved = checkpoint.path_for(runs["root"] / "ckpt", 12)  # kept: the final one ...
    assert saved.is_file()
    # ... but resume from an earlier state: re-run steps 8..12 on one process, from step 8.
    step8 = runs["root"] / "ckpt" / "step_000008.pt"
    (tmp_path / "ckpt").mkdir()
    shutil.copy(step8, tmp_path / "ckpt" / step8.name)
    resumed = launch.run(TRAIN, {**SETTINGS, "ckpt_dir": tmp_path / "ckpt", "ckpt_every": 4},
                         nproc=1, device="cpu", threads=1, out_dir=tmp_path / "out", echo=False, timeout=300)
    assert "saved by 2 rank(s), resumed on 1" in resumed.output
    assert resumed.metrics["resumed_from"] == 8
    torch.testing.assert_close(torch.tensor(resumed.metrics["losses"]),
                               torch.tensor(runs["two"].metrics["losses"]), atol=1e-5, rtol=1e-5)
    _assert_models_close(_model(resumed), _model(runs["two"]), tol=1e-4)


def test_a_worker_that_crashes_at_start_shows_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(launch.LaunchError) as caught:
        launch.run(TRAIN, {"strategy": "bogus"}, nproc=1, device="cpu", out_dir=tmp_path, echo=False,
                   timeout=300)
    message = str(caught.value)
    assert "a worker failed" in message and "Traceback" in message
    assert "ValueError: --strategy must be one of" in message


def test_tensor_parallel_attention_on_two_processes_equals_the_single_device_layer(tmp_path: Path) -> None:
    run = launch.run("utils.distributed.verify", ["tensor-parallel"], nproc=2, device="cpu", threads=1,
                     out_dir=tmp_path, echo=False, timeout=300)
    assert run.metrics["world_size"] == 2 and run.metrics["heads_per_rank"] == 2
    for what, diff in run.metrics["max_abs_diff"].items():
        assert diff < 1e-12, what  # float64: equal up to rounding


def test_fsdp_with_gradient_accumulation_trains_as_ddp_does_in_half_the_memory(tmp_path: Path) -> None:
    run = launch.run(TRAIN, {**SETTINGS, "steps": 6, "accum_steps": 2, "check_grads": True,
                             "save_model": False, "strategy": "ddp,fsdp"},
                     nproc=2, device="cpu", threads=1, out_dir=tmp_path, echo=False, timeout=300)
    ddp, fsdp = run.metrics["strategies"]["ddp"], run.metrics["strategies"]["fsdp"]
    assert ddp["grad_check"]["max_abs_diff"] <= 1e-6 and fsdp["grad_check"]["max_abs_diff"] <= 1e-6
    torch.testing.assert_close(torch.tensor(fsdp["losses"]), torch.tensor(ddp["losses"]),
                               atol=1e-5, rtol=1e-5)
    for what in ("parameters", "gradients", "optimizer"):
        assert fsdp["memory"][what] * 2 == pytest.approx(ddp["memory"][what], rel=0.02), what
