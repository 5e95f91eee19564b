"""What the visible checks of lesson 09 compare against, kept out of the cells.

Each `*_mistakes` function returns a dict from a hint's text (a classic mistake, and what to do
instead) to the output that mistake gives on the check's inputs; `checks.check_close` names the
mistake when a student's output matches one. The right answers come from the lesson's references
in `utils` (`text_to_text.answer_loss`, `gpt.parameter_count`, `sampling.top_k_filter`,
`gpt.cached_self_attention`, `gpt.gpt_block`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.models.attention import MultiHeadAttention, merge_heads, split_heads
from utils.models.gpt import GPTConfig, gpt_block, parameter_count
from utils.sampling import top_k_filter

# ---------------------------------------------------------------- answer_loss


def answer_loss_mistakes(model: nn.Module, batch: Any) -> dict[str, Tensor]:
    """Losses of a LanguageModelBatch that count the wrong positions, by the mistake that does so."""
    logits = model(batch.tokens)  # (B, T, V)

    def loss_where(where: Tensor) -> Tensor:
        return F.cross_entropy(logits[where], batch.targets[where])

    return {
        "the loss counts every real token, prompts included: use loss_mask, not mask":
            loss_where(batch.mask),
        "the loss counts everything but the answers: masked_fill writes where its mask is True, "
        "so the positions to hide are ~loss_mask": loss_where(~batch.loss_mask),
        "the loss counts padding too: set the targets outside loss_mask to IGNORE_INDEX (-100)":
            F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()),
        "the hidden targets became token 0 (padding) instead of IGNORE_INDEX (-100), so they still count":
            F.cross_entropy(logits.flatten(0, 1), batch.targets.masked_fill(~batch.loss_mask, 0).flatten()),
    }


# ---------------------------------------------------------------- gpt_parameter_count


def parameter_count_mistakes(c: GPTConfig) -> dict[str, int]:
    """Parameter counts of GPT(c) that leave out (or add) one term, by the term."""
    D, Fd, V, T, N = c.d_model, c.d_ff, c.vocab_size, c.max_len, c.num_layers
    right = parameter_count(c)
    per_layer = 4 * D * D + 2 * D * Fd + 9 * D + Fd
    mistakes = {
        f"the learned positions are missing: a (max_len, D) = ({T}, {D}) table": right - T * D,
        "the final LayerNorm after the last block (2D: a weight and a bias) is missing": right - 2 * D,
        "the attention's projections have biases too: 4 x (D x D + D)": right - N * 4 * D,
        "attention has four projections (q, k, v and out_proj), not three": right - N * (D * D + D),
        "the MLP's two layers have biases too (F and D)": right - N * (Fd + D),
        "each layer has two LayerNorms (before attention and before the MLP), each 2D": right - N * 2 * D,
        f"the per-layer count is not multiplied by num_layers = {N}": right - (N - 1) * per_layer,
    }
    if c.tie_embeddings:
        mistakes["the tied output layer shares the embedding's matrix: it adds no weights"] = right + V * D
    else:
        mistakes["an untied output layer (tie_embeddings=False) adds its own V x D matrix"] = right - V * D
    return mistakes


# ---------------------------------------------------------------- sample_next


def sampling_probabilities(z: Tensor, temperature: float, top_k: int | None = None) -> Tensor:
    """The distribution sample_next should draw from: logits z (V,) -> probabilities (V,)."""
    return torch.softmax(top_k_filter(z[None] / temperature, top_k)[0], dim=-1)


def sampling_mistakes(z: Tensor, temperature: float, top_k: int | None = None) -> dict[str, Tensor]:
    """Distributions that classic sampling mistakes draw from instead, by the mistake."""
    k = top_k or len(z)
    mistakes = {
        "the temperature is ignored: divide the logits by it": sampling_probabilities(z, 1.0, top_k),
        "the logits were multiplied by the temperature: divide them by it":
            sampling_probabilities(z, 1 / temperature, top_k),
        "uniform: the softmax ran over the rows (dim 0), not over the vocabulary (dim -1)":
            torch.full_like(z, 1 / len(z)),
    }
    if top_k is not None:
        mistakes["top_k is ignored: keep only the k largest logits"] = sampling_probabilities(z, temperature)
        if k > 1:
            mistakes["one token too few survives top-k: hide the logits strictly below the k-th largest "
                     "(<, not <=)"] = sampling_probabilities(z, temperature, k - 1)
    return mistakes


# ---------------------------------------------------------------- cached_attention


def _attend(attn: MultiHeadAttention, x_old: Tensor, x_new: Tensor, mask: Tensor | None = None,
            is_causal: bool = False) -> Tensor:
    """New tokens x_new (B, t, D) attending over x_old (B, P, D) and themselves -> (B, t, D)."""
    H, keys = attn.num_heads, torch.cat([x_old, x_new], dim=1)  # (B, P + t, D)
    q = split_heads(attn.q_proj(x_new), H)  # (B, H, t, Dh)
    k = split_heads(attn.k_proj(keys), H)  # (B, H, P + t, Dh)
    v = split_heads(attn.v_proj(keys), H)  # (B, H, P + t, Dh)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)  # (B, H, t, Dh)
    return attn.out_proj(merge_heads(out))  # (B, t, D)


def cached_attention_mistakes(attn: MultiHeadAttention, x_old: Tensor, x_new: Tensor) -> dict[str, Tensor]:
    """Outputs for the new tokens x_new after the cached x_old, by the KV-cache mistake that gives them."""
    P, t = x_old.shape[1], x_new.shape[1]
    bottom_right = torch.ones(t, P + t, dtype=torch.bool).tril(P)  # query i sees keys 0 .. P + i
    return {
        "a top-left causal mask (is_causal=True): with a cache the new queries are the LAST rows, so "
        "the mask must be aligned at the bottom-right corner (query i sees keys 0 .. P + i)":
            _attend(attn, x_old, x_new, is_causal=True),
        "no mask: with several new tokens, each must not see the new tokens after it (a future)":
            _attend(attn, x_old, x_new),
        "a float mask is ADDED to the scores (0 or 1), it hides nothing: make it bool (True = may attend)":
            _attend(attn, x_old, x_new, mask=bottom_right.float()),
        "the cached keys and values were ignored: concatenate past (k, v) before the new ones (dim 2)":
            _attend(attn, x_old[:, :0], x_new, is_causal=True),
    }


# ---------------------------------------------------------------- GPTBlock


def gpt_block_like(mine: nn.Module) -> nn.Module:
    """The course's GPT block (`utils.models.gpt.gpt_block`) holding the weights of `mine`
    (a module with norm1, self_attn, norm2, feed_forward), in mine's train/eval mode."""
    ref = gpt_block(mine.self_attn.d_model, mine.self_attn.num_heads,
                    mine.feed_forward.net[0].out_features)
    ref.attn_branch.norm.load_state_dict(mine.norm1.state_dict())
    ref.self_attn.load_state_dict(mine.self_attn.state_dict())
    ref.ff_branch.norm.load_state_dict(mine.norm2.state_dict())
    ref.feed_forward.load_state_dict(mine.feed_forward.state_dict())
    return ref.train(mine.training)


def gpt_block_mistakes(mine: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Outputs of `mine`'s sublayers wired up wrongly, by the classic mistake: x (B, T, D) -> (B, T, D)."""
    n1, n2, mlp = mine.norm1, mine.norm2, mine.feed_forward

    def attn(h: Tensor, causal: bool = True) -> Tensor:
        return mine.self_attn(h, h, h, is_causal=causal, need_weights=False)[0]

    after_attn = x + attn(n1(x))  # the right first half
    right = after_attn + mlp(n2(after_attn))
    post = n1(x + attn(x))
    h1 = n1(x)
    normed_stream = h1 + attn(h1)
    h2 = n2(normed_stream)
    mlp_first = x + mlp(n2(x))
    return {
        "that is the post-norm order, LN(x + f(x)); a GPT block is pre-norm: x + f(LN(x))":
            n2(post + mlp(post)),
        "no causal mask: pass is_causal=True to the attention, so that token t never sees t+1, t+2, ...":
            (x + attn(n1(x), causal=False)) + mlp(n2(x + attn(n1(x), causal=False))),
        "the attention's residual is missing: add its output to x, x + attn(LN(x))":
            attn(n1(x)) + mlp(n2(attn(n1(x)))),
        "the MLP's residual is missing: the block returns x + mlp(LN(x)), not mlp(LN(x))":
            mlp(n2(after_attn)),
        "both residual connections are missing: add each sublayer's output to its input":
            mlp(n2(attn(n1(x)))),
        "the attention's residual is added twice (x + x + attn(...)): attn(LN(x)) is added to x once":
            (after_attn + x) + mlp(n2(after_attn + x)),
        "the MLP's residual is added twice (x + x + mlp(...)): mlp(LN(x)) is added to x once":
            right + after_attn,
        "the residual stream itself is normalised (x = LN(x), then x + f(x)): add f(LN(x)) to the "
        "un-normalised x": h2 + mlp(h2),
        "the residual stream itself is normalised before the attention (x = LN(x)): add attn(LN(x)) "
        "to the un-normalised x": normed_stream + mlp(n2(normed_stream)),
        "a LayerNorm on the block's output: a pre-norm block leaves its output un-normalised (GPT "
        "normalises once, after the last block)": n2(right),
        "the MLP runs before the attention: attention first (tokens exchange information), then the MLP":
            mlp_first + attn(n1(mlp_first)),
    }
