"""Associative recall: attention against a fixed recurrent state (lesson 07).

A GRU must fold every key-value pair it has read into one state vector of `size` numbers
before it sees the queries; a Transformer keeps every pair in its context and looks the queried
key up by attention (`utils.data.recall` describes the task). `recall_runs` lists the grid
(pair counts x models), `train_recall` trains one cell through the run cache, `load_recall`
loads its shipped checkpoint (utils/data/recall_checkpoints/, trained on one CPU thread), and

    python -m utils.experiments.recall            # train the grid, print the accuracy table
    python -m utils.experiments.recall --save     # ... and rewrite the shipped checkpoints

reproduces the table of the lesson.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.data.recall import IGNORE_INDEX, RecallTask, recall_batches, recall_test_set
from utils.experiments.common import seeded
from utils.models.gpt import GPT, GPTConfig
from utils.run_cache import cached_run
from utils.runtime import Profile
from utils.training import TrainLog, count_parameters, train


class RecallGRU(nn.Module):
    """Embedding -> GRU -> Linear, read at every position: ids (B, T) -> logits (B, T, V), or
    with targets (B, T) the mean cross-entropy over targets != -100 (GPT's interface)."""

    def __init__(self, vocab_size: int, hidden: int, embed_dim: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: Tensor, targets: Tensor | None = None) -> Tensor:
        states, _ = self.gru(self.embedding(ids))  # (B, T, H): all the GRU knows at each position
        if targets is None:
            return self.head(states)  # (B, T, V)
        keep = targets != IGNORE_INDEX  # (B, T): the query positions
        return F.cross_entropy(self.head(states[keep]), targets[keep])  # (N, V), (N,)


@dataclass(frozen=True)
class RecallRun:
    """One cell of the grid: `model` ("gru" or "transformer") of width `size` (the GRU's state,
    the Transformer's d_model) trained on `task` for `steps` AdamW steps."""

    model: str
    size: int
    task: RecallTask
    steps: int = 1000
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0


def build_model(run: RecallRun) -> nn.Module:
    """The run's model, its parameters drawn under its seed."""
    vocab = run.task.vocab_size
    if run.model == "gru":
        return seeded(run.seed, lambda: RecallGRU(vocab, run.size))
    if run.model == "transformer":
        config = GPTConfig(vocab, max_len=run.task.length, d_model=run.size, num_heads=2,
                           num_layers=2, d_ff=2 * run.size, pad_id=0)
        return seeded(run.seed, lambda: GPT(config))
    raise ValueError(f"model must be 'gru' or 'transformer', got {run.model!r}")


@torch.no_grad()
def recall_accuracy(model: nn.Module, task: RecallTask, device: torch.device | str = "cpu") -> float:
    """Share of the held-out queries whose value the model ranks first (%)."""
    tokens, targets = (t.to(device) for t in recall_test_set(task))
    model.eval()
    logits = model(tokens)  # (N, T, V)
    keep = targets != IGNORE_INDEX  # (N, T)
    return 100.0 * (logits[keep].argmax(-1) == targets[keep]).float().mean().item()


def model_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Both models return their loss when given (tokens, targets)."""
    return model(*batch)


def fit_recall(run: RecallRun, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Train `model` on fresh batches of `run.task`; its test accuracy, losses and time."""
    log = TrainLog()
    batches = recall_batches(run.task, run.batch_size, seed=run.seed)  # drawn on the CPU: same on any device
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.lr)
    seeded(run.seed, lambda: train(model, batches, model_loss, steps=run.steps, optimizer=optimizer,
                                   device=device, desc=f"{run.model}-{run.size}", log=log))
    return {"accuracy": recall_accuracy(model, run.task, device), "losses": log.losses,
            "train_seconds": log.seconds, "parameters": count_parameters(model)}


CHECKPOINTS = Path(__file__).resolve().parents[1] / "data" / "recall_checkpoints"
PAIRS = (1, 2, 4, 8)
GRU_STATES = (32, 64, 128)  # the GRU's state: 8k, 22k and 68k parameters
TRANSFORMER_WIDTH = 32  # 2 layers, 2 heads: 18-19k parameters, as many as the middle GRU
GRU_STEPS, TRANSFORMER_STEPS = 5000, 2000  # each model's loss has long flattened by then


def recall_runs(seed: int = 0) -> list[RecallRun]:
    """The grid of lesson 07: every GRU state size and the Transformer, at every pair count
    (16 keys, 16 values, every key queried)."""
    runs = []
    for pairs in PAIRS:
        task = RecallTask(pairs)
        runs += [RecallRun("gru", state, task, GRU_STEPS, seed=seed) for state in GRU_STATES]
        runs.append(RecallRun("transformer", TRANSFORMER_WIDTH, task, TRANSFORMER_STEPS, seed=seed))
    return runs


def checkpoint_path(run: RecallRun) -> Path:
    return CHECKPOINTS / f"{run.model}{run.size}-pairs{run.task.num_pairs}-seed{run.seed}.pt"


def train_recall(run: RecallRun, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Train one cell of the grid through the run cache: (model, info with "accuracy")."""
    return cached_run(f"recall-{run.model}{run.size}", run, lambda: build_model(run),
                      lambda model: fit_recall(run, model, device), device=device)


def load_recall(run: RecallRun) -> tuple[nn.Module, dict[str, Any]]:
    """The shipped checkpoint of `run` (trained by `python -m utils.experiments.recall --save`),
    with its accuracy measured again on the held-out set; trains the run if none is shipped."""
    path = checkpoint_path(run)
    if not path.is_file():
        return train_recall(run)
    model = build_model(run)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), {"accuracy": recall_accuracy(model, run.task), "parameters": count_parameters(model)}


def recall_grid(profile: Profile, device: torch.device | str) -> dict[RecallRun, dict[str, Any]]:
    """Every run of `recall_runs()`: run -> info. The CPU and grading profiles load the shipped
    checkpoints (training the grid takes minutes on a CPU); the GPU profile retrains it."""
    if profile.name == "gpu":
        return {run: train_recall(run, device)[1] for run in recall_runs()}
    return {run: load_recall(run)[1] for run in recall_runs()}


def model_label(run: RecallRun) -> str:
    return f"GRU, state {run.size}" if run.model == "gru" else f"Transformer, width {run.size}"


def accuracy_by_pairs(results: dict[RecallRun, dict[str, Any]]) -> dict[str, dict[int | str, float]]:
    """{label: {pairs: accuracy (%), ..., "parameters": the most over the pair counts}}; the
    Transformer's count grows a little with the pairs (one learned position per token)."""
    rows: dict[str, dict[int | str, float]] = {}
    for run, info in results.items():
        row = rows.setdefault(model_label(run), {"parameters": 0})
        row[run.task.num_pairs] = info["accuracy"]
        row["parameters"] = max(row["parameters"], info["parameters"])
    return rows


def recall_table(results: dict[RecallRun, dict[str, Any]]) -> str:
    """Accuracy (%) per model (rows) and pair count (columns), as text."""
    rows = accuracy_by_pairs(results)
    pairs = sorted({run.task.num_pairs for run in results})
    lines = [f"{'model':<24}{'parameters':>11}" + "".join(f"{p:>7} pairs" for p in pairs)]
    lines += [f"{label:<24}{row['parameters']:>11,.0f}"
              + "".join(f"{row.get(p, math.nan):>12.1f}" for p in pairs) for label, row in rows.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the associative-recall grid; print its table.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="rewrite the shipped checkpoints")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the shipped checkpoints were trained on one thread
    results = {}
    for run in recall_runs(args.seed):
        start = time.perf_counter()
        model, info = train_recall(run)
        results[run] = info
        print(f"{run.model}{run.size} pairs={run.task.num_pairs}: {info['accuracy']:.1f}% "
              f"({info['parameters']} parameters, {time.perf_counter() - start:.0f} s)", flush=True)
        if args.save:
            CHECKPOINTS.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, checkpoint_path(run))
    print(recall_table(results))


if __name__ == "__main__":
    main()
