"""utils.training: the loop trains, stops with advice on a bad loss, and logs every step;
`atomic_save` leaves the old checkpoint or the new one, durably, never a torn one."""

from __future__ import annotations

import errno
import os
import stat

import pytest
import torch
from torch import nn

from utils import training


def test_train_lowers_the_loss(regression) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    batches, mse = regression
    log = training.train(model, batches, mse, steps=200, lr=0.05)
    assert log.steps == 200 and log.seconds > 0
    assert sum(log.losses[-10:]) < 0.01 * sum(log.losses[:10])


def test_non_finite_loss_stops_with_advice(regression) -> None:
    model, (_, mse) = nn.Linear(4, 1), regression
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        training.train(model, [(torch.full((2, 4), float("nan")), torch.zeros(2, 1))], mse, steps=1)


def test_empty_training_data_is_reported(regression) -> None:
    _, mse = regression
    with pytest.raises(ValueError, match="yielded no batch"):
        training.train(nn.Linear(4, 1), [], mse, steps=1)


def test_smoothed_loss_is_a_running_mean() -> None:
    assert training.TrainLog(losses=[1.0, 3.0, 5.0]).smoothed(window=2) == [1.0, 2.0, 4.0]


def _record_fsyncs_and_renames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Patch os.fsync and os.replace to log, in order, ("fsync file" | "fsync folder", inode) and
    ("replace", inode of the file renamed), then do the real thing."""
    events: list[tuple[str, int]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync folder" if stat.S_ISDIR(info.st_mode) else "fsync file", info.st_ino))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not training._FOLDERS_CAN_BE_FSYNCED, reason="Windows cannot fsync a folder")
def test_atomic_save_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch) -> None:
    events = _record_fsyncs_and_renames(monkeypatch)
    path = tmp_path / "run" / "checkpoint.pt"
    training.atomic_save({"step": 1}, path)
    file_inode, folder_inode = path.stat().st_ino, path.parent.stat().st_ino
    # The new file's bytes reach the disk before its name does, and the rename before we return.
    assert events == [("fsync file", file_inode), ("replace", file_inode), ("fsync folder", folder_inode)]
    assert torch.load(path)["step"] == 1


def test_atomic_save_skips_the_folder_fsync_where_folders_cannot_be_opened(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(training, "_FOLDERS_CAN_BE_FSYNCED", False)  # as on Windows
    events = _record_fsyncs_and_renames(monkeypatch)
    path = tmp_path / "checkpoint.pt"
    training.atomic_save({"step": 1}, path)
    assert [what for what, _ in events] == ["fsync file", "replace"]
    assert torch.load(path)["step"] == 1


def test_atomic_save_replaces_an_older_checkpoint(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    training.atomic_save({"step": 1}, path)
    training.atomic_save({"step": 2}, path)
    assert torch.load(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_failure_mid_write_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "checkpoint.pt"
    training.atomic_save({"step": 1}, path)

    def torn_save(obj, file) -> None:
        file.write(b"PK\x03\x04" + b"\0" * 64)  # the start of a zip file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        training.atomic_save({"step": 2}, path)
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_failing_fsync_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "checkpoint.pt"
    training.atomic_save({"step": 1}, path)

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        training.atomic_save({"step": 2}, path)
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
