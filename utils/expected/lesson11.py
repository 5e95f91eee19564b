"""What the visible checks of lesson 11 compare against, kept out of the cells.

Each `*_mistakes` function returns a dict from a hint's text (a classic mistake, named as the
student would recognise it) to the output that mistake gives on the check's inputs; the
correct values come from the exercises' references in `utils` (`collectives.ring_all_reduce`,
`collectives.sharded_gradients`, `DistributedSampler`, `train.expected_memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils.data import DistributedSampler

# ---------------------------------------------------------------- ring_all_reduce


def _ring(tensors: Sequence[Tensor], *, rs_steps: int | None = None, ag_steps: int | None = None,
          rs_chunk: Callable[[int, int], int] = lambda r, s: r - s,
          ag_chunk: Callable[[int, int], int] = lambda r, s: r + 1 - s,
          to: Callable[[int], int] = lambda r: r + 1, gather_to: Callable[[int], int] = lambda r: r + 1,
          gather_adds: bool = False) -> list[Tensor]:
    """The ring with one of its details changed: what a mistaken ring leaves on every rank."""
    n = len(tensors)
    chunks = [list(t.detach().flatten().clone().tensor_split(n)) for t in tensors]  # N ranks x N chunks
    for s in range(n - 1 if rs_steps is None else rs_steps):  # reduce-scatter
        sent = [(r, rs_chunk(r, s) % n, chunks[r][rs_chunk(r, s) % n].clone()) for r in range(n)]
        for r, c, data in sent:
            chunks[to(r) % n][c] += data
    for s in range(n - 1 if ag_steps is None else ag_steps):  # all-gather
        sent = [(r, ag_chunk(r, s) % n, chunks[r][ag_chunk(r, s) % n].clone()) for r in range(n)]
        for r, c, data in sent:
            if gather_adds:
                chunks[gather_to(r) % n][c] += data
            else:
                chunks[gather_to(r) % n][c] = data
    return [torch.cat(parts).view_as(t) for parts, t in zip(chunks, tensors, strict=True)]


def ring_all_reduce_mistakes(tensors: Sequence[Tensor], rank: int) -> dict[str, Tensor]:
    """Rank `rank`'s result of the ring with a classic mistake, for N ranks' `tensors`."""
    n = len(tensors)
    variants = {
        "the reduce-scatter alone: each rank holds one complete chunk; now pass the complete "
        "chunks round the ring (all-gather)": _ring(tensors, ag_steps=0),
        "rank r's own tensor: the chunks were never exchanged": [t.clone() for t in tensors],
        "an all-gather that adds the chunks it receives: in the second phase a rank keeps (replaces) "
        "its chunk with the complete one it receives": _ring(tensors, gather_adds=True),
        "a chunk that misses a rank's contribution: in the reduce-scatter, at step s rank r sends chunk "
        "(r - s) mod N (the one it has just added to), and the phase has N-1 steps":
        _ring(tensors, rs_chunk=lambda r, s: r + s),
        "a reduce-scatter of N-2 steps instead of N-1: one rank's contribution is missing":
        _ring(tensors, rs_steps=max(n - 2, 0)),
        "an all-gather that sends chunk (r - s) mod N, not yet complete: after the reduce-scatter rank r "
        "holds the complete chunk (r + 1) mod N, so at step s it sends (r + 1 - s) mod N":
        _ring(tensors, ag_chunk=lambda r, s: r - s),
        "chunks sent to rank r - 1 in the reduce-scatter: in this ring rank r sends to rank (r + 1) mod N":
        _ring(tensors, to=lambda r: r - 1),
        "chunks sent to rank r - 1: in this ring rank r sends to rank (r + 1) mod N, in both phases":
        _ring(tensors, to=lambda r: r - 1, gather_to=lambda r: r - 1),
    }
    return {text: result[rank] for text, result in variants.items()}


_ADDITIONS = {"add", "add_", "__add__", "__iadd__", "__radd__", "sum", "mean", "stack", "cumsum",
              "index_add", "index_add_", "scatter_add", "scatter_add_", "einsum"}


class _Additions(TorchFunctionMode):
    """Records, for every addition (or reduction) made in this thread, the most values an operand held."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in _ADDITIONS:
            flat = [a for a in args if isinstance(a, Tensor)]
            flat += [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, Tensor)]
            self.sizes.append(max((t.numel() for t in flat), default=0))
        return func(*args, **(kwargs or {}))


def ring_additions(ring_all_reduce: Callable[[list[Tensor]], Any],
                   tensors: list[Tensor]) -> tuple[Any, list[int]]:
    """Run `ring_all_reduce(tensors)`; return its result and the size (values) of every addition it made.

    A ring's reduce-scatter makes N-1 additions of one chunk (numel/N values) on each of the N ranks,
    N(N-1) in all, and no addition ever holds a whole tensor (no rank ever holds all N of them).
    """
    with _Additions() as mode:
        result = ring_all_reduce(tensors)
    return result, mode.sizes


# ---------------------------------------------------------------- average_gradients


def average_gradients_mistakes(before: Tensor, full_batch: Tensor, world_size: int) -> dict[str, Tensor]:
    """One rank's flat gradient after a mistaken averaging; `before` is its local gradient."""
    return {
        "the sum over ranks, not the mean: divide by the world size after the all_reduce":
        full_batch * world_size,
        "the rank's own gradient, unchanged: the all_reduce must act on p.grad itself, in place "
        "(not on a copy, nor on the parameter p)": before,
        "the rank's own gradient divided by the world size: the all_reduce must act on p.grad itself, "
        "in place (not on a copy, nor on the parameter p)": before / world_size,
        "the mean divided by the world size once more: all_reduce sums, so divide once, after it":
        full_batch / world_size,
    }


# ---------------------------------------------------------------- rank_indices


def sampler_indices(num_samples: int, rank: int, world_size: int, seed: int = 0, epoch: int = 0) -> list[int]:
    """What `DistributedSampler(shuffle=True)` gives rank `rank` in epoch `epoch` (the reference)."""
    sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def _order(num_samples: int, seed: int) -> list[int]:
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed)).tolist()


def _every_nth(order: list[int], rank: int, world_size: int, pad_from_end: bool = False) -> list[int]:
    per_rank = -(-len(order) // world_size)
    missing = per_rank * world_size - len(order)
    if pad_from_end and missing:
        return (order + order[-missing:])[rank::world_size]
    return (order + (order * (missing // len(order) + 1))[:missing])[rank::world_size]


def rank_indices_mistakes(num_samples: int, rank: int, world_size: int, seed: int = 0,
                          epoch: int = 0) -> dict[str, Tensor]:
    """Rank `rank`'s indices with a classic mistake (as tensors, for checks.check_close)."""
    per_rank = -(-num_samples // world_size)
    order = _order(num_samples, seed + epoch)
    variants = {
        "epoch 0's order whatever the epoch: seed the generator with seed + epoch, so that every epoch "
        "is shuffled anew (what set_epoch does)": sampler_indices(num_samples, rank, world_size, seed, 0),
        "a contiguous block of the order: rank r takes every N-th index, starting at position r":
        (order * 2)[rank * per_rank:(rank + 1) * per_rank],
        "a shuffle seeded with the epoch alone: the generator's seed is seed + epoch":
        _every_nth(_order(num_samples, epoch), rank, world_size),
        "a shuffle seeded with the seed alone: the generator's seed is seed + epoch":
        _every_nth(_order(num_samples, seed), rank, world_size),
        "the padding taken from the end of the order: DistributedSampler pads by repeating its start":
        _every_nth(order, rank, world_size, pad_from_end=True),
    }
    return {text: torch.tensor(indices) for text, indices in variants.items()}


# ---------------------------------------------------------------- training_memory


def as_bytes(memory: dict[str, int]) -> Tensor:
    """(parameters, gradients, optimizer) bytes as one tensor, for checks.check_close."""
    return torch.tensor([float(memory[k]) for k in ("parameters", "gradients", "optimizer")])


def training_memory_mistakes(num_params: int, world_size: int, strategy: str) -> dict[str, Tensor]:
    """Bytes per rank (parameters, gradients, optimizer) with a classic mistake."""
    shard = -(-num_params // world_size)
    values = shard if strategy == "fsdp" else num_params
    floor = num_params // world_size if strategy == "fsdp" else num_params
    return {
        "Adam's state counted once: Adam keeps 2 values per parameter (the two moments)":
        torch.tensor([4.0 * values, 4.0 * values, 4.0 * values]),
        "values counted, not bytes: a float32 value takes 4 bytes":
        torch.tensor([1.0 * values, 1.0 * values, 2.0 * values]),
        "a shard rounded down: num_params / world_size rounded up (the last shard is padded), or a "
        "parameter would have no rank": torch.tensor([4.0 * floor, 4.0 * floor, 8.0 * floor]),
        "only the parameters sharded: FSDP shards the gradients and the optimizer state too":
        torch.tensor([4.0 * values, 4.0 * num_params, 8.0 * num_params]),
        "the strategies swapped: DDP keeps a whole copy on every rank, FSDP a 1/N shard":
        torch.tensor([4.0, 4.0, 8.0]) * (shard if strategy == "ddp" else num_params),
    }
