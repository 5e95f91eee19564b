"""Convolutional sequence encoders as lesson 02 builds them: stacked dilated 1-D convolutions
(as in WaveNet, van den Oord et al. 2016, and ByteNet, Kalchbrenner et al. 2016) and a
sentiment classifier on top.

Every position is computed at once (parallel over time), but an output sees only a window of
the input, its *receptive field*: 1 + (k - 1) · Σ dilations for kernel size k.

Shape letters: B batch, T length, D channels (`d_model`), C classes, V vocabulary.
Token masks are boolean, True = real token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.models.rnn import last_real


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """How many consecutive inputs one output of stacked dilated convolutions can see."""
    if kernel_size < 1 or any(d < 1 for d in dilations):
        raise ValueError(f"need kernel_size >= 1 and dilations >= 1, got {kernel_size}, {list(dilations)}")
    # Each layer widens the window by (k - 1) gaps of d positions.
    return 1 + (kernel_size - 1) * sum(dilations)


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int = 1) -> Tensor:
    """Causal dilated convolution: x (B, T, D_in), weight (D_out, D_in, k), bias (D_out,) -> (B, T, D_out)."""
    total = dilation * (weight.shape[-1] - 1)  # all the zeros on the left: output t sees inputs <= t
    h = F.pad(x.transpose(1, 2), (total, 0))  # (B, D_in, T + total): channels before time
    return F.conv1d(h, weight, bias, dilation=dilation).transpose(1, 2)  # (B, T, D_out)


def doubling_dilations(length: int, kernel_size: int = 3) -> list[int]:
    """Fewest layers with dilations 1, 2, 4, ... whose receptive field covers `length` tokens."""
    if kernel_size < 2 and length > 1:
        raise ValueError(f"a kernel of size {kernel_size} never sees a neighbour; need kernel_size >= 2")
    dilations: list[int] = []
    while receptive_field(kernel_size, dilations) < length:
        dilations.append(2 ** len(dilations))  # doubling: the field grows exponentially with depth
    return dilations


class DilatedConvEncoder(nn.Module):
    """Residual dilated Conv1d blocks: (B, T, D), mask (B, T) -> (B, T, D).

    `causal=True` (WaveNet's choice): output t sees inputs t - RF + 1 .. t, so the last
    position summarises the sequence's end. `causal=False`: a window centred on t.
    Padded positions are zeroed before every convolution, so that they look exactly like the
    zero padding beyond the end: padding never changes a real token's output.
    """

    def __init__(self, d_model: int, kernel_size: int = 3, dilations: Sequence[int] = (1, 2, 4, 8),
                 dropout: float = 0.0, causal: bool = True) -> None:
        super().__init__()
        if not causal and kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for a centred window, got {kernel_size}")
        self.kernel_size, self.dilations, self.causal = kernel_size, tuple(dilations), causal
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel_size, dilation=d)
                                   for d in self.dilations)
        self.dropout = nn.Dropout(dropout)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernel_size, self.dilations)

    def _pad(self, h: Tensor, dilation: int) -> Tensor:
        """Zero padding so that the output keeps length T: all on the left if causal."""
        total = dilation * (self.kernel_size - 1)
        left = total if self.causal else total // 2
        return F.pad(h, (left, total - left))  # (B, D, T + total)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, T, D), mask (B, T) True = real token (None: all real) -> (B, T, D)."""
        keep = None if mask is None else mask[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, D, T): Conv1d wants channels before time
        for conv in self.convs:
            if keep is not None:
                h = h * keep  # padding must read as zeros, like the conv's own padding
            h = h + self.dropout(torch.relu(conv(self._pad(h, conv.dilation[0]))))  # (B, D, T)
        if keep is not None:
            h = h * keep
        return h.transpose(1, 2)  # (B, T, D)


def masked_max_pool(x: Tensor, mask: Tensor) -> Tensor:
    """Max over real positions: (B, T, D), mask (B, T) -> (B, D)."""
    return x.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)  # (B, D)


class CNNClassifier(nn.Module):
    """Embedding -> dilated conv encoder -> a readout -> logits: (B, T) -> (B, C).

    `readout="last"` reads the causal encoder at each row's last real token, as the GRU
    classifier does: the decision sees only the last `receptive_field` tokens.
    `readout="max"` takes the maximum over all real positions instead.
    """

    def __init__(self, vocab_size: int, d_model: int = 64, num_classes: int = 2, kernel_size: int = 3,
                 dilations: Sequence[int] = (1, 2, 4, 8), dropout: float = 0.0, readout: str = "last",
                 pad_id: int = 0) -> None:
        super().__init__()
        if readout not in ("last", "max"):
            raise ValueError(f"readout must be 'last' or 'max', got {readout!r}")
        self.readout = readout
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.encoder = DilatedConvEncoder(d_model, kernel_size, dilations, dropout, causal=True)
        self.head = nn.Linear(d_model, num_classes)

    @property
    def receptive_field(self) -> int:
        return self.encoder.receptive_field

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """tokens (B, T), mask (B, T) True = real token -> logits (B, C)."""
        h = self.encoder(self.embedding(tokens), mask)  # (B, T, D)
        pooled = last_real(h, mask) if self.readout == "last" else masked_max_pool(h, mask)  # (B, D)
        return self.head(pooled)  # (B, C)


def reachable_inputs(encoder: nn.Module, seq_len: int, position: int, d_model: int,
                     seed: int = 0, samples: int = 8) -> Tensor:
    """Which inputs reach output `position`, measured by gradients: bool (T,).

    Backpropagates from one output position to random inputs; an input position with a
    non-zero gradient lies in that output's receptive field. A trained encoder's ReLUs can
    be off along every path from one input position for one particular input, which would
    hide that position: the union over `samples` random inputs (one batch) does not miss it.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, seq_len, d_model, generator=generator, requires_grad=True)  # (S, T, D)
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder(x)  # (S, T, D)
        out[:, position].sum().backward()
    finally:
        encoder.train(was_training)
    return x.grad.abs().sum(dim=(0, 2)) > 0  # (T,)
