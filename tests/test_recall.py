"""Associative recall: the task's properties, a tiny model that learns it, and the shipped
checkpoints of lesson 07 against a fresh run of the command that trained them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils.data.recall import IGNORE_INDEX, RecallTask, recall_batch, recall_batches, recall_test_set, render
from utils.experiments.recall import (
    RecallRun,
    build_model,
    checkpoint_path,
    fit_recall,
    load_recall,
    recall_runs,
)


def _batch(task: RecallTask, size: int = 256, seed: int = 0):
    return recall_batch(task, size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("task", [RecallTask(1), RecallTask(8), RecallTask(16, num_queries=5),
                                  RecallTask(3, num_keys=4, num_values=2)])
def test_every_query_has_one_earlier_key_and_its_value(task):
    tokens, targets = _batch(task)
    n = task.num_pairs
    assert tokens.shape == targets.shape == (256, task.length)
    keys, values = tokens[:, 0:2 * n:2], tokens[:, 1:2 * n:2]  # (B, n) each
    assert ((keys >= 1) & (keys <= task.num_keys)).all()
    assert ((values > task.num_keys) & (values < task.vocab_size)).all()
    assert (targets[:, :2 * n] == IGNORE_INDEX).all()
    for row in range(tokens.shape[0]):
        assert len(set(keys[row].tolist())) == n  # distinct keys: each value is determined
        for position in range(2 * n, task.length):
            where = (keys[row] == tokens[row, position]).nonzero().flatten()
            assert len(where) == 1  # the queried key appears exactly once before
            assert targets[row, position] == values[row, where[0]]


def test_the_task_is_a_function_of_the_seed():
    task = RecallTask(4)
    first, second = _batch(task, seed=3), _batch(task, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(_batch(task, seed=4)[0], first[0])
    stream = recall_batches(task, 8, seed=1)
    assert not torch.equal(next(stream)[0], next(stream)[0])  # fresh sequences every step
    assert not torch.equal(recall_test_set(task)[0][:8], next(recall_batches(task, 8, seed=0))[0])


def test_invalid_tasks_are_refused():
    with pytest.raises(ValueError):
        RecallTask(17)  # more pairs than distinct keys
    with pytest.raises(ValueError):
        RecallTask(2, num_queries=3)


@pytest.mark.parametrize("model", ["gru", "transformer"])
def test_a_tiny_model_learns_one_pair(model):
    run = RecallRun(model, 32, RecallTask(1, num_keys=8, num_values=8), steps=400, lr=1e-2)
    assert fit_recall(run, build_model(run))["accuracy"] >= 90


def test_every_run_of_the_grid_is_shipped():
    for run in recall_runs():
        path = checkpoint_path(run)
        assert path.is_file(), f"missing {path.name}: run `python -m utils.experiments.recall --save`"


@pytest.mark.parametrize("model, size, pairs", [("transformer", 32, 8), ("gru", 64, 2)])
def test_the_command_reproduces_the_checkpoints(model, size, pairs):
    """A fresh run (no cache) lands within a few points of its shipped checkpoint."""
    run = next(r for r in recall_runs() if (r.model, r.size, r.task.num_pairs) == (model, size, pairs))
    shipped = load_recall(run)[1]["accuracy"]
    fresh = fit_recall(run, build_model(run))["accuracy"]
    assert abs(fresh - shipped) <= 3, (fresh, shipped)


def test_a_run_is_a_frozen_record():
    run = recall_runs()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.steps = 1  # type: ignore[misc]


def test_render_shows_pairs_then_queries():
    task = RecallTask(2, num_keys=4, num_values=4)
    tokens = torch.tensor([task.key_token(3), task.value_token(0), task.key_token(1), task.value_token(2),
                           task.key_token(1), task.key_token(3)])
    assert render(task, tokens) == "k3 v0 k1 v2 | k1 k3"
