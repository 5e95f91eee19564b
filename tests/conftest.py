"""Fixtures shared by the repository's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from course_tools.config import repo_root


@pytest.fixture(scope="session")
def root() -> Path:
    return repo_root()


@pytest.fixture
def code_notebook():
    """Write a notebook of code cells: code_notebook(path, "x = 1", ...) -> path."""
    import nbformat

    def write(path: Path, *sources: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
        return path

    return write


@pytest.fixture
def course_copy(tmp_path: Path, root: Path) -> Path:
    """A scratch copy of the course's sources (pyproject, solutions, notebooks)."""
    copy = tmp_path / "course"
    copy.mkdir()
    shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
    for folder in ("solutions", "notebooks"):
        shutil.copytree(root / folder, copy / folder)
    return copy


def _padded_batch(lengths=(7, 3, 5), extra: int = 4, vocab: int = 20, seed: int = 0):
    """Token ids (B, T) padded with 0 after each row's length, and the mask (B, T), True = real."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths) + extra
    tokens = torch.randint(1, vocab, (len(lengths), longest), generator=generator)  # (B, T)
    mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return tokens.masked_fill(~mask, 0), mask


def _assert_rows_as_if_alone(model, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row of the padded batch gets the output it gets alone, without padding; returns
    the batch's output."""
    batched = model(tokens, mask)
    for row in range(tokens.shape[0]):
        n = int(mask[row].sum())
        alone = model(tokens[row : row + 1, :n], mask[row : row + 1, :n])
        torch.testing.assert_close(batched[row : row + 1], alone)
    return batched


@pytest.fixture
def padded_batch():
    """`padded_batch(lengths=..., extra=...)` -> (tokens (B, T), mask (B, T)) for sequence models."""
    return _padded_batch


@pytest.fixture
def assert_rows_as_if_alone():
    """`assert_rows_as_if_alone(model, tokens, mask)`: padding never changes a row's output."""
    return _assert_rows_as_if_alone


def _regression_batches():
    """Endless batches of (x (16, 4), x.sum(1)): a linear model can fit them exactly."""
    generator = torch.Generator().manual_seed(0)
    while True:
        x = torch.randn(16, 4, generator=generator)
        yield x, x.sum(1, keepdim=True)


def _mse(model, batch) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


@pytest.fixture
def regression():
    """(batches, loss_fn) of a tiny regression task, for tests of training loops and caches."""
    return _regression_batches(), _mse
