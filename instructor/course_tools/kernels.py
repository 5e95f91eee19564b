"""Kernels that never race for a port: the ones the test suite, `make claims` and the GPU check
start, several at a time.

With the default TCP transport, jupyter_client picks free ports by binding and releasing them,
then the kernel binds them again a moment later. Two kernels started at once (two pytest
workers, parallel claim runs) can pick the same port; the loser exits before it answers, and
every cell of its notebook errors with "Kernel died before replying to kernel_info" (CI, stop
21, lesson 00 in the newest-torch run). Unix sockets in a folder of the kernel's own cannot
collide. The grader's sandboxed kernels already talk this way (worker.nbgrader_config).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager, KernelManager


class _UnixSockets:
    """The kernel listens on Unix sockets in a fresh folder, removed when it shuts down."""

    def __init__(self, **kwargs):
        self._socket_dir = Path(tempfile.mkdtemp(prefix="kernel-"))
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("ip", str(self._socket_dir / "kernel"))  # sockets: kernel-1, kernel-2, ...
        super().__init__(**kwargs)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


class IpcKernelManager(_UnixSockets, KernelManager):
    """For nbval, which starts kernels with the blocking manager."""


class AsyncIpcKernelManager(_UnixSockets, AsyncKernelManager):
    """For nbclient (`NotebookClient(..., kernel_manager_class=AsyncIpcKernelManager)`)."""
