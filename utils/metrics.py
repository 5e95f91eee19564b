"""Evaluation metrics: corpus BLEU (lessons 03, 04 and 08) and accuracy.

`bleu` is corpus BLEU as Papineni et al. (2002) define it, computed exactly as sacrebleu's
`corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none")` on the space-joined
tokens, so that the course's numbers can be compared with published ones:

- clipped n-gram precisions p1..p4, each summed over the whole corpus before dividing;
- their geometric mean, times the brevity penalty exp(1 - r/c) when the corpus of
  hypotheses (c tokens) is shorter than the references (r tokens);
- no smoothing: if some order has no match at all (or no n-gram at all), BLEU is 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

MAX_ORDER = 4


def ngrams(tokens: Sequence[Hashable], n: int) -> Counter:
    """Counts of every n-gram (a tuple of n tokens) in `tokens`."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass(frozen=True)
class BleuStats:
    """BLEU's sufficient statistics: summed over sentences, they give corpus BLEU."""

    matches: tuple[int, ...]  # clipped n-gram matches, n = 1..4
    totals: tuple[int, ...]  # n-grams in the hypotheses, n = 1..4
    hyp_len: int
    ref_len: int

    def __add__(self, other: BleuStats) -> BleuStats:
        return BleuStats(tuple(a + b for a, b in zip(self.matches, other.matches, strict=True)),
                         tuple(a + b for a, b in zip(self.totals, other.totals, strict=True)),
                         self.hyp_len + other.hyp_len, self.ref_len + other.ref_len)

    @property
    def brevity_penalty(self) -> float:
        """1 if the hypotheses are at least as long as the references, else exp(1 - r/c)."""
        if self.hyp_len >= self.ref_len:
            return 1.0
        return math.exp(1 - self.ref_len / self.hyp_len) if self.hyp_len > 0 else 0.0

    @property
    def precisions(self) -> tuple[float, ...]:
        """Clipped n-gram precisions in percent (0 where there is no n-gram of that order)."""
        return tuple(100.0 * m / t if t else 0.0 for m, t in zip(self.matches, self.totals, strict=True))

    @property
    def score(self) -> float:
        """Corpus BLEU in 0-100 (no smoothing: 0 as soon as one order has no match)."""
        if not all(self.matches):
            return 0.0
        log_mean = sum(math.log(p) for p in self.precisions) / len(self.precisions)
        return self.brevity_penalty * math.exp(log_mean)


def _check_tokens(tokens: Any, what: str) -> Sequence[Hashable]:
    if isinstance(tokens, str):
        raise TypeError(f"{what} must be a list of tokens, got the string {tokens[:40]!r}: "
                        "split it first (sentence.split())")
    if isinstance(tokens, torch.Tensor):
        raise TypeError(f"{what} must be a list of tokens, got a tensor: convert ids to tokens "
                        "first (and cut them at <eos>)")
    for token in tokens:
        if isinstance(token, str) and (not token or token != "".join(token.split())):
            raise ValueError(f"{what} holds the token {token!r}: tokens must be non-empty and "
                             "contain no whitespace (BLEU splits on spaces)")
    return tokens


def sentence_stats(hypothesis: Sequence[Hashable], reference: Sequence[Hashable],
                   max_order: int = MAX_ORDER) -> BleuStats:
    """Clipped n-gram matches and totals of one hypothesis against its reference."""
    matches, totals = [], []
    for n in range(1, max_order + 1):
        hyp, ref = ngrams(hypothesis, n), ngrams(reference, n)
        # Clipping: a hypothesis n-gram counts at most as often as it occurs in the reference.
        matches.append(sum(min(count, ref[gram]) for gram, count in hyp.items()))
        totals.append(max(len(hypothesis) - n + 1, 0))
    return BleuStats(tuple(matches), tuple(totals), len(hypothesis), len(reference))


def bleu(hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]) -> float:
    """Corpus BLEU (0-100) of token lists against one reference token list each."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("bleu takes lists of token lists, e.g. [['le', 'chat', '.']], not a string")
    if len(hypotheses) != len(references):
        raise ValueError(f"bleu needs one reference per hypothesis: got {len(hypotheses)} hypotheses "
                         f"and {len(references)} references")
    total = BleuStats((0,) * MAX_ORDER, (0,) * MAX_ORDER, 0, 0)
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        total = total + sentence_stats(_check_tokens(hyp, f"hypotheses[{i}]"),
                                       _check_tokens(ref, f"references[{i}]"))
    return total.score


def bleu_by_length(
    hypotheses: Sequence[Sequence[Hashable]],
    references: Sequence[Sequence[Hashable]],
    lengths: Sequence[int],
    edges: Sequence[int],
) -> Any:
    """Corpus BLEU per bucket of `lengths` (usually source lengths): a pandas DataFrame.

    `edges` [a, b, c] makes buckets [a, b) and [b, c); sentences outside them are left out.
    Columns: `bucket` ("a-(b-1)"), `low`, `high` (inclusive), `sentences`, `BLEU`.
    """
    import pandas as pd

    if not len(hypotheses) == len(references) == len(lengths):
        raise ValueError(f"need as many lengths as sentence pairs: {len(hypotheses)} hypotheses, "
                         f"{len(references)} references, {len(lengths)} lengths")
    edges = list(edges)
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"edges must be at least two increasing numbers, got {edges}")
    rows = []
    for low, high in zip(edges, edges[1:], strict=False):
        chosen = [i for i, n in enumerate(lengths) if low <= n < high]
        rows.append({"bucket": f"{low}-{high - 1}", "low": low, "high": high - 1,
                     "sentences": len(chosen),
                     "BLEU": bleu([hypotheses[i] for i in chosen], [references[i] for i in chosen])
                     if chosen else float("nan")})
    return pd.DataFrame(rows)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose argmax equals the label: logits (N, C), labels (N,)."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits (N, C) and labels (N,) disagree: {tuple(logits.shape)} vs "
                         f"{tuple(labels.shape)}")
    return (logits.argmax(-1) == labels).float().mean().item()
