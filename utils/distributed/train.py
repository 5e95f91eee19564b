"""The course's distributed training script: a GPT trained on N processes (lessons 11 and 12).

Run it from a terminal (any number of processes, CPU or GPUs)::

    torchrun --standalone --nproc-per-node=2 -m utils.distributed.train --steps 40 --out runs/demo

or from a notebook through `utils.distributed.launch.run`. What one run does, as `train`
reads (each step a function of this module, its docstring naming the lesson section):

1. join the group torchrun describes (`env.init`: NCCL on GPUs, gloo on CPUs);
2. `set_up`: build the same model on every rank (same seed) and `wrap` it:
   `DistributedDataParallel` (`--strategy ddp`), FSDP's `fully_shard` (`fsdp`), a plain model
   whose gradients `synchronise_gradients` averages with `all_reduce` by hand (`manual`), or
   nothing (`none`, one process);
3. `train_step`, every step: this rank reads its share of the *global* batch from a
   `DistributedSampler` (`local_batches`: seeded, `set_epoch` every epoch), in `--accum-steps`
   micro-batches (`backward_micro_batches`); gradients are synchronised once, on the last
   micro-batch (`sync_context`: `no_sync` before it); then `optimizer_step`;
4. mixed precision where the device supports it (`amp_dtype`: bf16, or fp16 with a gradient
   scaler);
5. every `--ckpt-every` steps rank 0 writes an atomic checkpoint (`save_checkpoint`); at
   start-up `resume` continues from the newest one, also after `torchrun --max-restarts`
   restarted a failed group (`inject_fault` makes one fail, for lesson 12);
6. `write_outputs`: rank 0 writes the metrics (`metrics.json`: losses, throughput, memory) to
   `--out`.

The global batch at step s depends only on the seed and s, never on the world size, so N
ranks with B/N sequences each compute the same gradients as one process with B, and a
checkpoint resumes on another number of processes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from utils import runtime
from utils.distributed import checkpoint, collectives
from utils.distributed.env import DistEnv, init, shutdown
from utils.training import atomic_save

STRATEGIES = ("ddp", "fsdp", "manual", "none")


@dataclass
class TrainConfig:
    """Everything a run depends on; every field is also a command-line flag (`--global-batch 16`)."""

    # the model: the course's GPT (lesson 09)
    model: str = "gpt"
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    # the data: "markov" (random walks on a fixed graph) or "text" (utils.data, packed)
    data: str = "markov"
    vocab_size: int = 32
    seq_len: int = 32
    num_samples: int = 1024
    # optimisation
    steps: int = 40
    global_batch: int = 16  # sequences per optimizer step, over all ranks and micro-batches
    accum_steps: int = 1  # micro-batches per step on each rank (gradient accumulation)
    lr: float = 3e-3
    warmup_steps: int = 5
    clip_norm: float = 1.0  # 0 = no clipping
    seed: int = field(default_factory=runtime.run_seed)  # 0, shifted by COURSE_SEED
    # parallelism and precision
    strategy: str = "ddp"
    amp: str = "auto"  # "auto": bf16 (or fp16) on GPUs that support it, off on the CPU; "off", "bf16", "fp16"
    device: str = "auto"  # "auto", "cpu" or "cuda"
    # checkpoints
    ckpt_dir: str = ""
    ckpt_every: int = 0  # 0 = no periodic checkpoints
    keep: int = 2
    # outputs
    out: str = ""  # folder for metrics.json (rank 0), rank{r}.json, model.pt, grads.pt
    save_model: bool = False
    check_grads: bool = False  # at the first step: DDP's gradients vs all_reduce by hand; save them
    log_every: int = 10
    timing_warmup: int = 2  # steps left out of the throughput (start-up, allocator warm-up)
    # fault injection (tests and lesson 12): rank `fail_rank` kills itself at `fail_at_step`,
    # on the first attempt only, as a crashed machine would
    fail_at_step: int = -1
    fail_rank: int = 1

    def validate(self, world_size: int) -> None:
        """Raise ValueError with advice if these settings cannot run on `world_size` ranks."""
        if self.strategy not in STRATEGIES:  # (main splits "ddp,fsdp" into one run each)
            raise ValueError(f"--strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.strategy == "none" and world_size > 1:
            raise ValueError(f"--strategy none trains one process alone, but the world size is {world_size}: "
                             "use ddp, fsdp or manual")
        if self.global_batch % (world_size * self.accum_steps) != 0:
            raise ValueError(
                f"the global batch ({self.global_batch}) must split evenly into {world_size} ranks x "
                f"{self.accum_steps} micro-batches; choose --global-batch as a multiple of "
                f"{world_size * self.accum_steps}")
        if self.num_samples % self.global_batch != 0:
            raise ValueError(f"--num-samples ({self.num_samples}) must be a multiple of --global-batch "
                             f"({self.global_batch}) so that every epoch has whole steps")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"--amp must be auto, off, bf16 or fp16, got {self.amp!r}")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """TrainConfig from flags named after its fields (`--global-batch 16`, `--save-model`)."""
    parser = argparse.ArgumentParser(prog="utils.distributed.train", description=__doc__.splitlines()[0])
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, dest=f.name, type=type(value), default=value,
                                help=f"(default: {value!r})")
    return TrainConfig(**vars(parser.parse_args(argv)))


def to_argv(settings: dict[str, Any]) -> list[str]:
    """{"global_batch": 16, "save_model": True} -> ["--global-batch", "16", "--save-model"]."""
    known = {f.name for f in fields(TrainConfig)}
    argv: list[str] = []
    for key, value in settings.items():
        if key not in known:
            raise ValueError(f"unknown training setting {key!r}; the settings are {sorted(known)}")
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            argv += [flag, str(value)]
    return argv


# --------------------------------------------------------------------------------------
# Data: the global batch of step s depends on (seed, s) only
# --------------------------------------------------------------------------------------


def markov_task(num_samples: int, seq_len: int, vocab_size: int, seed: int) -> Tensor:
    """(N, seq_len + 1) random walks on a fixed graph where every token has two successors.

    A model that learns the graph predicts the next token with probability 1/2, so the loss
    falls from log V towards log 2 (about 0.69) within a few dozen steps. Ids 0 and 1
    (padding, start) are never drawn.
    """
    g = torch.Generator().manual_seed(seed)
    successors = torch.randint(2, vocab_size, (vocab_size, 2), generator=g)  # (V, 2): the graph
    walk = torch.empty(num_samples, seq_len + 1, dtype=torch.long)  # (N, T + 1)
    walk[:, 0] = torch.randint(2, vocab_size, (num_samples,), generator=g)
    coins = torch.randint(0, 2, (num_samples, seq_len), generator=g)  # (N, T): which successor
    for t in range(seq_len):
        walk[:, t + 1] = successors[walk[:, t], coins[:, t]]
    return walk


def text_task(cfg: TrainConfig) -> tuple[Tensor, int]:
    """(N, seq_len + 1) sequences packed from the course's text-to-text data, and the vocabulary size."""
    from utils.distributed import text_data

    return text_data.packed_sequences(cfg.num_samples, cfg.seq_len, cfg.seed)


def dataset_for(cfg: TrainConfig) -> tuple[TensorDataset, int]:
    """The training sequences (the same on every rank) and the vocabulary size."""
    if cfg.data == "markov":
        walks = markov_task(cfg.num_samples, cfg.seq_len, cfg.vocab_size, cfg.seed)
        return TensorDataset(walks), cfg.vocab_size
    if cfg.data == "text":
        sequences, vocab_size = text_task(cfg)
        return TensorDataset(sequences), vocab_size
    raise ValueError(f"--data must be 'markov' or 'text', got {cfg.data!r}")


def local_batches(dataset: TensorDataset, cfg: TrainConfig, env: DistEnv,
                  start_step: int) -> Iterator[Tensor]:
    """This rank's (B/N, T+1) share of each step's global batch, from step `start_step` on.

    `DistributedSampler` shuffles with seed + epoch (hence `set_epoch`), the same permutation
    on every rank, and gives rank r the positions r, r+N, r+2N, ...; with batches of B/N the
    N ranks' batches of step s together are exactly a single process's batch s of size B.
    """
    local = cfg.global_batch // env.world_size
    per_epoch = len(dataset) // cfg.global_batch
    sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=local, sampler=sampler, drop_last=True)
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)  # a new order every epoch; forget it and every epoch repeats the first
        for (batch,) in itertools.islice(loader, skip, per_epoch):
            yield batch
        epoch, skip = epoch + 1, 0


# --------------------------------------------------------------------------------------
# The model and the strategy: who synchronises the gradients (lesson 11, sections 4, 6 and 8)
# --------------------------------------------------------------------------------------


def build_model(cfg: TrainConfig, vocab_size: int) -> nn.Module:
    """The course's GPT (lesson 09), the same on every rank (seeded before the call)."""
    if cfg.model != "gpt":
        raise ValueError(f"--model must be 'gpt', got {cfg.model!r}")
    from utils.models.gpt import GPT, GPTConfig

    return GPT(GPTConfig(vocab_size=vocab_size, max_len=cfg.seq_len, d_model=cfg.d_model,
                         num_heads=cfg.num_heads, num_layers=cfg.num_layers, d_ff=cfg.d_ff,
                         dropout=cfg.dropout))


def wrap(model: nn.Module, cfg: TrainConfig, env: DistEnv) -> nn.Module:
    """DDP (lesson 11, section 6), FSDP (section 8) or nothing around `model` (already on env.device)."""
    if cfg.strategy == "ddp":
        # gradient_as_bucket_view: gradients live in DDP's communication buckets instead of in
        # a second copy, which saves one model's worth of memory.
        ids = [env.device.index] if env.device.type == "cuda" else None
        return DDP(model, device_ids=ids, gradient_as_bucket_view=True)
    if cfg.strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        # The mesh names the device: left out, FSDP picks CUDA whenever a GPU exists, even for
        # a run on the CPU.
        mesh = init_device_mesh(env.device.type, (env.world_size,))
        sharded = [*model.blocks, model]  # each block gathers its weights just before it runs;
        for module in sharded:            # the model last: the rest (embeddings, norm, output)
            fully_shard(module, mesh=mesh)
            if env.device.type == "cpu":
                # Up to torch 2.8 at least, gloo's reduce-scatter took AVG for SUM: on 2 ranks
                # every gradient came out doubled (measured with 2.8.0; invisible to Adam, but
                # not to clipping). A SUM, then FSDP's own division, is right on every version.
                module.set_force_sum_reduction_for_comms(True)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP's wrapper (FSDP and the other strategies have none)."""
    return model.module if isinstance(model, DDP) else model


def sync_context(model: nn.Module, last: bool) -> Any:
    """Skip the gradient all-reduce on all micro-batches but the last (DDP's `no_sync`; lesson 12,
    section 3)."""
    if isinstance(model, DDP):
        return nullcontext() if last else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: a switch rather than a context
        model.set_requires_gradient_sync(last)
    return nullcontext()


def synchronise_gradients(model: nn.Module, cfg: TrainConfig) -> None:
    """After the backward passes: `--strategy manual` averages the gradients with one `all_reduce`
    per parameter (lesson 11, section 4); DDP and FSDP did it already, during the last backward."""
    if cfg.strategy == "manual":
        collectives.average_gradients(model)


# --------------------------------------------------------------------------------------
# One step: micro-batches, mixed precision, the gradient check, the optimizer
# --------------------------------------------------------------------------------------


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU supports it, else fp16 on GPUs; off on the CPU."""
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return runtime.half_dtype(device)  # bf16, or fp16 on a T4 (and under COURSE_NO_BF16)
    return None  # CPU autocast is slow on most CPUs: float32 there


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Matrix products in `dtype` (lesson 12, section 2); None: float32, autocast off."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def next_token_loss(model: nn.Module, batch: Tensor) -> Tensor:
    """The GPT's mean cross-entropy on (B, T+1) sequences: tokens 0..T-1 predict tokens 1..T."""
    return model(batch[:, :-1], batch[:, 1:])


def accumulate_gradients(model: nn.Module, micro_batches: Sequence[Any], loss_fn: Any) -> float:
    """Forward and backward every micro-batch, gradients adding up to the whole batch's mean;
    DDP synchronises on the last one only (`sync_context`). Returns the mean loss.

    Lesson 12, section 3 (the exercise's reference); the script runs `backward_micro_batches`,
    the same loop with mixed precision."""
    k, total = len(micro_batches), 0.0
    for i, batch in enumerate(micro_batches):
        with sync_context(model, last=i == k - 1):
            loss = loss_fn(model, batch) / k  # the mean over micro-batches, not their sum
            loss.backward()
        total += loss.item()
    return total


def backward_micro_batches(model: nn.Module, micro_batches: Sequence[Tensor], dtype: torch.dtype | None,
                           scaler: torch.amp.GradScaler) -> Tensor:
    """`accumulate_gradients` in mixed precision (lesson 12, sections 2 and 3): each micro-batch's
    forward under autocast, its backward through the gradient scaler; gradients synchronised on
    the last micro-batch only. Returns this rank's mean loss, left on the device (no wait for it)."""
    k = len(micro_batches)
    total = torch.zeros((), device=micro_batches[0].device)
    for i, batch in enumerate(micro_batches):
        with sync_context(model, last=i == k - 1):
            with autocast(batch.device, dtype):
                loss = next_token_loss(model, batch) / k  # mean over the local batch
            scaler.scale(loss).backward()
        total += loss.detach()
    return total


def _flat_grads(model: nn.Module) -> Tensor:
    grads = [p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad for p in model.parameters()]
    return torch.cat([g.detach().float().flatten().cpu() for g in grads])


def check_gradients(model: nn.Module, replica: nn.Module, micro_batches: Sequence[Tensor],
                    dtype: torch.dtype | None, scale: float = 1.0) -> dict[str, Any]:
    """DDP's (or FSDP's) averaged gradients vs a plain replica's, averaged by `average_gradients`
    (lesson 11, section 6: N ranks equal one process). The largest difference over all ranks.
    `scale` is the float16 gradient scaler's factor, still in the model's gradients here (the
    replica's loss is not scaled), so they are divided by it before the comparison."""
    for batch in micro_batches:
        with autocast(batch.device, dtype):
            loss = next_token_loss(replica, batch) / len(micro_batches)
        loss.backward()
    collectives.average_gradients(replica)
    ours, theirs = _flat_grads(model) / scale, _flat_grads(replica)
    diff = torch.tensor([(ours - theirs).abs().max().item()], device=micro_batches[0].device)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return {"max_abs_diff": float(diff), "grad_norm": float(ours.norm()), "flat": ours}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth: a function of the step alone (so resuming
    needs no scheduler state)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   clip_norm: float) -> None:
    """Clip the true (unscaled) gradients, step, and let the scaler adapt its factor; a float16
    overflow skips the step (lesson 12, section 2). Without float16 the scaler does nothing."""
    if clip_norm > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()


def global_loss(local: Tensor, env: DistEnv) -> float:
    """The global batch's mean loss from every rank's mean (an all-reduce; for the log)."""
    dist.all_reduce(local, op=dist.ReduceOp.SUM)
    return local.item() / env.world_size


# --------------------------------------------------------------------------------------
# Memory per rank (lesson 11, section 8)
# --------------------------------------------------------------------------------------


def _local(t: Tensor) -> Tensor:
    return t.to_local() if hasattr(t, "to_local") else t  # an FSDP shard is a DTensor


def training_memory(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this rank holds for parameters, gradients and optimizer state (tensors only)."""
    params = list(model.parameters())
    nbytes = lambda ts: sum(_local(t).numel() * _local(t).element_size() for t in ts)  # noqa: E731
    states = [v for s in optimizer.state.values() for k, v in s.items()
              if isinstance(v, Tensor) and k != "step"]
    return {"parameters": nbytes(params), "gradients": nbytes([p.grad for p in params if p.grad is not None]),
            "optimizer": nbytes(states)}


def expected_memory(num_params: int, world_size: int, strategy: str,
                    bytes_per_value: int = 4) -> dict[str, int]:
    """Bytes per rank for parameters, gradients and Adam's two moments (float32 by default):
    DDP keeps all three whole on every rank; FSDP keeps a 1/N shard of each (Rajbhandari et al.
    2020, ZeRO stage 3)."""
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy must be 'ddp' or 'fsdp', got {strategy!r}")
    values = math.ceil(num_params / world_size) if strategy == "fsdp" else num_params
    return {"parameters": values * bytes_per_value, "gradients": values * bytes_per_value,
            "optimizer": 2 * values * bytes_per_value}


# --------------------------------------------------------------------------------------
# Full state, checkpoints and resume (lesson 12, sections 4 and 5)
# --------------------------------------------------------------------------------------


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> tuple[dict, dict]:
    """Unsharded model and optimizer state, on the CPU (a collective under FSDP: all ranks call)."""
    if cfg.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(model, optimizer, options=options)
    to_cpu = lambda x: x.detach().cpu() if isinstance(x, Tensor) else x  # noqa: E731
    model_state = {k: to_cpu(v) for k, v in unwrap(model).state_dict().items()}
    optim_state = optimizer.state_dict()
    per_param = {i: {k: to_cpu(v) for k, v in s.items()} for i, s in optim_state["state"].items()}
    optim_state = {"state": per_param, "param_groups": optim_state["param_groups"]}
    return model_state, optim_state


def full_model_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                     cfg: TrainConfig) -> dict[str, Tensor]:
    """The unsharded model state alone, on the CPU (a collective under FSDP: all ranks call)."""
    if cfg.strategy == "fsdp":
        return full_state(model, optimizer, cfg)[0]
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict,
                    cfg: TrainConfig) -> None:
    """Put a checkpoint's full state into this rank's (wrapped, maybe sharded) model and optimizer."""
    if cfg.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=saved["model"], optim_state_dict=saved["optimizer"],
                       options=StateDictOptions(full_state_dict=True))
        return
    unwrap(model).load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])


def digest(state: dict[str, Tensor]) -> str:
    """A fingerprint of a model's exact bits: equal digests = bitwise-equal parameters."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def newest_checkpoint(cfg: TrainConfig, env: DistEnv) -> dict | None:
    """The newest checkpoint in --ckpt-dir, read by every rank (the step agreed via rank 0)."""
    if not cfg.ckpt_dir:
        return None
    found = checkpoint.latest(cfg.ckpt_dir) if env.is_main else None
    step = torch.tensor([found[1]["step"] if found else -1], device=env.device)  # NCCL: on the GPU
    dist.broadcast(step, src=0)  # every rank resumes the same step, or none does
    if int(step) < 0:
        return None
    path = checkpoint.path_for(cfg.ckpt_dir, int(step))
    if not path.is_file():
        raise FileNotFoundError(f"rank {env.rank} cannot see {path}, which rank 0 resumes from: on several "
                                "nodes --ckpt-dir must be on a file system that every node shares")
    saved = found[1] if env.is_main else checkpoint.load(path)
    saved["path"] = str(path)
    _log(env, checkpoint.check_resumable(saved, asdict(cfg), env.world_size) + f" ({path.name})")
    return saved


def restart_count() -> int:
    """How often torchrun (`--max-restarts`) has restarted the group so far: 0 on the first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def inject_fault(cfg: TrainConfig, env: DistEnv, step: int) -> None:
    """Rank `--fail-rank` kills itself at step `--fail-at-step`, on the first attempt only, as a
    crashed machine would (lesson 12, section 5)."""
    if step == cfg.fail_at_step and env.rank == cfg.fail_rank and restart_count() == 0:
        print(f"[rank {env.rank}] fault injection: killing this worker (SIGKILL) at step {step}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------------------
# The loop: steps 1-6 of the module docstring
# --------------------------------------------------------------------------------------


def _log(env: DistEnv, message: str) -> None:
    if env.is_main:
        print(f"[rank 0] {message}", flush=True)


@dataclass
class Training:
    """One rank's training as it goes: what the steps of `train` read and update."""

    cfg: TrainConfig
    env: DistEnv
    model: nn.Module  # wrapped by the strategy (DDP, FSDP) or plain (manual, none)
    optimizer: torch.optim.Optimizer
    dtype: torch.dtype | None  # autocast's dtype; None: float32 throughout
    scaler: torch.amp.GradScaler  # enabled for float16 only
    num_params: int
    replica: nn.Module | None  # a plain copy for the gradient check (--check-grads), else None
    start: int = 0  # the first step this attempt trains (> 0 after a resume)
    resumed: bool = False
    losses: list[float] = field(default_factory=list)  # the global batch's loss, every step since 0
    step_seconds: list[float] = field(default_factory=list)
    memory: dict[str, int] = field(default_factory=dict)
    grad_check: dict[str, Any] | None = None


def set_up(cfg: TrainConfig, env: DistEnv, vocab_size: int) -> Training:
    """The same model on every rank (same seed), wrapped by the strategy; AdamW; the autocast
    dtype and, for float16, a gradient scaler (steps 2 and 4)."""
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(cfg, vocab_size).to(env.device)
    num_params = sum(p.numel() for p in model.parameters())  # tied weights counted once
    replica = copy.deepcopy(model) if cfg.check_grads else None
    model = wrap(model, cfg, env)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    dtype = amp_dtype(cfg.amp, env.device)
    scaler = torch.amp.GradScaler(env.device.type, enabled=dtype == torch.float16)
    return Training(cfg, env, model, optimizer, dtype, scaler, num_params, replica)


def resume(run: Training) -> None:
    """Continue from the newest checkpoint, if --ckpt-dir has one: weights, optimizer, scaler,
    the step and the losses so far (step 5)."""
    saved = newest_checkpoint(run.cfg, run.env)
    if saved is None:
        return
    load_full_state(run.model, run.optimizer, saved, run.cfg)
    if saved.get("scaler") and run.dtype == torch.float16:
        run.scaler.load_state_dict(saved["scaler"])
    run.start, run.losses, run.resumed = int(saved["step"]), list(saved["losses"]), True


def describe(run: Training) -> None:
    """Rank 0 says how the global batch is split, in which precision, and which steps remain."""
    cfg, env = run.cfg, run.env
    local = cfg.global_batch // env.world_size
    _log(env, f"world size {env.world_size} ({env.backend} on {env.device.type}), strategy {cfg.strategy}, "
              f"global batch {cfg.global_batch} = {env.world_size} rank(s) x {cfg.accum_steps} "
              f"micro-batch(es) x {local // cfg.accum_steps}, precision {run.dtype or torch.float32}, "
              f"steps {run.start}..{cfg.steps}")
    if restart_count():
        _log(env, f"this is restart {restart_count()} of the group")


def seed_step(cfg: TrainConfig, env: DistEnv, step: int) -> None:
    """Dropout's random numbers as a function of (seed, step, rank), so a resumed run draws the
    same ones. Before the step's batch: a new epoch's DataLoader also draws from this generator."""
    torch.manual_seed(cfg.seed * 100_003 + step * 1_009 + env.rank)


def train_step(run: Training, step: int, batch: Tensor) -> float:
    """One optimizer step on this rank's (B/N, T+1) share of the global batch (steps 3 and 4);
    returns the global batch's loss."""
    cfg, env = run.cfg, run.env
    for group in run.optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    micro_batches = batch.to(env.device).chunk(cfg.accum_steps)  # accum x (B/(N*accum), T+1)
    loss = backward_micro_batches(run.model, micro_batches, run.dtype, run.scaler)
    synchronise_gradients(run.model, cfg)
    if run.replica is not None and step == 0:
        scale = run.scaler.get_scale() if run.scaler.is_enabled() else 1.0
        run.grad_check = check_gradients(run.model, run.replica, micro_batches, run.dtype, scale)
    optimizer_step(run.model, run.optimizer, run.scaler, cfg.clip_norm)
    if step == run.start:  # parameters and gradients as they are now; Adam's state exists after a step
        run.memory = training_memory(run.model, run.optimizer)
    run.optimizer.zero_grad(set_to_none=True)
    return global_loss(loss, env)


def log_step(run: Training, step: int) -> None:
    """Every --log-every steps and at the end, rank 0 prints the loss and the step's time."""
    cfg = run.cfg
    if (step + 1) % max(1, cfg.log_every) == 0 or step + 1 == cfg.steps:
        _log(run.env, f"step {step + 1:4d}/{cfg.steps}  loss {run.losses[-1]:.4f}  "
                      f"{1e3 * run.step_seconds[-1]:.1f} ms/step")


def checkpoint_due(cfg: TrainConfig, step: int) -> bool:
    """After every --ckpt-every steps and after the last one (when --ckpt-dir is set)."""
    every, done = cfg.ckpt_every, step + 1
    return bool(cfg.ckpt_dir and every and (done % every == 0 or done == cfg.steps))


def save_checkpoint(run: Training, step: int) -> None:
    """Rank 0 writes the full state after `step` steps atomically (step 5; lesson 12, section 4)."""
    cfg, env = run.cfg, run.env
    model_state, optim_state = full_state(run.model, run.optimizer, cfg)  # all ranks (FSDP: a collective)
    if env.is_main:
        state = {"model": model_state, "optimizer": optim_state, "step": step, "world_size": env.world_size,
                 "config": asdict(cfg), "losses": list(run.losses), "torch": torch.__version__,
                 "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else None}
        path = checkpoint.save(cfg.ckpt_dir, state, step, keep=cfg.keep)
        _log(env, f"checkpoint {path.name} written (step {step})")


def train(cfg: TrainConfig, env: DistEnv) -> dict[str, Any]:
    """Train on this rank, steps 1-6 of the module docstring; every rank returns the metrics
    (rank 0 also writes them)."""
    cfg.validate(env.world_size)
    dataset, vocab_size = dataset_for(cfg)
    run = set_up(cfg, env, vocab_size)  # 2 and 4: model, strategy, optimizer, precision
    resume(run)  # 5: from the newest checkpoint, if there is one
    describe(run)
    batches = local_batches(dataset, cfg, env, run.start)  # 3: this rank's share of each global batch
    for step in range(run.start, cfg.steps):
        inject_fault(cfg, env, step)  # lesson 12: a machine that dies mid-run
        seed_step(cfg, env, step)
        began = time.perf_counter()
        run.losses.append(train_step(run, step, next(batches)))  # 3 and 4
        run.step_seconds.append(seconds_since(began, env))
        log_step(run, step)
        if checkpoint_due(cfg, step):
            save_checkpoint(run, step + 1)  # 5
    model_state = full_model_state(run.model, run.optimizer, cfg)  # all ranks (FSDP: a collective)
    metrics = run_metrics(run, model_state)
    if cfg.out:
        write_outputs(Path(cfg.out), run, metrics, model_state)  # 6
    return metrics


def seconds_since(began: float, env: DistEnv) -> float:
    """Wall-clock seconds since `began`, once the GPU has finished the work queued for it."""
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def run_metrics(run: Training, model_state: dict[str, Tensor]) -> dict[str, Any]:
    """What metrics.json holds: the settings, the losses, throughput, memory and the model's digest."""
    cfg, env = run.cfg, run.env
    timed = run.step_seconds[min(cfg.timing_warmup, max(0, len(run.step_seconds) - 1)):]
    seconds, mine = sum(timed), digest(model_state)
    metrics = {
        "config": asdict(cfg), "world_size": env.world_size, "backend": env.backend,
        "device": str(env.device), "strategy": cfg.strategy, "precision": str(run.dtype or torch.float32),
        "losses": run.losses, "start_step": run.start, "restart_count": restart_count(),
        "resumed_from": run.start if run.resumed else None,
        "samples_per_second": cfg.global_batch * len(timed) / seconds if seconds > 0 else None,
        "tokens_per_second": cfg.global_batch * cfg.seq_len * len(timed) / seconds if seconds > 0 else None,
        "ms_per_step": 1e3 * seconds / len(timed) if timed else None,
        "memory": run.memory, "digest": mine, "rank_digests": _all_digests(mine),
        "parameters": run.num_params,
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if env.device.type == "cuda" else None,
    }
    if run.grad_check is not None:
        metrics["grad_check"] = {k: v for k, v in run.grad_check.items() if k != "flat"}
    if cfg.strategy == "ddp" and cfg.check_grads and env.world_size > 1:
        metrics["broadcast_check"] = check_ddp_broadcast(env)
    return metrics


def check_ddp_broadcast(env: DistEnv) -> dict[str, list[str]]:
    """Every rank's digest of a small layer initialised with a *different* seed on every rank,
    before and after wrapping it in DDP: DDP's constructor broadcasts rank 0's parameters and
    buffers, so the "after" digests are all equal (lesson 11, section 6)."""
    with torch.random.fork_rng(devices=[]):  # leave the training's random state untouched
        torch.manual_seed(1_000 + env.rank)
        layer = nn.Linear(4, 4).to(env.device)
    before = digest(layer.state_dict())
    DDP(layer, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    return {"before": _all_digests(before), "after": _all_digests(digest(layer.state_dict()))}


def _all_digests(mine: str) -> list[str]:
    """Every rank's model digest, in rank order (equal digests: bitwise-identical replicas)."""
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


def write_outputs(out: Path, run: Training, metrics: dict, model_state: dict) -> None:
    """Every rank: rank{r}.json (who and where it ran); rank 0: metrics.json, and model.pt and
    grads.pt when asked for (step 6)."""
    env = run.env
    out.mkdir(parents=True, exist_ok=True)
    mine = {"rank": env.rank, "local_rank": env.local_rank, "world_size": env.world_size,
            "digest": metrics["digest"], "group_rank": os.environ.get("GROUP_RANK"),
            "hostname": socket.gethostname(), "pid": os.getpid()}
    _write_json(out / f"rank{env.rank}.json", mine)
    if not env.is_main:
        return
    if run.cfg.save_model:
        atomic_save(model_state, out / "model.pt")
    if run.grad_check is not None:
        atomic_save(run.grad_check["flat"], out / "grads.pt")
    _write_json(out / "metrics.json", metrics)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)  # readers never see half a file


@record  # on a crash, torchrun's summary shows this worker's traceback
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the flags, join (or make) the group, train, leave the group.

    `--strategy ddp,fsdp` trains once per strategy, one after the other in the same group
    (a comparison without paying for a second start-up); each run writes to `--out/<strategy>`
    and `--out/metrics.json` holds {"strategies": {name: metrics}}.
    """
    cfg = parse_config(argv)
    strategies = cfg.strategy.split(",")
    if len(strategies) > 1 and cfg.ckpt_dir:
        raise ValueError("several strategies in one run cannot share --ckpt-dir; run them separately")
    made_group = not dist.is_initialized()
    env = init(None if cfg.device == "auto" else cfg.device)
    try:
        if len(strategies) == 1:
            return train(cfg, env)
        results = {}
        for name in strategies:
            sub = dataclasses.replace(cfg, strategy=name, out=str(Path(cfg.out) / name) if cfg.out else "")
            results[name] = train(sub, env)
        if cfg.out and env.is_main:
            _write_json(Path(cfg.out) / "metrics.json", {"strategies": results})
        return {"strategies": results}
    finally:
        if made_group:
            shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
