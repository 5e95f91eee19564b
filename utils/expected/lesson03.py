"""What the visible checks of lesson 03 compare against, kept out of the cells.

The right answers come from the course's references (`utils.data.batching.shift_right`,
`utils.models.seq2seq.sequence_loss`, `utils.decoding.greedy_decode`, `utils.metrics.bleu`);
this module holds the classic *wrong* ones. Each `*_mistakes` function returns a dict from a hint
(the mistake, in the words a student reads) to the output that mistake gives on the check's
inputs; `looks_like` finds the one a student's output equals, whatever its shape.
`shift_errors`, `greedy_errors` and `bleu_errors` turn the exceptions this lesson's classic slips
raise (and that `checks.diagnose_exception` does not know) into a hint.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.checks import known_slips
from utils.expected.lesson02 import looks_like  # noqa: F401 - for the cells
from utils.metrics import bleu

# ---------------------------------------------------------------- shift_right


def shift_right_mistakes(tgt_out: Tensor, bos_id: int, eos_id: int, pad_id: int) -> dict[str, Tensor]:
    """Decoder inputs that the classic mistakes in teacher forcing's shift give for `tgt_out` (B, T)."""
    bos = torch.full_like(tgt_out[:, :1], bos_id)  # (B, 1)
    right = torch.cat([bos, tgt_out[:, :-1]], dim=1)  # (B, T), <eos> still in

    def no_eos(t: Tensor) -> Tensor:
        return t.masked_fill(t == eos_id, pad_id)

    longer = torch.cat([bos, tgt_out], dim=1)  # (B, T + 1)
    return {
        "the inputs are not shifted: they start with <bos>, and every token moves one step later": tgt_out,
        "the inputs are not shifted (only <eos> became padding): they start with <bos>, and every "
        "token moves one step later": no_eos(tgt_out),
        "<eos> was left in the inputs of the shorter rows: it is a target, never an input, so replace "
        "it with padding": right,
        "one column too many: drop the last column of tgt_out so that the inputs keep the targets' "
        "length T": no_eos(longer),
        "one column too many, and <eos> left in: drop the last column of tgt_out, and replace <eos> "
        "with padding": longer,
        "shifted left instead of right: <bos> comes first, then y1, y2, ... one step later":
            no_eos(torch.cat([tgt_out[:, 1:], bos], dim=1)),
        "the <eos> was looked up in tgt_out, not in the shifted inputs, so the mask is one position "
        "off: it hid the last word and kept <eos>": right.masked_fill(tgt_out == eos_id, pad_id),
        "<bos> replaced the first word instead of coming before it":
            no_eos(torch.cat([bos, tgt_out[:, 1:]], dim=1)),
    }


_BOS_COLUMN = ("torch.cat(..., dim=1) joins tensors with the same number of dims: the <bos> column must "
               "be (B, 1), like tgt_out[:, :1] (indexing with tgt_out[:, 0] drops the dim and gives (B,)).")
shift_errors = partial(known_slips, [
    (RuntimeError, r"Tensors must have same number of dimensions", _BOS_COLUMN),
    (IndexError, r"Dimension out of range", _BOS_COLUMN),
])
shift_errors.__doc__ = "Inside a check: a <bos> column of shape (B,) becomes a CheckFailed with a hint."

# ---------------------------------------------------------------- sequence_loss


def sequence_loss_mistakes(logits: Tensor, tgt_out: Tensor, pad_id: int) -> dict[str, Tensor]:
    """Losses that the classic mistakes give for logits (B, T, V) and targets (B, T)."""
    flat, target = logits.flatten(0, 1), tgt_out.flatten()  # (B*T, V), (B*T,)
    real = (tgt_out != pad_id).float()  # (B, T)
    per_token = F.cross_entropy(logits.transpose(1, 2), tgt_out, reduction="none")  # (B, T)
    mistakes = {
        "padding positions are counted too: skip them (ignore_index=pad_id)": F.cross_entropy(flat, target),
        "a sum over the real tokens, not their mean": F.cross_entropy(flat, target, ignore_index=pad_id,
                                                                      reduction="sum"),
        "a softmax before F.cross_entropy, which takes raw logits (it applies log_softmax itself)":
            F.cross_entropy(flat.softmax(-1), target, ignore_index=pad_id),
        "F.nll_loss on raw logits: it expects log-probabilities (log_softmax first); F.cross_entropy "
        "takes the logits": F.nll_loss(flat, target, ignore_index=pad_id),
        "a mean of each sentence's mean: every real token should weigh the same, whatever the length "
        "of its sentence": ((per_token * real).sum(1) / real.sum(1).clamp(min=1)).mean(),
    }
    if pad_id != 0:
        mistakes["the padding id was hard-coded as 0: use the pad_id argument"] = F.cross_entropy(
            flat, target, ignore_index=0)
    return mistakes


# ---------------------------------------------------------------- greedy_translate


def _greedy(step: Any, state: Any, batch_size: int, bos_id: int, eos_id: int, max_len: int,
            pad_id: int = 0, device: Any = "cpu", *, pad_finished: bool = True, keep_bos: bool = False,
            stop: str = "all", remember: bool = True, update_state: bool = True) -> Tensor:
    tokens = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)  # (B, 1)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)  # (B,)
    for _ in range(max_len):
        logits, new_state = step(tokens, state)  # (B, V)
        state = new_state if update_state else state
        next_token = logits.argmax(dim=-1)  # (B,)
        if pad_finished:
            next_token = next_token.masked_fill(done, pad_id)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, t + 1)
        ended = next_token == eos_id
        done = done | ended if remember else ended
        if (stop == "all" and done.all()) or (stop == "any" and done.any()):
            break
    return tokens if keep_bos else tokens[:, 1:]


@torch.no_grad()
def greedy_mistakes(step: Any, state: Any, **kwargs: Any) -> dict[str, Tensor]:
    """What the classic mistakes in batched greedy decoding return, for `step` from `state`
    (kwargs: batch_size, bos_id, eos_id, max_len, pad_id, device, as for greedy_decode)."""
    return {
        "rows go on after their <eos>: a finished row receives pad_id":
            _greedy(step, state, **kwargs, pad_finished=False),
        "the leading <bos> was kept: return the tokens after it":
            _greedy(step, state, **kwargs, keep_bos=True),
        "decoding ran all max_len steps: stop as soon as every row has written <eos>":
            _greedy(step, state, **kwargs, stop="never"),
        "decoding stopped when the first row ended: go on until every row has written <eos>":
            _greedy(step, state, **kwargs, stop="any"),
        "a finished row started writing again: once a row has written <eos> it stays finished "
        "(accumulate `done` over the steps, do not overwrite it)":
            _greedy(step, state, **kwargs, remember=False),
        "the decoder's state was never updated: keep the state that step returns and pass it to the "
        "next step": _greedy(step, state, **kwargs, update_state=False),
    }


greedy_errors = partial(known_slips, [
    (RuntimeError, r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\)",
     "one token per vocabulary entry instead of one per row: the logits are (B, V), so take the "
     "argmax over the vocabulary (dim=-1), which gives (B,)."),
    (RuntimeError, r"Tensors must have same number of dimensions",
     "torch.cat joins tensors with the same number of dims: the new tokens (B,) need a time dim, "
     "(B, 1) (next_token[:, None] or unsqueeze(1)), before they join tokens (B, t)."),
])
greedy_errors.__doc__ = "Inside a check: the classic shape slips of greedy decoding become a CheckFailed."

# ---------------------------------------------------------------- corpus_bleu


def _bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]], *, clip: bool = True,
          brevity: str = "r/c", percent: bool = True, mean: str = "geometric",
          orders: Sequence[int] = (1, 2, 3, 4), totals_from: str = "hyp") -> float:
    matches, totals = Counter(), Counter()
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
        for n in orders:
            h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            matches[n] += sum((h & r).values()) if clip else sum(c for g, c in h.items() if g in r)
            totals[n] += max((len(hyp) if totals_from == "hyp" else len(ref)) - n + 1, 0)
    if any(matches[n] == 0 for n in orders):
        return 0.0
    precisions = [matches[n] / totals[n] for n in orders]
    if mean == "geometric":
        score = math.exp(sum(math.log(p) for p in precisions) / len(precisions))
    else:
        score = sum(precisions) / len(precisions)
    if brevity == "r/c" and hyp_len < ref_len:
        score *= math.exp(1 - ref_len / hyp_len)
    elif brevity == "c/r" and hyp_len < ref_len:
        score *= math.exp(1 - hyp_len / ref_len)
    return 100 * score if percent else score


def bleu_mistakes(hypotheses: Sequence[Sequence[str]],
                  references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Scores that the classic mistakes in corpus BLEU give for these token lists."""
    pairs = list(zip(hypotheses, references, strict=True))
    return {
        "BLEU on a 0-1 scale: report it in percent (0-100)": _bleu(hypotheses, references, percent=False),
        "the brevity penalty is missing: multiply by min(1, exp(1 - r/c))":
            _bleu(hypotheses, references, brevity="none"),
        "the brevity penalty's ratio is upside down: exp(1 - r/c), with r the reference length and c "
        "the hypothesis length": _bleu(hypotheses, references, brevity="c/r"),
        "n-gram counts that are not clipped: a hypothesis n-gram counts at most as often as it occurs "
        "in the reference (Counter & Counter)": _bleu(hypotheses, references, clip=False),
        "an arithmetic mean of the precisions: BLEU takes their geometric mean, exp(mean of the logs)":
            _bleu(hypotheses, references, mean="arithmetic"),
        "the precisions divide by the reference's n-grams: a precision counts against the "
        "hypothesis's n-grams": _bleu(hypotheses, references, totals_from="ref"),
        "n-grams of n = 0, 1, 2, 3 (range(4) starts at 0): BLEU uses n = 1, 2, 3 and 4":
            _bleu(hypotheses, references, orders=(0, 1, 2, 3)),
        "0, although every n-gram order has matches here: count n = 1, 2, 3 and 4 (range(1, 5) "
        "stops before 5)": 0.0,
        "a mean of sentence BLEU scores: sum the n-gram counts over the corpus, then divide":
            sum(bleu([h], [r]) for h, r in pairs) / len(pairs),
    }


bleu_errors = partial(known_slips, [
    ((ZeroDivisionError, ValueError), r"division by zero|math domain error",
     "a log or a division by zero: an empty hypothesis, or an order n with no match, has 0 matches "
     "(and maybe 0 n-grams); BLEU has no smoothing, so return 0.0 as soon as one order has no match, "
     "before taking logs."),
])
bleu_errors.__doc__ = "Inside a check: log(0) and division by zero in BLEU become a CheckFailed with a hint."
