"""What the visible checks of lesson 08 compare against, kept out of the cells.

The right answers come from the course's references (`utils.models.transformer.DecoderBlock`,
`utils.models.translation_transformer`, `utils.beam_search`, `utils.training.train_steps`);
this module holds the classic *wrong* ones. Each `..._mistakes` function returns a dict from a
hint (the mistake, in the words a student reads) to the output that mistake gives on the check's
inputs, for `checks.check_close(..., mistakes=...)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.checks import Slip, known_slips
from utils.models.transformer import DecoderBlock
from utils.models.translation_transformer import warmup_scheduler

# ---------------------------------------------------------------- the decoder layer


def course_block(d_model: int, num_heads: int, d_ff: int, seed: int = 0) -> DecoderBlock:
    """The course's DecoderBlock in eval mode, its three LayerNorms given distinct random
    weights (fresh ones are all 1 and 0, which would hide a norm used in the wrong place)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = DecoderBlock(d_model, num_heads, d_ff).eval()
    with torch.no_grad():
        for branch in (block.self_branch, block.cross_branch, block.ff_branch):
            branch.norm.weight.copy_(1 + 0.5 * torch.randn(d_model, generator=generator))
            branch.norm.bias.copy_(0.5 * torch.randn(d_model, generator=generator))
    return block


def copy_from_course_block(layer: nn.Module, block: DecoderBlock) -> nn.Module:
    """Load the weights of the course's DecoderBlock into the lesson's DecoderLayer (norms renamed)."""
    rename = {"self_branch.norm": "norm1", "cross_branch.norm": "norm2", "ff_branch.norm": "norm3"}
    state = {}
    for key, value in block.state_dict().items():
        for old, new in rename.items():
            key = key.replace(old, new)
        state[key] = value
    layer.load_state_dict(state)
    return layer.eval()


def _decoder(block: DecoderBlock, y: Tensor, memory: Tensor, memory_mask: Tensor | None, *,
             causal: bool = True, pre_norm: bool = True, use_mask: bool = True, cross_kv: str = "memory",
             ff_residual: bool = True, norms: tuple[int, int, int] = (0, 1, 2)) -> Tensor:
    """What a DecoderBlock computes, with one of its ingredients changed (for hints)."""
    key_mask = memory_mask[:, None, None, :] if use_mask and memory_mask is not None else None

    def cross(h: Tensor) -> Tensor:
        kv = memory if cross_kv == "memory" else h
        return block.cross_attn(h, kv, kv, mask=key_mask if cross_kv == "memory" else None)[0]

    sublayers = [lambda h: block.self_attn(h, h, h, is_causal=causal)[0], cross, block.feed_forward]
    all_norms = [block.self_branch.norm, block.cross_branch.norm, block.ff_branch.norm]
    for i, (f, n) in enumerate(zip(sublayers, norms, strict=True)):
        norm = all_norms[n]
        residual = ff_residual or i < 2
        if pre_norm:
            y = (y if residual else 0) + f(norm(y))
        else:
            y = norm((y if residual else 0) + f(y))
    return y


def decoder_layer_mistakes(block: DecoderBlock, y: Tensor, memory: Tensor,
                           memory_mask: Tensor | None) -> dict[str, Tensor]:
    """Outputs (B, T, D) of the classic mistakes in a pre-norm decoder block."""
    mistakes = {
        "self-attention without the causal mask: pass is_causal=True, else every position sees "
        "the words it must predict": _decoder(block, y, memory, memory_mask, causal=False),
        "post-norm (norm(y + f(y))): this block is pre-norm, y + f(norm(y))":
            _decoder(block, y, memory, memory_mask, pre_norm=False),
        "cross-attention over the decoder's own states: its queries come from the decoder, its keys "
        "and values from the encoder's memory": _decoder(block, y, memory, memory_mask, cross_kv="self"),
        "the feed-forward sublayer has no residual: return y + feed_forward(norm3(y))":
            _decoder(block, y, memory, memory_mask, ff_residual=False),
        "the same LayerNorm for two sublayers: each sublayer has its own (norm1, norm2, norm3, in order)":
            _decoder(block, y, memory, memory_mask, norms=(0, 0, 2)),
    }
    if memory_mask is not None:
        mistakes["the source padding mask is ignored in cross-attention: pass it as mask=, (B, 1, 1, S)"] = \
            _decoder(block, y, memory, memory_mask, use_mask=False)
    return mistakes


# ---------------------------------------------------------------- label smoothing


def label_smoothing_mistakes(logits: Tensor, targets: Tensor, smoothing: float,
                             ignore_index: int = 0) -> dict[str, Tensor]:
    """Losses (scalars) of the classic mistakes in the label-smoothed cross-entropy."""
    log_probs = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    V = logits.shape[-1]
    keep = targets != ignore_index  # (B, T)

    def mix(log_p: Tensor, nll_sign: float = 1.0, spread: str = "mean") -> Tensor:
        nll = -nll_sign * log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
        if spread == "mean":
            uniform = -log_p.mean(-1)
        elif spread == "sum":
            uniform = -log_p.sum(-1)
        else:  # over the V - 1 wrong tokens only
            others = F.one_hot(targets, V) == 0
            uniform = -(log_p * others).sum(-1) / (V - 1)
        return (1 - smoothing) * nll + smoothing * uniform  # (B, T)

    right = mix(log_probs)

    def mean_over_real(loss: Tensor) -> Tensor:
        return (loss * keep).sum() / keep.sum()

    return {
        "plain cross-entropy: the smoothing term is missing":
            mean_over_real(-log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)),
        "padding counted: average over the targets != ignore_index only": right.mean(),
        "divided by all B*T positions, padding included: divide by the number of real tokens":
            (right * keep).sum() / keep.numel(),
        "probabilities where log-probabilities belong: use log_softmax, not softmax":
            mean_over_real(mix(torch.softmax(logits, dim=-1))),
        "the softmax ran over the positions (dim 1): normalise over the vocabulary, dim=-1":
            mean_over_real(mix(torch.log_softmax(logits, dim=1))),
        "the smoothing term sums -log p over the V tokens: average it (epsilon/V on each token)":
            mean_over_real(mix(log_probs, spread="sum")),
        "epsilon spread over the V-1 wrong tokens; here it goes over all V (as in PyTorch)":
            mean_over_real(mix(log_probs, spread="others")),
        "the -log p of the right token lost its minus sign": mean_over_real(mix(log_probs, nll_sign=-1.0)),
    }


# ---------------------------------------------------------------- the warm-up schedule


def warmup_lr_mistakes(steps: list[int], d_model: int, warmup_steps: int,
                       factor: float = 1.0) -> dict[str, Tensor]:
    """Learning rates (float64, one per step) of the classic mistakes in eq. 3 of Vaswani et al."""
    def rates(rate: Callable[[int], float]) -> Tensor:
        return torch.tensor([rate(s) for s in steps], dtype=torch.float64)

    D, W = d_model, warmup_steps
    return {
        "max instead of min: the rate is the smaller of the two branches":
            rates(lambda s: factor * D ** -0.5 * max(s ** -0.5, s * W ** -1.5)),
        "D^0.5 instead of D^-0.5: a wider model takes smaller steps":
            rates(lambda s: factor * D ** 0.5 * min(s ** -0.5, s * W ** -1.5)),
        "warmup^-0.5 instead of warmup^-1.5: the two branches must meet at step = warmup_steps":
            rates(lambda s: factor * D ** -0.5 * min(s ** -0.5, s * W ** -0.5)),
        "the step counted from 0 (step + 1): the formula takes the step counted from 1":
            rates(lambda s: factor * D ** -0.5 * min((s + 1) ** -0.5, (s + 1) * W ** -1.5)),
        "factor ignored: it multiplies the whole rate":
            rates(lambda s: D ** -0.5 * min(s ** -0.5, s * W ** -1.5)),
    }


# ---------------------------------------------------------------- beam search


def unnormalised(step: Callable) -> Callable:
    """`step` with every row's logits shifted by its own constant: the same softmax, but summed raw
    logits would rank the hypotheses differently (a beam must add log-probabilities)."""
    def shifted(tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        logits, state = step(tokens, state)
        shift = 3.0 * tokens[:, -1:].to(logits.dtype)  # (N, 1): depends on the prefix
        return logits + shift, state
    return shifted


def padded_after_eos(out: Tensor, eos_id: int, pad_id: int) -> bool:
    """Whether every row of `out` (B, T) holds only `pad_id` after its first `eos_id`."""
    is_eos = (out == eos_id).long()
    after = is_eos.cumsum(dim=1) - is_eos > 0  # (B, T): strictly after the first <eos>
    return bool((out[after] == pad_id).all())


# ---------------------------------------------------------------- the training loop

LOOP_STEPS = 4


@dataclass
class Loop:
    """What a training loop was given: a tiny float64 classifier, its batches and its recipe."""

    model: nn.Module
    batches: list[tuple[Tensor, Tensor]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable[[nn.Module, Any], Tensor]
    clip_norm: float

    def args(self) -> tuple:
        return self.model, self.batches, self.optimizer, self.scheduler, self.loss_fn, self.clip_norm

    def parameters(self) -> Tensor:
        """All parameters, flattened into one float64 vector."""
        return torch.cat([p.detach().flatten() for p in self.model.parameters()])


def _classify(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def tiny_loop(seed: int = 0) -> Loop:
    """A fresh tiny training job, the same for a given seed: an MLP (3 -> 8 -> 4 classes) in float64,
    `LOOP_STEPS` batches of 6 examples, SGD with momentum under lesson 08's warm-up schedule, and a
    clip norm below the gradients' norm, so that every ingredient of a step changes the result."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    batches = [(torch.randn(6, 3, generator=generator, dtype=torch.float64),
                torch.randint(0, 4, (6,), generator=generator)) for _ in range(LOOP_STEPS)]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    scheduler = warmup_scheduler(optimizer, d_model=16, warmup_steps=2, peak_lr=2.0)
    return Loop(model, batches, optimizer, scheduler, _classify, clip_norm=0.05)


_LOOP_SLIPS: tuple[Slip, ...] = (
    (AttributeError, r"'float' object has no attribute 'backward'",
     "your loop called backward() on a Python float: loss.item() turns the loss into a number without "
     "a graph. Call loss.backward() on the tensor, and append loss.item() to the list."),
    (TypeError, r"'method' object is not iterable",
     "a method was passed where its result belongs: model.parameters() needs its parentheses "
     "(clip_grad_norm_ takes the parameters themselves)."),
)


def run_loop(train_steps: Callable, seed: int = 0) -> tuple[Any, Tensor]:
    """(what `train_steps` returned, the parameters it left) on a fresh `tiny_loop(seed)`.

    Two classic errors raised inside a loop get a hint here (the others reach `checks.exercise`)."""
    loop = tiny_loop(seed)
    with known_slips(_LOOP_SLIPS):
        losses = train_steps(*loop.args())
    return losses, loop.parameters()


def _mistaken_loop(loop: Loop, *, zero_grad: bool = True, clip: str = "before",
                   schedule: str = "after") -> Tensor:
    """The parameters a loop with one mistake leaves (clip: before / after / none / value;
    schedule: after / before / never)."""
    model, batches, optimizer, scheduler, loss_fn, clip_norm = loop.args()
    for batch in batches:
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        if clip == "before":
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        elif clip == "value":
            nn.utils.clip_grad_value_(model.parameters(), clip_norm)
        if schedule == "before":
            scheduler.step()
        optimizer.step()
        if schedule == "after":
            scheduler.step()
    return loop.parameters()


def train_steps_mistakes(seed: int = 0) -> dict[str, Tensor]:
    """Parameters (one float64 vector) that the classic mistakes in a training loop leave after
    `LOOP_STEPS` steps of `tiny_loop(seed)`. Mistakes with the same outcome share one hint."""
    import warnings

    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": we know
        warnings.simplefilter("ignore", UserWarning)
        return {
            "the parameters never moved: optimizer.step() must run after loss.backward() (both with "
            "their parentheses), and zero_grad() before backward(), never between backward() and "
            "step(), where it wipes the gradients the step needs": tiny_loop(seed).parameters(),
            "the gradients were never zeroed, so backward() added each batch's gradient to the last "
            "ones: call optimizer.zero_grad() (with the parentheses) before backward()":
                _mistaken_loop(tiny_loop(seed), zero_grad=False),
            "the step used gradients that were never clipped: clip_grad_norm_ must run after "
            "backward() and before optimizer.step() (clipping after the step comes too late)":
                _mistaken_loop(tiny_loop(seed), clip="none"),
            "the gradients were clipped element by element (clip_grad_value_): clip their global "
            "norm with nn.utils.clip_grad_norm_(model.parameters(), clip_norm)":
                _mistaken_loop(tiny_loop(seed), clip="value"),
            "the learning rate never changed: the scheduler was never stepped; call scheduler.step() "
            "once per batch, after optimizer.step()": _mistaken_loop(tiny_loop(seed), schedule="never"),
            "scheduler.step() ran before optimizer.step(), so every step used the next step's learning "
            "rate: step the optimizer first, then the scheduler": _mistaken_loop(tiny_loop(seed),
                                                                                  schedule="before"),
        }


def train_steps_bad_losses(losses: Any) -> str | None:
    """Why `losses` is not a list of one Python float per batch, or None if it is."""
    if losses is None:
        return "train_steps returned None: did you forget `return losses`?"
    if not isinstance(losses, list):
        return (f"train_steps should return a list of floats, one per batch, got {type(losses).__name__}"
                + (": return the whole list, not one loss or their mean" if isinstance(
                    losses, (float, int, Tensor)) else ""))
    if len(losses) != LOOP_STEPS:
        return (f"train_steps should return one loss per batch ({LOOP_STEPS} batches), got {len(losses)}: "
                "append inside the loop, once per batch")
    kinds = {type(value).__name__ for value in losses}
    if kinds != {"float"}:
        return (f"the losses should be Python floats, got {', '.join(sorted(kinds))}: append loss.item(); "
                "a list of tensors keeps every step's graph alive, and memory grows with each step")
    if any(not math.isfinite(value) for value in losses):
        return "a loss is not finite"
    return None
