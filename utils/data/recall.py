"""Multi-query associative recall (Arora et al. 2023, "Zoology"; the task behind Olsson et al.
2022's induction heads): a list of key-value pairs, then some of the keys again; after each
queried key the model must emit the value that followed it in the list.

    k3 v7 k0 v2 k5 v7 k1 v4 | k5 k3 k1      ->  after k5: v7, after k3: v7, after k1: v4

One vocabulary holds both kinds of token: 0 is padding (never used, kept so that models with a
pad row fit), keys are 1 .. num_keys and values follow them. In a sequence the keys are
distinct, so every queried key appears exactly once before its query and its value is
determined; values are drawn independently (two keys may share one). Everything is a function
of the seed: the same `RecallTask` and seed give the same tensors on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

IGNORE_INDEX = -100  # positions without a target (the pairs): no loss, no accuracy


@dataclass(frozen=True)
class RecallTask:
    """Sizes of the task: `num_pairs` pairs then `num_queries` queried keys (all of the pairs'
    keys, in a new order, when None); keys and values are drawn from vocabularies of
    `num_keys` and `num_values` tokens."""

    num_pairs: int
    num_keys: int = 16
    num_values: int = 16
    num_queries: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.num_pairs <= self.num_keys:
            raise ValueError(f"need 1 <= num_pairs <= num_keys (keys are distinct), got {self}")
        if self.num_values < 2 or not 1 <= self.queries <= self.num_pairs:
            raise ValueError(f"need num_values >= 2 and 1 <= num_queries <= num_pairs, got {self}")

    @property
    def queries(self) -> int:
        return self.num_pairs if self.num_queries is None else self.num_queries

    @property
    def vocab_size(self) -> int:
        """Padding, the keys and the values."""
        return 1 + self.num_keys + self.num_values

    @property
    def length(self) -> int:
        """Tokens per sequence: two per pair, one per query."""
        return 2 * self.num_pairs + self.queries

    def key_token(self, key: Tensor | int) -> Tensor | int:
        return 1 + key

    def value_token(self, value: Tensor | int) -> Tensor | int:
        return 1 + self.num_keys + value


def recall_batch(task: RecallTask, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """`batch_size` sequences drawn with `generator` -> (tokens, targets), each (B, T) long with
    T = `task.length`: targets hold the queried key's value token at each query position and
    `IGNORE_INDEX` everywhere else."""
    B, n, q = batch_size, task.num_pairs, task.queries
    # Distinct keys per row: the first n of a random permutation of the key vocabulary.
    keys = torch.rand(B, task.num_keys, generator=generator).argsort(dim=1)[:, :n]  # (B, n)
    values = torch.randint(task.num_values, (B, n), generator=generator)  # (B, n)
    asked = torch.rand(B, n, generator=generator).argsort(dim=1)[:, :q]  # (B, q): which pairs are queried
    pairs = torch.stack([task.key_token(keys), task.value_token(values)], dim=2).reshape(B, 2 * n)  # (B, 2n)
    queries = task.key_token(keys.gather(1, asked))  # (B, q)
    tokens = torch.cat([pairs, queries], dim=1)  # (B, 2n + q)
    targets = torch.full_like(tokens, IGNORE_INDEX)
    targets[:, 2 * n:] = task.value_token(values.gather(1, asked))  # (B, q)
    return tokens, targets


def recall_batches(task: RecallTask, batch_size: int, seed: int):
    """An endless stream of fresh `recall_batch`es, reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield recall_batch(task, batch_size, generator)


def recall_test_set(task: RecallTask, size: int = 1000, seed: int = 12345) -> tuple[Tensor, Tensor]:
    """A fixed held-out set (tokens, targets), each (size, T); its seed differs from training's."""
    return recall_batch(task, size, torch.Generator().manual_seed(seed))


def render(task: RecallTask, tokens: Tensor) -> str:
    """One sequence (T,) as text, keys as k0, k1, ... and values as v0, v1, ..., with a bar
    between the pairs and the queries: "k3 v7 k0 v2 | k0"."""
    words = [f"k{t - 1}" if t <= task.num_keys else f"v{t - 1 - task.num_keys}" for t in tokens.tolist()]
    return " ".join(words[:2 * task.num_pairs] + ["|"] + words[2 * task.num_pairs:])
