"""Recurrent networks as lesson 01 builds them: a vanilla RNN cell, the loop that runs it over
a sequence, and a GRU sentiment classifier.

Shape letters: B batch, T length, E embedding width, H hidden width, C classes, V vocabulary.
Token masks are boolean, **True = real token**, and padding sits at the end of each row.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class RNNCell(nn.Module):
    """One step of an Elman RNN: h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh); (B, E), (B, H) -> (B, H).

    The parameters are named and initialised as in `nn.RNN` (uniform in ±1/√H), so the
    weights of one can be copied into the other.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """x (B, E), h (B, H) -> the next hidden state (B, H)."""
        return torch.tanh(x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)


class SimpleRNN(nn.Module):
    """An `RNNCell` run left to right over a sequence: (B, T, E) -> outputs (B, T, H), h_T (B, H)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = RNNCell(input_size, hidden_size)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, E), h0 (B, H) or None (zeros) -> (outputs (B, T, H), last state (B, H))."""
        if x.dim() != 3:
            raise ValueError(f"SimpleRNN takes a batch-first sequence (B, T, E), got {tuple(x.shape)}")
        h = x.new_zeros(x.shape[0], self.cell.hidden_size) if h0 is None else h0  # (B, H)
        outputs = []
        for t in range(x.shape[1]):  # T dependent steps: step t needs h from step t-1
            h = self.cell(x[:, t], h)  # (B, H)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h  # (B, T, H), (B, H)

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> SimpleRNN:
        """A copy of a one-layer, unidirectional, batch-first tanh `nn.RNN` with its weights."""
        if rnn.num_layers != 1 or rnn.bidirectional or rnn.nonlinearity != "tanh" or not rnn.bias:
            raise ValueError("from_torch copies a one-layer, unidirectional tanh nn.RNN with biases")
        model = cls(rnn.input_size, rnn.hidden_size)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(model.cell, name).copy_(getattr(rnn, f"{name}_l0"))
        return model


def lengths_from_mask(mask: Tensor) -> Tensor:
    """Lengths (B,) of a right-padded token mask (B, T), True = real token; checks the layout."""
    if mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError(f"mask must be bool (B, T), True = real token; got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    lengths = mask.sum(1)  # (B,)
    positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    if not torch.equal(mask, positions[None, :] < lengths[:, None]):
        raise ValueError("the mask is not right-padded (True...True False...False per row): "
                         "is it inverted (True must mark real tokens)?")
    if (lengths == 0).any():
        raise ValueError("a sequence in the batch is empty (its mask row is all False)")
    return lengths


def last_real(outputs: Tensor, mask: Tensor) -> Tensor:
    """Each row's output at its last real token: (B, T, H), mask (B, T) -> (B, H)."""
    last = lengths_from_mask(mask) - 1  # (B,)
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), last]  # (B, H)


class GRUClassifier(nn.Module):
    """Embedding -> GRU -> the state after the last real token -> logits: (B, T) -> (B, C).

    A unidirectional GRU's output at a real position depends only on the tokens before it,
    so reading each row at its own last real token makes trailing padding irrelevant.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 128,
                 num_classes: int = 2, num_layers: int = 1, pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.gru = nn.GRU(embed_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def classify(self, embedded: Tensor, mask: Tensor) -> Tensor:
        """Logits from already-embedded tokens (B, T, E) (for gradients w.r.t. inputs) -> (B, C)."""
        outputs, _ = self.gru(embedded)  # (B, T, H)
        return self.head(last_real(outputs, mask))  # (B, C)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """tokens (B, T), mask (B, T) True = real token -> logits (B, C)."""
        return self.classify(self.embedding(tokens), mask)
