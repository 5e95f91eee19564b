"""Beam search with length normalisation (lesson 08), over the step interface of
`utils.decoding` (so it decodes the recurrent models of lessons 03-04 and the Transformer).

Greedy decoding keeps the single most likely token at each step and can never undo a choice.
Beam search keeps the K most likely *prefixes* (hypotheses): at each step it extends every
hypothesis by every token, scores each of the K·V candidates by the sum of its tokens'
log-probabilities, and keeps the K best. With K = 1 it is greedy decoding.

A sum of log-probabilities only falls as a sentence grows, so raw scores prefer short
translations. Length normalisation ranks the finished hypotheses by score / length^α instead
(α = 0: raw scores; α = 1: mean log-probability per token). Wu et al. (2016, "Google's neural
machine translation system", section 7) use ((5 + length) / 6)^α, a gentler variant; Vaswani
et al. (2017) decode with K = 4 and α = 0.6.

A hypothesis that emits <eos> is finished: it stays in the beam with its score frozen (its
only continuation is padding, at no cost), so that it competes with the live hypotheses.
"""

from __future__ import annotations

import torch
from torch import Tensor

from utils.decoding import State, StepFn, map_state


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """The divisor of length normalisation: lengths (...,) -> lengths^alpha (float)."""
    return lengths.float().clamp(min=1) ** alpha


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: State,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.6,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
    return_scores: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The best of `beam_size` hypotheses per sentence, by log-probability / length^alpha.

    `step(tokens (N, t), state) -> (logits (N, V), state)` as in `utils.decoding`; `state`
    holds one row per sentence (batch on dim 0). Returns (B, T) token ids without <bos>, each
    row ending at its first <eos>, then `pad_id` (the format of `greedy_decode`); with
    `return_scores`, also the (B,) normalised scores of the chosen hypotheses.
    """
    if beam_size < 1 or max_len < 1 or batch_size < 1:
        raise ValueError(f"beam_search needs beam_size, max_len and batch_size >= 1, got "
                         f"{beam_size=}, {max_len=}, {batch_size=}")
    B, K = batch_size, beam_size
    # Every sentence gets K rows: row b*K + k is hypothesis k of sentence b.
    state = map_state(state, lambda x: x.repeat_interleave(K, dim=0))  # (B*K, ...)
    tokens = torch.full((B * K, 1), bos_id, dtype=torch.long, device=device)  # (B*K, 1)
    # All K rows start as the same empty hypothesis: keep only the first alive at step one,
    # or the beam would fill with K copies of the same sentence.
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # (B, K): summed log-probabilities
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)  # (B*K,)
    lengths = torch.zeros(B * K, dtype=torch.long, device=device)  # tokens up to <eos>, included
    offsets = torch.arange(B, device=device)[:, None] * K  # (B, 1): first row of each sentence

    for _ in range(max_len):
        logits, state = step(tokens, state)  # (B*K, V)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        V = log_probs.shape[-1]
        # A finished hypothesis may only be continued by padding, and that costs nothing.
        frozen = torch.full_like(log_probs[0], float("-inf"))
        frozen[pad_id] = 0.0
        log_probs = torch.where(finished[:, None], frozen, log_probs)
        candidates = scores.reshape(B * K, 1) + log_probs  # (B*K, V)
        scores, best = candidates.reshape(B, K * V).topk(K, dim=-1)  # (B, K) each
        beam, token = best // V, best % V  # which hypothesis each survivor extends, by what
        rows = (offsets + beam).reshape(B * K)  # (B*K,): the parent row of each survivor
        tokens = torch.cat([tokens[rows], token.reshape(B * K, 1)], dim=1)  # (B*K, t+1)
        state = map_state(state, lambda x, rows=rows: x.index_select(0, rows))
        lengths = lengths[rows] + (~finished[rows]).long()
        finished = finished[rows] | (token.reshape(B * K) == eos_id)
        if bool(finished.all()):
            break

    normalised = scores / length_penalty(lengths.reshape(B, K), alpha)  # (B, K)
    best_score, best_beam = normalised.max(dim=-1)  # (B,)
    out = tokens[(offsets[:, 0] + best_beam)][:, 1:]  # (B, T): drop <bos>
    out = _trim(out, pad_id)
    return (out, best_score) if return_scores else out


def _trim(tokens: Tensor, pad_id: int) -> Tensor:
    """Drop trailing columns that hold only padding: (B, T) -> (B, T' <= T)."""
    keep = (tokens != pad_id).any(dim=0).nonzero()
    return tokens[:, : int(keep.max()) + 1] if len(keep) else tokens[:, :1]
