"""Collectives from first principles (lesson 11).

A *collective* is an operation that every rank of a group calls together: each brings a
tensor, all wait for each other, each leaves with a result. `all_reduce` leaves every rank
with the sum (or mean, max...) of all ranks' tensors: exactly what data-parallel training
needs to average its gradients.

- `ring_all_reduce`: the ring algorithm NCCL and gloo use for large tensors, simulated on a
  list of per-rank tensors: a reduce-scatter, then an all-gather, each N-1 steps in which
  every rank sends one chunk to its neighbour (Patarasuk & Yuan 2009, "Bandwidth optimal
  all-reduce algorithms for clusters of workstations").
- `average_gradients`: what DDP does after `backward()`, written with one `all_reduce` per
  parameter (DDP does the same in buckets, overlapped with the backward pass).
- `simulate`: runs a function on N ranks as N threads of this process, with the collectives
  of `torch.distributed` replaced by in-memory ones; notebooks check multi-rank code with it
  in milliseconds, without starting processes.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

# --------------------------------------------------------------------------------------
# The ring algorithm, simulated
# --------------------------------------------------------------------------------------


def ring_all_reduce(tensors: Sequence[Tensor], all_gather: bool = True) -> list[Tensor]:
    """Sum N ranks' tensors with the ring algorithm: N tensors (same shape) -> N copies of the sum.

    Each tensor is cut into N chunks. Reduce-scatter (N-1 steps): at step s, rank r sends its
    chunk (r - s) mod N to rank r + 1, which adds it to its own; afterwards rank r holds the
    complete sum of chunk (r + 1) mod N. All-gather (N-1 steps): at step s, rank r sends
    chunk (r + 1 - s) mod N to rank r + 1, which keeps it. `all_gather=False` stops after the
    first phase (each rank then holds one summed chunk and partial sums elsewhere).
    """
    n = len(tensors)
    if n == 0:
        raise ValueError("ring_all_reduce needs one tensor per rank, got none")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"every rank must bring a tensor of the same shape, got {sorted(shapes)}")
    chunks = [list(t.detach().flatten().clone().tensor_split(n)) for t in tensors]  # N ranks x N chunks
    for s in range(n - 1):  # reduce-scatter
        sent = [(r, (r - s) % n, chunks[r][(r - s) % n].clone()) for r in range(n)]  # all send at once
        for r, c, data in sent:
            chunks[(r + 1) % n][c] += data
    if all_gather:
        for s in range(n - 1):
            sent = [(r, (r + 1 - s) % n, chunks[r][(r + 1 - s) % n].clone()) for r in range(n)]
            for r, c, data in sent:
                chunks[(r + 1) % n][c] = data
    return [torch.cat(parts).view_as(t) for parts, t in zip(chunks, tensors, strict=True)]


def ring_traffic(numel: int, world_size: int) -> dict[str, float]:
    """Values the busiest rank *sends* in one all-reduce of `numel` values: ring vs naive.

    Both schemes receive exactly as much as they send, so counting sent values only (as here)
    or sent + received (twice these numbers) compares them the same way.
    """
    n = world_size
    return {
        "ring, per rank": 2 * (n - 1) / n * numel,  # 2(N-1) steps of numel/N: under 2x numel for any N
        "naive, rank 0": (n - 1) * numel,  # the sum back to N-1 ranks (after receiving N-1): grows with N
    }


# --------------------------------------------------------------------------------------
# Gradient averaging: data parallelism by hand
# --------------------------------------------------------------------------------------


def average_gradients(model: nn.Module, group: Any = None) -> None:
    """Replace every parameter's gradient by its mean over the ranks (in place).

    After it, every rank holds the gradient of the mean loss over the *global* batch, so
    that identical optimizer steps keep the replicas identical.
    """
    world_size = dist.get_world_size(group)
    for p in model.parameters():
        if p.grad is None:
            continue
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, group=group)  # every rank: sum over ranks
        p.grad /= world_size  # SUM then divide works on every backend (older gloo lacks AVG)


def average_gradients_flat(model: nn.Module, group: Any = None) -> None:
    """The same with one all_reduce on all gradients flattened into one buffer (DDP's buckets):
    one message instead of one per parameter."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])  # (sum of numel,)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    flat /= dist.get_world_size(group)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sharded_gradients(average: Callable[[nn.Module], None], world_size: int, seed: int = 0,
                      batch_size: int = 12) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """Data parallelism on `world_size` simulated ranks, for checking an `average(model)`.

    Each rank holds a replica of one small model and B/N samples of one batch; it runs
    backward, then `average(replica)`. Returns every rank's flat gradient after `average`,
    every rank's local gradient before it, and the full batch's gradient in one process.
    """
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = torch.randn(batch_size, 4), torch.randn(batch_size, 2)
    nn.functional.mse_loss(model(x), y).backward()
    expected = torch.cat([p.grad.flatten() for p in model.parameters()])  # (P,)
    replicas = [copy.deepcopy(model) for _ in range(world_size)]
    for replica in replicas:
        replica.zero_grad(set_to_none=True)
    local: list[Tensor] = [torch.empty(0)] * world_size

    def rank_step(rank: int) -> Tensor:
        m = replicas[rank]
        nn.functional.mse_loss(m(x.chunk(world_size)[rank]), y.chunk(world_size)[rank]).backward()
        local[rank] = torch.cat([p.grad.flatten() for p in m.parameters()]).clone()
        average(m)
        return torch.cat([p.grad.flatten() for p in m.parameters()])

    return simulate(rank_step, world_size), local, expected


def count_gradient_syncs(ddp_model: nn.Module) -> dict[str, int]:
    """Count DDP's gradient all-reduces from now on: returns a dict whose "buckets" and
    "backward passes" grow as DDP communicates (a communication hook that only counts)."""
    counter = {"buckets": 0, "backward passes": 0}

    def hook(state, bucket):  # no annotations: DDP checks them, and this module's are strings
        state["buckets"] += 1
        if bucket.is_last():
            state["backward passes"] += 1
        return dist.algorithms.ddp_comm_hooks.default_hooks.allreduce_hook(None, bucket)

    import torch.distributed.algorithms.ddp_comm_hooks.default_hooks  # noqa: F401 - loads the module

    ddp_model.register_comm_hook(counter, hook)
    return counter


# --------------------------------------------------------------------------------------
# Simulated ranks: N threads that meet at every collective
# --------------------------------------------------------------------------------------


class CollectiveMismatch(RuntimeError):
    """The simulated ranks did not call the same collectives in the same order: a real group
    would hang (a deadlock) or mix up data."""


class _Aborted(Exception):
    """Raised in the other ranks when one rank fails (its own error is reported instead)."""


class _Rendezvous:
    """Where the N threads meet: each collective is one round of `exchange`."""

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.cond = threading.Condition()
        self.arrived: dict[int, tuple[str, Any]] = {}
        self.round = 0
        self.result: list[Any] = []
        self.finished: set[int] = set()
        self.error: BaseException | None = None

    def exchange(self, rank: int, what: str, value: Any) -> list[Any]:
        """Deposit `value`, wait for every rank's, return all of them in rank order."""
        with self.cond:
            if self.error is not None:
                raise _Aborted
            this_round = self.round
            self.arrived[rank] = (what, value)
            if len(self.arrived) == self.world_size:
                calls = {r: w for r, (w, _) in self.arrived.items()}
                if len(set(calls.values())) > 1:
                    self._fail(CollectiveMismatch(
                        f"the ranks called different collectives at the same point: {calls}; every rank "
                        "must call the same collectives in the same order"))
                    raise _Aborted
                self.result = [self.arrived[r][1] for r in range(self.world_size)]
                self.arrived = {}
                self.round += 1
                self.cond.notify_all()
                return self.result
            while self.round == this_round and self.error is None:
                if self.finished:
                    waiting = sorted(self.arrived)
                    self._fail(CollectiveMismatch(
                        f"rank(s) {waiting} called {what} but rank(s) {sorted(self.finished)} returned "
                        f"without calling it: in a real group rank(s) {waiting} would wait forever (a "
                        "deadlock). Every rank must call the same collectives, e.g. no "
                        "`if dist.get_rank() == 0:` around an all_reduce"))
                    break
                self.cond.wait(timeout=0.05)
            if self.error is not None:
                raise _Aborted
            return self.result

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self.cond:
            self._fail(error)

    def finish(self, rank: int) -> None:
        with self.cond:
            self.finished.add(rank)
            self.cond.notify_all()


_local = threading.local()  # .rank and .rendezvous inside a simulated rank's thread
_patch_lock = threading.Lock()
_REDUCE = {
    "SUM": lambda xs: xs.sum(0),
    "AVG": lambda xs: xs.mean(0),
    "PRODUCT": lambda xs: xs.prod(0),
    "MIN": lambda xs: xs.amin(0),
    "MAX": lambda xs: xs.amax(0),
}


class _Done:
    """What `async_op=True` returns: the work is already done."""

    def wait(self, timeout: Any = None) -> bool:
        return True

    def is_completed(self) -> bool:
        return True


def _op_name(op: Any) -> str:
    for name in _REDUCE:
        if op == getattr(dist.ReduceOp, name):
            return name
    raise ValueError(f"simulate supports ReduceOp SUM, AVG, PRODUCT, MIN and MAX, got {op!r}")


def _check_tensor(what: str, tensor: Any) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"dist.{what} takes a tensor (changed in place), got {type(tensor).__name__}")
    return tensor


def _same_shapes(what: str, values: list[Tensor]) -> None:
    shapes = [tuple(v.shape) for v in values]
    if len(set(shapes)) > 1:
        raise CollectiveMismatch(f"dist.{what}: every rank must pass a tensor of the same shape, got "
                                 + ", ".join(f"rank {r}: {s}" for r, s in enumerate(shapes)))


def _sim_all_reduce(tensor: Tensor, op: Any = dist.ReduceOp.SUM, group: Any = None,
                    async_op: bool = False) -> Any:
    _check_tensor("all_reduce", tensor)
    reduce = _REDUCE[_op_name(op)]
    values = _local.rendezvous.exchange(_local.rank, "all_reduce", tensor.detach().clone())
    _same_shapes("all_reduce", values)
    with torch.no_grad():
        tensor.copy_(reduce(torch.stack(values)))  # the same order on every rank: identical results
    return _Done() if async_op else None


def _sim_broadcast(tensor: Tensor, src: int = 0, group: Any = None, async_op: bool = False) -> Any:
    _check_tensor("broadcast", tensor)
    values = _local.rendezvous.exchange(_local.rank, f"broadcast(src={src})", tensor.detach().clone())
    _same_shapes("broadcast", values)
    with torch.no_grad():
        tensor.copy_(values[src])
    return _Done() if async_op else None


def _sim_all_gather(tensor_list: list[Tensor], tensor: Tensor, group: Any = None,
                    async_op: bool = False) -> Any:
    _check_tensor("all_gather", tensor)
    values = _local.rendezvous.exchange(_local.rank, "all_gather", tensor.detach().clone())
    if len(tensor_list) != len(values):
        raise ValueError(f"dist.all_gather needs a list of world_size={len(values)} tensors, "
                         f"got {len(tensor_list)}")
    with torch.no_grad():
        for out, value in zip(tensor_list, values, strict=True):
            out.copy_(value)
    return _Done() if async_op else None


def _sim_barrier(group: Any = None, async_op: bool = False, device_ids: Any = None) -> Any:
    _local.rendezvous.exchange(_local.rank, "barrier", None)
    return _Done() if async_op else None


_SIMULATED: dict[str, Callable[..., Any]] = {
    "all_reduce": _sim_all_reduce,
    "broadcast": _sim_broadcast,
    "all_gather": _sim_all_gather,
    "barrier": _sim_barrier,
    "get_rank": lambda group=None: _local.rank,
    "get_world_size": lambda group=None: _local.rendezvous.world_size,
    "is_initialized": lambda: True,
}


def _dispatch(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Inside a simulated rank's thread: the simulation; anywhere else: the real function."""
    simulated = _SIMULATED[name]

    def call(*args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "rendezvous", None) is None:
            return original(*args, **kwargs)
        return simulated(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"torch.distributed.{name}, simulated inside `utils.distributed.collectives.simulate`."
    return call


@contextlib.contextmanager
def _patched() -> Iterator[None]:
    originals = {name: getattr(dist, name) for name in _SIMULATED}
    try:
        for name, fn in originals.items():
            setattr(dist, name, _dispatch(name, fn))
        yield
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)


def simulate(fn: Callable[..., Any], world_size: int, *args: Any, timeout_s: float = 60.0,
             **kwargs: Any) -> list[Any]:
    """Run `fn(rank, *args, **kwargs)` on `world_size` simulated ranks; return their results.

    Each rank is a thread of this process. Inside it, `dist.get_rank()`,
    `dist.get_world_size()`, `dist.all_reduce`, `dist.broadcast`, `dist.all_gather` and
    `dist.barrier` behave as in a real group of `world_size` processes. A rank that raises
    stops the others and its error is raised here; ranks that call different collectives
    raise `CollectiveMismatch` (a real group would hang). Give each rank its own model
    (build the replicas before calling `simulate`: the ranks share one random generator).
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    rendezvous = _Rendezvous(world_size)
    results: list[Any] = [None] * world_size

    def body(rank: int) -> None:
        _local.rank, _local.rendezvous = rank, rendezvous
        try:
            results[rank] = fn(rank, *args, **kwargs)
        except _Aborted:
            pass
        except BaseException as err:  # noqa: BLE001 - reported to the caller below
            rendezvous.fail(err)
        finally:
            rendezvous.finish(rank)
            _local.rank, _local.rendezvous = None, None

    with _patch_lock, _patched():
        threads = [threading.Thread(target=body, args=(r,), name=f"rank-{r}", daemon=True)
                   for r in range(world_size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout_s)
        if any(t.is_alive() for t in threads):
            rendezvous.fail(TimeoutError(f"simulated ranks still running after {timeout_s:g} s"))
            for t in threads:
                t.join(1.0)
    if rendezvous.error is not None:
        raise rendezvous.error
    return results
