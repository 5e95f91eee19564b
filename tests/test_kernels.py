"""Kernels started side by side never collide (instructor/course_tools/kernels.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import nbval.kernel

from course_tools.kernels import IpcKernelManager


def test_the_suite_starts_its_notebook_kernels_on_unix_sockets():
    assert nbval.kernel.KernelManager is IpcKernelManager  # set in conftest.pytest_configure


def test_kernels_started_at_once_all_answer_and_leave_no_sockets_behind():
    managers, errors = [], []

    def start_and_ask():
        try:
            km, kc = nbval.kernel.start_new_kernel(kernel_name=nbval.kernel.CURRENT_ENV_KERNEL_NAME)
            managers.append(km)
            reply = kc.execute_interactive("x = 6 * 7", timeout=30)
            assert reply["content"]["status"] == "ok"
            assert km.transport == "ipc" and km.get_connection_info()["transport"] == "ipc"
            kc.stop_channels()
        except Exception as err:  # collected: a thread's assertion would otherwise vanish
            errors.append(repr(err))

    threads = [threading.Thread(target=start_and_ask) for _ in range(4)]  # as nbval's workers do
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    socket_dirs = [Path(km._socket_dir) for km in managers]
    assert len({str(d) for d in socket_dirs}) == len(managers), "each kernel gets a folder of its own"
    for km in managers:
        km.shutdown_kernel(now=True)
    assert not errors, errors
    assert len(managers) == 4
    assert not any(d.exists() for d in socket_dirs), "socket folders are removed at shutdown"
