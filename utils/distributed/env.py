"""Who am I in the group: rank, world size, backend and device, from `torchrun`'s environment.

`torchrun` starts one process per rank and tells each where it stands through environment
variables: `RANK` (0 .. N-1 over all nodes), `LOCAL_RANK` (0 .. on this node, which picks
the GPU), `WORLD_SIZE` (N), and `MASTER_ADDR`/`MASTER_PORT` (where the ranks meet). `init()`
reads them and joins the group; run without `torchrun` (a notebook, a test), it makes a
group of one process instead, so the same training code runs either way.

The backend follows the device: NCCL between GPUs (one rank per GPU), gloo between CPU
processes. `COURSE_DEVICE=cpu` forces the CPU (the launcher sets it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from utils import runtime


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the group."""

    rank: int  # 0 .. world_size - 1, over every node
    local_rank: int  # 0 .. processes on this node - 1: picks the GPU
    world_size: int
    backend: str  # "nccl" or "gloo"
    device: torch.device
    launched: bool  # True under torchrun; False for a group of one made in this process

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints; the others stay quiet."""
        return self.rank == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it when we bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something already listens on `host:port` (so a rendezvous there would fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present (and not overridden by `COURSE_DEVICE`), else the CPU.

    Apple's MPS is left out on purpose: no collective backend supports it, so distributed
    runs on a Mac use gloo on the CPU.
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer and prefer != "auto":
        kind = torch.device(prefer).type
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for, but no CUDA GPU is visible to this process; "
                               "use device 'cpu' (gloo) instead")
        return torch.device(kind)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def _from_environment() -> tuple[int, int, int] | None:
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])


def _attempt_store(world_size: int, timeout: timedelta) -> dist.Store | None:
    """torchrun's key-value store, seen through a prefix unique to this restart attempt.

    The workers meet through a store that torchrun's agent keeps for the whole job (c10d
    rendezvous), restarts included. Without a prefix per attempt, a restarted rank can read
    the address a rank of the *previous* attempt published there, and fail to connect to it
    ("Connection refused"); the prefix keeps the attempts apart. None outside torchrun's
    agent store (then init_process_group makes its own).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    # USE_LIBUV=0 (the launcher sets it on Windows, whose PyTorch has no libuv) is obeyed here too
    libuv = {"use_libuv": False} if os.environ.get("USE_LIBUV") == "0" else {}
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=False, timeout=timeout, **libuv)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"/utils.distributed/attempt_{attempt}", agent)


def _private_store() -> dist.Store:
    """A key-value store for a group of one: in memory, or a fresh file where PyTorch's Windows
    build has no `HashStore` (torch.distributed imports it on every platform but win32)."""
    if hasattr(dist, "HashStore"):
        return dist.HashStore()
    handle, path = tempfile.mkstemp(prefix="course-store-")
    os.close(handle)
    os.unlink(path)  # FileStore creates it; a fresh name, so no earlier group's keys are read
    return dist.FileStore(path, 1)


def current(device: torch.device | None = None) -> DistEnv:
    """The group this process has already joined (see `init`)."""
    if not dist.is_initialized():
        raise RuntimeError("no process group yet: call utils.distributed.env.init() first")
    backend = dist.get_backend()
    ranks = _from_environment()
    local_rank = ranks[1] if ranks else 0
    if device is None:
        device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return DistEnv(dist.get_rank(), local_rank, dist.get_world_size(), backend, device, ranks is not None)


def init(device: str | torch.device | None = None, timeout_s: float = 120.0) -> DistEnv:
    """Join torchrun's group (from RANK, WORLD_SIZE, ...), or make a group of one process.

    Idempotent: when a group exists already (a notebook made one), it is returned as is.
    """
    kind = pick_device(str(device) if device is not None else None)
    if dist.is_initialized():
        return current(torch.device("cpu") if kind.type == "cpu" else None)
    backend = backend_for(kind)
    ranks = _from_environment()
    timeout = timedelta(seconds=timeout_s)
    if ranks is None:  # no torchrun: a group of one, with a private store (no network)
        dist.init_process_group(backend, store=_private_store(), rank=0, world_size=1, timeout=timeout)
        rank, local_rank, world_size = 0, 0, 1
    else:
        rank, local_rank, world_size = ranks
        if kind.type == "cuda":
            gpus = torch.cuda.device_count()
            if local_rank >= gpus:
                raise RuntimeError(
                    f"local rank {local_rank} has no GPU: this node has {gpus} GPU(s) but torchrun "
                    f"started more processes per node. Use --nproc-per-node={gpus} (one process per "
                    "GPU), or COURSE_DEVICE=cpu for gloo processes on the CPU.")
            torch.cuda.set_device(local_rank)
        store = _attempt_store(world_size, timeout)
        if store is None:
            dist.init_process_group(backend, timeout=timeout)  # reads MASTER_ADDR/PORT from torchrun
        else:
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    where = torch.device("cuda", local_rank) if kind.type == "cuda" else torch.device("cpu")
    runtime.apply_gpu_memory_cap(where)  # COURSE_GPU_MEMORY_GIB holds in every rank, too
    return DistEnv(rank, local_rank, world_size, backend, where, ranks is not None)


def shutdown() -> None:
    """Leave the group (so that a process can exit cleanly or make a new one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def single_process_group(device: str | None = "cpu") -> Iterator[DistEnv]:
    """A group of one process for the duration of a `with` block (notebooks, tests).

    Leaves an existing group alone; destroys only the group it made itself.
    """
    made = not dist.is_initialized()
    env = init(device)
    try:
        yield env
    finally:
        if made:
            shutdown()
