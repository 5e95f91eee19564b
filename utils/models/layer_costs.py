"""Table 1 of Vaswani et al. (2017), "Attention Is All You Need", measured on the course's
own layers (lesson 05) instead of derived on paper.

For a sequence of n vectors of width d, the paper compares three kinds of layer by
- complexity per layer: the arithmetic it does, here counted exactly with PyTorch's
  `FlopCounterMode` and fitted as n^a d^b;
- sequential operations: how many operations must run one after another, here the length
  of the longest chain in the autograd graph (the critical path: everything off that
  chain could run in parallel);
- maximum path length: how many layer applications a signal from input position 1 goes
  through before it reaches output position n, here read off gradients (the first stack
  depth, or recurrence window, at which d y_n / d x_1 stops being exactly zero).

Every layer maps (B, T, D) -> (B, T, D). Shape letters: B batch, T = n length, D = d width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from utils.models.attention import MultiHeadAttention
from utils.models.cnn import DilatedConvEncoder
from utils.models.rnn import SimpleRNN

KINDS = ("self-attention", "recurrent", "convolutional", "dilated convolutional")

# The paper's Table 1 (n length, d width, k kernel size, r neighbourhood of restricted attention).
PAPER_TABLE = {
    "self-attention": ("O(n²·d)", "O(1)", "O(1)"),
    "recurrent": ("O(n·d²)", "O(n)", "O(n)"),
    "convolutional": ("O(k·n·d²)", "O(1)", "O(n/k) contiguous"),
    "dilated convolutional": ("O(k·n·d²)", "O(1)", "O(log_k(n))"),
}
PAPER_COLUMNS = ("complexity per layer", "sequential operations", "maximum path length")


class SelfAttentionLayer(nn.Module):
    """Multi-head self-attention as one layer: (B, T, D) -> (B, T, D)."""

    def __init__(self, d_model: int, num_heads: int = 1):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        # The explicit path of lesson 05 (q kᵀ, softmax, @ v), not a fused kernel: every
        # product it does is visible to the FLOP counter.
        return self.attn(x, x, x, need_weights=True)[0]  # (B, T, D)


class RecurrentLayer(nn.Module):
    """Lesson 01's `SimpleRNN` (an Elman cell run left to right): (B, T, D) -> (B, T, D)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.rnn = SimpleRNN(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]  # (B, T, D)


def make_layer(kind: str, d_model: int, *, num_layers: int = 1, kernel_size: int = 3,
               num_heads: int = 1) -> nn.Module:
    """A stack of `num_layers` layers of one of `KINDS`: (B, T, D) -> (B, T, D).

    Convolutions are lesson 02's `DilatedConvEncoder` (residual, causal windows: output t
    sees inputs up to t); the dilated one doubles its dilation at every layer, 1, 2, 4, ...
    """
    if kind == "self-attention":
        return nn.Sequential(*(SelfAttentionLayer(d_model, num_heads) for _ in range(num_layers)))
    if kind == "recurrent":
        return nn.Sequential(*(RecurrentLayer(d_model) for _ in range(num_layers)))
    if kind == "convolutional":
        return DilatedConvEncoder(d_model, kernel_size, dilations=(1,) * num_layers, causal=True)
    if kind == "dilated convolutional":
        dilations = tuple(2**i for i in range(num_layers))
        return DilatedConvEncoder(d_model, kernel_size, dilations=dilations, causal=True)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


# ---------------------------------------------------------------- complexity per layer


class _FlopCounter(TorchDispatchMode):
    """Adds up the FLOPs of every matrix product and convolution dispatched while active,
    with the formulas of `torch.utils.flop_counter` (a multiply-add counts 2). Lighter than
    `FlopCounterMode`, which also tracks modules and costs ~1 ms per op: too slow for an
    RNN's thousands of small steps."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of the matrix products and convolutions that `fn()` runs."""
    with _FlopCounter() as counter:
        fn()
    return counter.flops


def layer_flops(kind: str, seq_len: int, d_model: int, kernel_size: int = 3) -> int:
    """FLOPs of one layer of `kind` on one sequence of shape (1, n, d), counted on the CPU.

    (PyTorch's "meta" device would skip the arithmetic, but its first use costs seconds.)"""
    layer = make_layer(kind, d_model, kernel_size=kernel_size)
    x = torch.zeros(1, seq_len, d_model)  # (B, T, D)
    with torch.no_grad():
        return count_flops(lambda: layer(x))


def growth_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: y ∝ x^slope."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need two or more (x, y) pairs of equal length, got {len(xs)} and {len(ys)}")
    lx = torch.tensor([math.log(x) for x in xs], dtype=torch.float64)
    ly = torch.tensor([math.log(y) for y in ys], dtype=torch.float64)
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())


# ---------------------------------------------------------------- sequential operations


def critical_path_length(output: Tensor) -> int:
    """Operations on the longest chain of the autograd graph that produced `output`: the
    number of steps that must run one after another, however many processors there are."""
    if output.grad_fn is None:
        raise ValueError("output has no autograd graph: compute it from inputs with requires_grad=True")
    depth: dict[object, int] = {}
    stack: list[tuple[object, bool]] = [(output.grad_fn, False)]
    while stack:  # iterative post-order DFS: an RNN's graph is thousands of nodes deep
        node, expanded = stack.pop()
        if node in depth:
            continue
        parents = [p for p, _ in node.next_functions if p is not None]
        if expanded:
            depth[node] = 1 + max((depth[p] for p in parents), default=0)
        else:
            stack.append((node, True))
            stack.extend((p, False) for p in parents if p not in depth)
    return depth[output.grad_fn]


def sequential_operations(kind: str, seq_len: int, d_model: int = 8) -> int:
    """Critical path length of one layer of `kind` on a (1, n, d) input."""
    layer = make_layer(kind, d_model)
    x = torch.randn(1, seq_len, d_model, requires_grad=True)  # (B, T, D)
    return critical_path_length(layer(x))


# ---------------------------------------------------------------- maximum path length


def _reaches_first(output_last: Tensor, x: Tensor) -> bool:
    """Whether output_last depends on x[:, 0]: its gradient there is not exactly zero."""
    (grad,) = torch.autograd.grad(output_last.sum(), x, retain_graph=True, allow_unused=True)
    return grad is not None and bool(grad[:, 0].abs().sum() > 0)


def path_length(kind: str, seq_len: int, d_model: int = 32, max_hops: int | None = None,
                seed: int = 0) -> int:
    """Layer applications between input position 1 and output position n, read off gradients.

    Stacked layers (attention, convolutions): the smallest depth L such that output n of an
    L-layer stack depends on input 1. Recurrent: the smallest number w of recurrence steps
    that gradients may flow through (the hidden state before the last w steps is detached)
    for output n to depend on input 1. Computed in float64, so that no gradient underflows.
    """
    if max_hops is None:  # enough for every kind (dilations double, so few layers suffice)
        max_hops = seq_len if kind != "dilated convolutional" else math.ceil(math.log2(seq_len)) + 1
    torch.manual_seed(seed)
    x = torch.randn(1, seq_len, d_model, dtype=torch.float64, requires_grad=True)  # (1, n, d)
    if kind == "recurrent":
        cell = SimpleRNN(d_model, d_model).double().cell
        for window in range(1, max_hops + 1):
            h = x.new_zeros(1, d_model)  # (1, d)
            for t in range(seq_len):
                if t == seq_len - window:
                    h = h.detach()  # gradients stop here: only the last `window` steps remain
                h = cell(x[:, t], h)  # (1, d)
            if _reaches_first(h, x):
                return window
        raise ValueError(f"no window up to {max_hops} steps connects the ends of {seq_len} positions")
    if kind == "self-attention":  # one stack, read after each of its layers
        layers = make_layer(kind, d_model, num_layers=max_hops).double()
        h = x
        for depth, layer in enumerate(layers, start=1):
            h = layer(h)  # (1, n, d)
            if _reaches_first(h[:, -1], x):
                return depth
    else:  # a convolutional encoder: read each convolution's output during one forward pass
        encoder = make_layer(kind, d_model, num_layers=max_hops).double()
        outputs: list[Tensor] = []
        hooks = [conv.register_forward_hook(lambda _m, _i, out: outputs.append(out))
                 for conv in encoder.convs]
        try:
            encoder(x)
        finally:
            for hook in hooks:
                hook.remove()
        # Layer L adds relu(conv_L(h)) to the residual stream h: output n first depends on
        # input 1 at the first layer whose convolution output (B, D, T) at n does.
        for depth, out in enumerate(outputs, start=1):
            if _reaches_first(out[..., -1], x):
                return depth
    raise ValueError(f"no stack of up to {max_hops} {kind} layers connects the ends of {seq_len} positions")
