"""utils.distributed in one process: collectives, simulated ranks, tensor-parallel attention,
checkpoints, the data split, the training script as a group of one, and the launcher's
refusals. The multi-process behaviour (torchrun) is in test_distributed_launch.py."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from utils.distributed import checkpoint, collectives, launch, train
from utils.distributed.env import DistEnv, free_port, port_in_use, single_process_group
from utils.distributed.tensor_parallel import TensorParallelAttention, head_slice
from utils.models.attention import MultiHeadAttention

# ---------------------------------------------------------------- collectives


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_ring_all_reduce_leaves_every_rank_with_the_sum(world_size: int) -> None:
    torch.manual_seed(world_size)
    tensors = [torch.randn(3, 7, dtype=torch.float64) for _ in range(world_size)]  # 21: uneven chunks
    for out in collectives.ring_all_reduce(tensors):
        torch.testing.assert_close(out, sum(tensors))


def test_ring_reduce_scatter_alone_completes_one_chunk_per_rank() -> None:
    tensors = [torch.full((6,), float(r + 1)) for r in range(3)]  # sum = 6 everywhere
    partial = collectives.ring_all_reduce(tensors, all_gather=False)
    for rank, out in enumerate(partial):
        complete = (out == 6).nonzero().flatten().tolist()
        chunk = (rank + 1) % 3
        assert complete == [2 * chunk, 2 * chunk + 1], (rank, out)


def test_ring_traffic_per_rank_stays_near_twice_the_tensor() -> None:
    for n in (2, 4, 64):
        traffic = collectives.ring_traffic(1000, n)
        assert traffic["ring, per rank"] < 2000
        # both counted as values sent: the naive rank 0 sends the sum back to the N-1 others
        assert traffic["naive, rank 0"] == (n - 1) * 1000
        assert traffic["naive, rank 0"] / traffic["ring, per rank"] == pytest.approx(n / 2)


def _replicas_and_batch(world_size: int):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    return model, [copy.deepcopy(model) for _ in range(world_size)], x, y


@pytest.mark.parametrize("average", [collectives.average_gradients, collectives.average_gradients_flat])
@pytest.mark.parametrize("world_size", [2, 4])
def test_averaged_gradients_on_shards_equal_the_full_batch_gradient(average, world_size: int) -> None:
    model, replicas, x, y = _replicas_and_batch(world_size)
    nn.functional.mse_loss(model(x), y).backward()

    def rank_step(rank: int) -> list[torch.Tensor]:
        xs, ys = x.chunk(world_size)[rank], y.chunk(world_size)[rank]  # this rank's B/N samples
        nn.functional.mse_loss(replicas[rank](xs), ys).backward()
        average(replicas[rank])
        return [p.grad.clone() for p in replicas[rank].parameters()]

    for grads in collectives.simulate(rank_step, world_size):
        for got, p in zip(grads, model.parameters(), strict=True):
            torch.testing.assert_close(got, p.grad, atol=1e-6, rtol=1e-5)


def test_average_gradients_equals_ddp_in_a_group_of_one() -> None:
    model, (plain,), x, y = _replicas_and_batch(1)
    with single_process_group():
        ddp = nn.parallel.DistributedDataParallel(model)
        nn.functional.mse_loss(ddp(x), y).backward()
        nn.functional.mse_loss(plain(x), y).backward()
        collectives.average_gradients(plain)
    for a, b in zip(plain.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    assert not dist.is_initialized()


def test_simulate_reports_a_collective_only_some_ranks_call() -> None:
    def rank0_only(rank: int) -> None:
        if dist.get_rank() == 0:
            dist.all_reduce(torch.ones(2))

    with pytest.raises(collectives.CollectiveMismatch, match="deadlock"):
        collectives.simulate(rank0_only, 2)


def test_simulate_reraises_a_rank_error_and_restores_torch_distributed() -> None:
    real = dist.all_reduce

    def failing(rank: int) -> None:
        if rank == 1:
            raise KeyError("rank 1 broke")
        dist.barrier()

    with pytest.raises(KeyError, match="rank 1 broke"):
        collectives.simulate(failing, 3)
    assert dist.all_reduce is real


def test_simulated_collectives_match_their_definitions() -> None:
    def body(rank: int):
        s = torch.tensor([float(rank + 1)])
        dist.all_reduce(s)
        m = torch.tensor([float(rank)])
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        b = torch.tensor([float(rank)])
        dist.broadcast(b, src=2)
        gathered = [torch.zeros(1) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, torch.tensor([float(rank * 10)]))
        return s.item(), m.item(), b.item(), [g.item() for g in gathered]

    for result in collectives.simulate(body, 3):
        assert result == (6.0, 2.0, 2.0, [0.0, 10.0, 20.0])


# ---------------------------------------------------------------- tensor parallelism


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_tensor_parallel_attention_equals_the_single_device_layer(world_size: int) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    x_full = x.clone().requires_grad_()
    expected, _ = mha(x_full, x_full, x_full, is_causal=True, need_weights=False)
    expected.pow(2).sum().backward()
    shards = [TensorParallelAttention.from_full(mha, r, world_size) for r in range(world_size)]

    def rank_forward(rank: int):
        xr = x.clone().requires_grad_()
        out = shards[rank](xr, is_causal=True)
        out.pow(2).sum().backward()
        return out.detach(), xr.grad, shards[rank].q_proj.weight.grad, shards[rank].out_proj.weight.grad

    for rank, (out, x_grad, q_grad, o_grad) in enumerate(collectives.simulate(rank_forward, world_size)):
        cols = head_slice(4, 4, rank, world_size)
        torch.testing.assert_close(out, expected.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(x_grad, x_full.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(q_grad, mha.q_proj.weight.grad[cols], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o_grad, mha.out_proj.weight.grad[:, cols], atol=1e-5, rtol=1e-4)


def test_heads_that_do_not_split_evenly_are_refused() -> None:
    with pytest.raises(ValueError, match="divisible by the world size"):
        head_slice(num_heads=6, head_dim=4, rank=0, world_size=4)


# ---------------------------------------------------------------- checkpoints


def test_checkpoints_keep_the_newest_and_latest_returns_it(tmp_path: Path) -> None:
    for step in (5, 10, 15):
        checkpoint.save(tmp_path, {"step": step}, step, keep=2)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step_000010.pt", "step_000015.pt"]
    path, state = checkpoint.latest(tmp_path)
    assert path.name == "step_000015.pt" and state["step"] == 15


def test_an_error_while_saving_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    checkpoint.save(tmp_path, {"step": 1, "w": torch.ones(3)}, 1)

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a file")  # atomic_save hands torch.save an open file
        raise KeyboardInterrupt  # the process stops in the middle of writing

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path, {"step": 2}, 1)  # the same name: overwriting must not tear it
    monkeypatch.undo()
    path, state = checkpoint.latest(tmp_path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000001.pt"]


def test_a_process_killed_while_saving_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, {"step": 1}, 1)
    script = textwrap.dedent("""
        import os, signal, sys, torch
        from pathlib import Path
        from utils.distributed import checkpoint
        def dying_save(obj, f, *args, **kwargs):
            f.write(b"PK\\x03\\x04 half a file"); f.flush()  # an open file, from atomic_save
            os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: no cleanup runs
        torch.save = dying_save
        checkpoint.save(sys.argv[1], {"step": 2}, 2)
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, timeout=120)
    assert result.returncode == -9
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step_000001.pt"]
    assert checkpoint.latest(tmp_path)[1]["step"] == 1
    assert list(tmp_path.glob(".step_*.tmp")), "the torn temporary file is left aside, never renamed"
    checkpoint.save(tmp_path, {"step": 3}, 3)
    assert not list(tmp_path.glob(".step_*.tmp")), "the next save clears it"


def test_resume_with_another_world_size_is_allowed_when_the_batch_splits() -> None:
    config = asdict(train.TrainConfig(global_batch=16))
    saved = {"step": 10, "world_size": 2, "config": config}
    assert "saved by 2 rank(s), resumed on 4" in checkpoint.check_resumable(saved, config, world_size=4)
    with pytest.raises(checkpoint.ResumeError, match="3 ranks x 1 accumulation steps cannot split it"):
        checkpoint.check_resumable(saved, config, world_size=3)


def test_resume_with_another_model_shape_is_refused() -> None:
    saved = {"step": 10, "world_size": 2, "config": asdict(train.TrainConfig(d_model=64))}
    with pytest.raises(checkpoint.ResumeError, match="d_model: 64 in the checkpoint, 32 now"):
        checkpoint.check_resumable(saved, asdict(train.TrainConfig(d_model=32)), world_size=2)


# ---------------------------------------------------------------- the training script's parts


def _env(rank: int, world_size: int) -> DistEnv:
    return DistEnv(rank, rank, world_size, "gloo", torch.device("cpu"), launched=True)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_batches_together_are_the_single_process_batch(world_size: int) -> None:
    cfg = train.TrainConfig(num_samples=64, global_batch=16, seq_len=8)
    dataset, _ = train.dataset_for(cfg)
    steps = 10  # 2.5 epochs: crosses epoch boundaries, where set_epoch reshuffles

    def first(world: int, rank: int, start: int = 0) -> list[torch.Tensor]:
        batches = train.local_batches(dataset, cfg, _env(rank, world), start)
        return [next(batches) for _ in range(steps - start)]

    single = first(1, 0)
    ranks = [first(world_size, r) for r in range(world_size)]
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731 - the order inside a batch is irrelevant
    for step in range(steps):
        together = torch.cat([ranks[r][step] for r in range(world_size)])
        assert key(together) == key(single[step]), step
    assert key(single[0]) != key(single[4]), "epoch 1 is shuffled differently from epoch 0"
    resumed = first(world_size, 1, start=7)  # resuming mid-epoch reads the same batches
    assert all(torch.equal(a, b) for a, b in zip(resumed, ranks[1][7:], strict=True))


def test_config_round_trips_through_the_command_line() -> None:
    settings = {"steps": 7, "global_batch": 8, "save_model": True, "check_grads": False, "lr": 0.01}
    cfg = train.parse_config(train.to_argv(settings))
    assert (cfg.steps, cfg.global_batch, cfg.save_model, cfg.check_grads, cfg.lr) == (7, 8, True, False, 0.01)
    with pytest.raises(ValueError, match="unknown training setting"):
        train.to_argv({"stpes": 3})


def test_a_batch_that_does_not_split_is_refused_with_advice() -> None:
    with pytest.raises(ValueError, match="multiple of 6"):
        train.TrainConfig(global_batch=16, accum_steps=2).validate(world_size=3)


def test_the_scripts_micro_batches_add_up_to_the_whole_batchs_gradient() -> None:
    cfg = train.TrainConfig(num_samples=16, global_batch=8, seq_len=8, d_model=16, num_heads=2, d_ff=32,
                            num_layers=1)
    dataset, vocab_size = train.dataset_for(cfg)
    torch.manual_seed(0)
    model = train.build_model(cfg, vocab_size)
    whole = copy.deepcopy(model)
    batch = dataset.tensors[0][:8]  # (B, T+1)
    no_scaling = torch.amp.GradScaler("cpu", enabled=False)
    loss = train.backward_micro_batches(model, batch.chunk(4), None, no_scaling)  # 4 micro-batches of 2
    expected = train.next_token_loss(whole, batch)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    for mine, reference in zip(model.parameters(), whole.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, reference.grad, atol=1e-6, rtol=1e-5)


def test_training_as_a_group_of_one_lowers_the_loss_and_writes_metrics(tmp_path: Path) -> None:
    run = launch.run("utils.distributed.train", {"steps": 12, "strategy": "manual", "log_every": 100,
                                                 "check_grads": True}, in_process=True, out_dir=tmp_path)
    losses = run.metrics["losses"]
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3
    assert run.metrics["world_size"] == 1 and run.metrics["grad_check"]["max_abs_diff"] == 0.0
    assert run.ranks[0]["digest"] == run.metrics["digest"]
    assert not dist.is_initialized(), "the group of one is taken down afterwards"


# ---------------------------------------------------------------- the launcher's refusals


def test_the_gradient_check_compares_true_gradients_under_float16_scaling(tmp_path: Path) -> None:
    # The scaler multiplies the loss by 2**16 before backward; the replica's gradients are not
    # scaled, so comparing without dividing by the scale would report a difference of thousands.
    run = launch.run("utils.distributed.train", {"steps": 2, "strategy": "manual", "amp": "fp16",
                                                 "log_every": 100, "check_grads": True},
                     in_process=True, out_dir=tmp_path)
    check = run.metrics["grad_check"]
    assert check["max_abs_diff"] < 1e-3 * max(1.0, check["grad_norm"]), check


def test_asking_for_more_gpus_than_exist_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(launch, "_gpu_count", lambda: 1)
    with pytest.raises(launch.LaunchError, match="asked for 2 processes on CUDA.*has 1 GPU"):
        launch.plan(nproc=2, device="cuda")
    monkeypatch.setattr(launch, "_gpu_count", lambda: 0)
    with pytest.raises(launch.LaunchError, match="no CUDA GPU"):
        launch.plan(device="cuda")


def test_the_plan_is_two_gloo_processes_on_a_cpu(monkeypatch) -> None:
    monkeypatch.setattr(launch, "_gpu_count", lambda: 0)
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    p = launch.plan()
    assert (p.nproc, p.device, p.backend) == (2, "cpu", "gloo")


def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(launch.LaunchError, match=f"port {port} on 127.0.0.1 is already in use"):
            launch.run("utils.distributed.train", nproc=1, device="cpu", port=port)
    assert not port_in_use(free_port())


def test_the_command_is_plain_torchrun() -> None:
    cmd = launch.command("utils.distributed.train", {"steps": 5}, nproc=2)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert cmd[-4:] == ["-m", "utils.distributed.train", "--steps", "5"]
    nodes = launch.command("m", nproc=1, nnodes=2, node_rank=1, endpoint="10.0.0.1:29400")
    assert "--rdzv-backend=c10d" in nodes and "--rdzv-endpoint=10.0.0.1:29400" in nodes


def test_the_benchmark_table_computes_speed_up_and_efficiency() -> None:
    from utils.bench.ddp import efficiency_table

    table = efficiency_table([{"setup": "1", "ranks": 1, "samples_per_second": 100.0, "ms_per_step": 10.0},
                              {"setup": "2", "ranks": 2, "samples_per_second": 150.0, "ms_per_step": 13.3}])
    assert table["speed-up"].tolist() == [1.0, 1.5] and table["efficiency"].tolist() == [1.0, 0.75]
