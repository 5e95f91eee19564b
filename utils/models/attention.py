"""Attention as the course builds it: lesson 05 (scaled dot-product attention and masks),
lesson 06 (multi-head attention), the KV-cache savers of today's LLMs (grouped-query and
sliding-window attention, options of `MultiHeadAttention`) and lesson 10 (the FlashAttention
algorithm).

Shape letters: B batch, H heads, L or T length (Lq queries, Lk keys), D model width
(`d_model`), Dh head width (`head_dim`). Masks are boolean and **True means "may attend"**,
as in `F.scaled_dot_product_attention` (`nn.MultiheadAttention` uses the opposite).

Conventions every function here shares:
- a query whose keys are all masked attends to nothing: its weights and its output are
  zeros (never NaN), and so are the gradients that flow through it;
- `is_causal=True` hides the future with a top-left aligned mask (query i sees keys
  0..i, whatever Lk is), like `F.scaled_dot_product_attention`; given together with a
  `mask`, both apply (a key is visible only where the mask allows it *and* j <= i).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from utils.models.positions import RotaryEmbedding

# --------------------------------------------------------------------------------------
# Masks (lesson 05)
# --------------------------------------------------------------------------------------


def causal_mask(
    seq_len_q: int, seq_len_k: int | None = None, device: torch.device | str | None = None
) -> Tensor:
    """(Lq, Lk) bool mask, True where query i may attend to key j, i.e. j <= i."""
    seq_len_k = seq_len_q if seq_len_k is None else seq_len_k
    # Lower triangle, aligned at the top-left corner like F.scaled_dot_product_attention:
    # query 0 sees key 0 only, whatever Lk is.
    return torch.ones(seq_len_q, seq_len_k, dtype=torch.bool, device=device).tril()


def sliding_window_mask(
    seq_len: int, window: int, device: torch.device | str | None = None, offset: int = 0,
    seq_len_k: int | None = None,
) -> Tensor:
    """(Lq, Lk) bool mask of causal sliding-window attention (Beltagy et al. 2020,
    "Longformer"; Jiang et al. 2023, "Mistral 7B"): query i may attend to key j iff
    i - W < j <= i, its W most recent positions, itself included.

    Query i sits at absolute position offset + i; the Lk keys (default Lq + offset) are the
    last Lk positions up to the last query's, so a cache that dropped old keys still lines up.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1 (the positions each query sees), got {window!r}")
    seq_len_k = seq_len + offset if seq_len_k is None else seq_len_k
    q_pos = torch.arange(offset, offset + seq_len, device=device)  # (Lq,)
    k_pos = torch.arange(offset + seq_len - seq_len_k, offset + seq_len, device=device)  # (Lk,)
    behind = q_pos[:, None] - k_pos[None, :]  # (Lq, Lk): how far key j lies behind query i
    return (behind >= 0) & (behind < window)


def padding_mask(lengths_or_mask: Tensor, max_len: int | None = None) -> Tensor:
    """(B, 1, 1, L) bool mask, True at real tokens, from lengths (B,) or a token mask (B, L)."""
    x = lengths_or_mask
    if not isinstance(x, Tensor):
        raise TypeError(f"padding_mask takes lengths (B,) or a bool mask (B, L), got {x!r}")
    if x.dtype == torch.bool and x.dim() == 2:
        token_mask = x  # (B, L), True = real token
    elif not x.is_floating_point() and x.dtype != torch.bool and x.dim() == 1:
        if (x < 0).any():
            raise ValueError(f"lengths must be >= 0, got {x.tolist()}")
        longest = int(x.max()) if x.numel() else 0
        max_len = longest if max_len is None else max_len
        if longest > max_len:
            raise ValueError(f"a length ({longest}) exceeds max_len={max_len}")
        positions = torch.arange(max_len, device=x.device)  # (L,)
        token_mask = positions[None, :] < x[:, None]  # (B, L)
    else:
        raise ValueError(
            "padding_mask takes integer lengths of shape (B,) or a bool token mask of shape "
            f"(B, L) (True = real token), got dtype {x.dtype} and shape {tuple(x.shape)}"
        )
    # Two singleton dims so that it broadcasts over heads and queries: (B, H, Lq, Lk).
    return token_mask[:, None, None, :]  # (B, 1, 1, L)


def _visible(
    mask: Tensor | None, is_causal: bool, scores_shape: torch.Size, device: torch.device
) -> Tensor | None:
    """The keys each query may see, broadcastable to scores_shape (..., Lq, Lk); None = all."""
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a bool tensor (True = may attend), got {type(mask)}")
        if mask.dtype != torch.bool:
            raise TypeError(
                f"mask must be bool, True = may attend; got dtype {mask.dtype}. "
                "A 0/1 mask: pass mask.bool(); an additive mask (0 or -inf): pass mask == 0."
            )
        try:
            fits = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                f"{tuple(scores_shape)} = (..., Lq, Lk). A key padding mask has shape "
                "(B, 1, 1, Lk) (see padding_mask); a causal one (Lq, Lk) (see causal_mask)."
            )
        if mask.device != device:
            raise ValueError(f"mask is on {mask.device} but the scores are on {device}")
    if is_causal:
        future_hidden = causal_mask(scores_shape[-2], scores_shape[-1], device)  # (Lq, Lk)
        mask = future_hidden if mask is None else mask & future_hidden
    return mask


# --------------------------------------------------------------------------------------
# Scaled dot-product attention (lesson 05)
# --------------------------------------------------------------------------------------


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """Raise an error that names the shapes if q, k, v cannot be attended together."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have shape (..., L, D), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dim (head_dim) to be compared: got q "
            f"{tuple(q.shape)} and k {tuple(k.shape)}. Were q and k projected to the same width?"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same length (dim -2), one value per key: got k "
            f"{tuple(k.shape)} and v {tuple(v.shape)}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, head) dims of q, k, v must match or broadcast: got q "
            f"{tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        ) from None


def attention_scores(q: Tensor, k: Tensor, scale: float | None = None) -> Tensor:
    """Every query against every key, q kᵀ · scale: (..., Lq, Dh), (..., Lk, Dh) -> (..., Lq, Lk);
    `scale` defaults to 1/√Dh."""
    # Why √Dh: for unit-variance q and k a dot product has variance Dh; dividing by √Dh
    # keeps the scores near 1, where softmax still has useful gradients.
    # Scaling q (Lq·Dh numbers) instead of the scores (Lq·Lk numbers) is the same, cheaper.
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return (q * scale) @ k.transpose(-2, -1)  # (..., Lq, Lk)


def attention_weights(
    q: Tensor, k: Tensor, mask: Tensor | None = None, is_causal: bool = False
) -> Tensor:
    """softmax(q kᵀ / √Dh) over keys: (..., Lq, Dh), (..., Lk, Dh) -> (..., Lq, Lk)."""
    scores = attention_scores(q, k)  # (..., Lq, Lk)
    mask = _visible(mask, is_causal, scores.shape, scores.device)
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: masked keys get 0
    # A query whose keys are all masked would get softmax([-inf, ...]) = 0/0 = NaN, and the
    # NaN would spread into every gradient. Such a query attends to nothing: we give its row
    # finite scores so that softmax stays finite, then set its weights to zero.
    has_key = mask.any(dim=-1, keepdim=True)  # (..., Lq, 1)
    scores = scores.masked_fill(~has_key, 0.0)
    return torch.softmax(scores, dim=-1).masked_fill(~has_key, 0.0)


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, is_causal: bool = False
) -> tuple[Tensor, Tensor]:
    """Attention (Vaswani et al. 2017, eq. 1): q (..., Lq, Dh), k (..., Lk, Dh),
    v (..., Lk, Dv) -> (output (..., Lq, Dv), weights (..., Lq, Lk)).

    `mask` is bool, broadcastable to (..., Lq, Lk), True = may attend. A query with no
    visible key gets zero weights and a zero output. `is_causal` and `mask` combine.
    """
    _check_qkv(q, k, v)
    weights = attention_weights(q, k, mask, is_causal)  # (..., Lq, Lk)
    return weights @ v, weights  # (..., Lq, Dv): each output is a weighted mean of values


# --------------------------------------------------------------------------------------
# Multi-head attention (lesson 06)
# --------------------------------------------------------------------------------------


def repeat_kv(x: Tensor, num_heads: int) -> Tensor:
    """(B, Hkv, L, Dh) -> (B, num_heads, L, Dh): query head h reads key/value head
    h // (num_heads / Hkv), as grouped-query attention pairs them.

    A copy (what `repeat_interleave(group, dim=1)` gives), not a grouped 5-D view: every
    mask of the course, (B, 1, 1, Lk) or (Lq, Lk), and the fused kernel expect
    (B, H, L, Dh). The copy lives for one call; the cache keeps the Hkv heads only.
    """
    B, Hkv, L, Dh = x.shape
    group = num_heads // Hkv
    if group == 1:
        return x
    return x[:, :, None].expand(B, Hkv, group, L, Dh).reshape(B, num_heads, L, Dh)  # (B, H, L, Dh)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, D) -> (B, H, T, Dh): each head gets its own slice of Dh = D / H features."""
    B, T, D = x.shape
    if D % num_heads != 0:
        raise ValueError(f"the last dim ({D}) must be divisible by num_heads={num_heads}")
    x = x.reshape(B, T, num_heads, D // num_heads)  # (B, T, H, Dh), a view of contiguous x
    return x.transpose(1, 2)  # (B, H, T, Dh): heads become a batch dim for the matmuls


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, Dh) -> (B, T, D): concatenate the heads' outputs feature-wise."""
    B, H, T, Dh = x.shape
    x = x.transpose(1, 2)  # (B, T, H, Dh)
    return x.reshape(B, T, H * Dh)  # (B, T, D); copies, since the transpose is not contiguous


def _fused_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, dropout_p: float
) -> Tensor:
    """Our explicit path's output via PyTorch's fused kernel: (B, H, L, Dh) -> (B, H, Lq, Dh)."""
    if mask is None:  # the kernel has its own causal mask (top-left aligned, like ours)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal)
    mask = _visible(mask, is_causal, q.shape[:-1] + k.shape[-2:-1], q.device)
    # Keep our convention for queries with no visible key (zero output, no NaN): let such a
    # row see every key, so the kernel stays finite, then zero its output.
    has_key = mask.any(dim=-1, keepdim=True)  # (..., Lq, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~has_key, dropout_p=dropout_p)
    return out.masked_fill(~has_key, 0.0)


def attend_heads(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    is_causal: bool = False,
    need_weights: bool = False,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor | None]:
    """Attention of split heads, q (B, H, Lq, Dh), k, v (B, H, Lk, Dh) ->
    (output (B, H, Lq, Dh), weights (B, H, Lq, Lk) or None).

    The one rule for the fused kernel: `need_weights=True` takes the explicit path of
    lesson 05 (it keeps the weights, taken before dropout, to look at); otherwise
    `F.scaled_dot_product_attention` gives the same output without storing the (Lq, Lk)
    weights. Both follow this module's conventions for masks and keyless queries.
    `dropout_p` (on the weights) is the caller's: 0 outside training.
    """
    if not need_weights:
        return _fused_attention(q, k, v, mask, is_causal, dropout_p), None
    weights = attention_weights(q, k, mask, is_causal)  # (B, H, Lq, Lk)
    return F.dropout(weights, dropout_p, training=dropout_p > 0) @ v, weights  # (B, H, Lq, Dh)


def _after_cached(mask: Tensor | None, t: int, offset: int, device: torch.device) -> Tensor | None:
    """Causal visibility of t new queries after `offset` cached tokens, combined with `mask`:
    query i sits at position offset + i and sees keys 0 .. offset + i, a causal mask aligned at
    the bottom-right corner, (t, offset + t). One new token sees everything: no mask at all."""
    if t == 1:
        return mask
    causal = torch.ones(t, offset + t, dtype=torch.bool, device=device).tril(offset)
    return causal if mask is None else mask & causal


class KVCache:
    """The keys and values of the tokens a decoder has seen, one (k, v) pair per layer, each
    (B, Hkv, P, Dh): each new token then costs one position's work, not the whole prefix's.

    A self-attention layer appends its new tokens' keys and values at every step; a
    cross-attention layer stores those of the encoder's memory once. With grouped-query
    attention only the Hkv key/value heads are stored. A sliding-window layer asks `append`
    to keep only its last W - 1 positions: with the next token's own, exactly the W its
    window sees, so the memory stays bounded however long the text grows.
    """

    def __init__(self, layers: list[tuple[Tensor, Tensor]] | None = None,
                 seen: list[int] | None = None):
        self.layers: list[tuple[Tensor, Tensor]] = [] if layers is None else list(layers)
        # Positions seen per layer: more than the stored ones once a window dropped some.
        self.seen: list[int] = [k.shape[2] for k, _ in self.layers] if seen is None else list(seen)

    def length(self, layer: int = 0) -> int:
        """P, the positions `layer` has seen (0 before its first append); the next token's
        position. Without a window, also the positions it stores."""
        return self.seen[layer] if layer < len(self.layers) else 0

    def append(self, layer: int, k: Tensor, v: Tensor, keep: int | None = None
               ) -> tuple[Tensor, Tensor]:
        """Add the keys and values (B, Hkv, t, Dh) of t new tokens to `layer` (layers fill in
        order, 0 first) -> the layer's stored keys and values followed by the new ones,
        (B, Hkv, S + t, Dh). With `keep`, the layer then stores only its last `keep` positions."""
        if layer == len(self.layers):
            self.layers.append((k, v))
            self.seen.append(k.shape[2])
        else:
            past_k, past_v = self.layers[layer]
            # Old keys are never recomputed, only joined by the new ones.
            self.layers[layer] = (torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2))
            self.seen[layer] += k.shape[2]
        both = self.layers[layer]
        if keep is not None and both[0].shape[2] > keep:
            # A copy, not a view: a view would hold on to the whole longer tensor.
            self.layers[layer] = tuple(x[:, :, x.shape[2] - keep:].clone() for x in both)
        return both

    def copy(self) -> KVCache:
        """A cache that can grow without changing this one (the tensors are shared, not copied)."""
        return KVCache(self.layers, self.seen)

    def nbytes(self) -> int:
        """Bytes of the stored keys and values, all layers."""
        return sum(x.nelement() * x.element_size() for kv in self.layers for x in kv)

    def map(self, fn: Callable[[Tensor], Tensor]) -> KVCache:
        """A cache with `fn` applied to every tensor (e.g. reordering beams along dim 0)."""
        return KVCache([(fn(k), fn(v)) for k, v in self.layers], self.seen)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2), batch first: (B, T, D).

    `rotary=True` rotates queries and keys by their positions (RoPE, Su et al. 2021) after
    the head split, so that scores depend on positions only through their offset; it has
    no parameters. `num_kv_heads=Hkv` (a divisor of H) projects keys and values to Hkv heads
    only, each shared by H / Hkv query heads (GQA; MQA when 1): k_proj, v_proj are then
    Linear(D, Hkv·Dh). `window=W` makes causal attention a sliding window (query i sees keys
    i - W < j <= i), and a KV cache then keeps only the last W - 1 positions.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 rotary: bool = False, num_kv_heads: int | None = None, window: int | None = None):
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            fits = [h for h in range(1, d_model + 1) if d_model % h == 0]
            raise ValueError(
                f"d_model={d_model} must be divisible by num_heads={num_heads}, so that each "
                f"head gets head_dim = d_model / num_heads features; num_heads could be one "
                f"of {fits}"
            )
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads < 1 or num_heads % num_kv_heads != 0:
            fits = [h for h in range(1, num_heads + 1) if num_heads % h == 0]
            raise ValueError(
                f"num_heads={num_heads} must be divisible by num_kv_heads={num_kv_heads}, so that "
                f"each key/value head serves a whole group of query heads; num_kv_heads could be "
                f"one of {fits} (1: multi-query, {num_heads}: plain multi-head)"
            )
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be an int >= 1 or None (full attention), got {window!r}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        # Grouped-query attention (Ainslie et al. 2023, "GQA"; multi-query when 1, Shazeer 2019,
        # "Fast Transformer Decoding: One Write-Head is All You Need"): fewer key/value heads,
        # so a KV cache H / Hkv times smaller. Hkv = H is the plain multi-head attention.
        self.num_kv_heads = num_kv_heads
        self.window = window  # causal sliding window: each query sees its last `window` positions
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, kv_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, kv_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)  # on the attention weights, as nn.MultiheadAttention
        self.rotary = RotaryEmbedding(self.head_dim) if rotary else None

    def forward(
        self,
        query: Tensor,
        key: Tensor | None,
        value: Tensor | None,
        mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> tuple[Tensor, Tensor | None]:
        """(B, Lq, D), (B, Lk, D), (B, Lk, D) -> (output (B, Lq, D), weights (B, H, Lq, Lk)).

        `mask`: bool, broadcastable to (B, H, Lq, Lk), True = may attend. The weights are
        taken before dropout. `need_weights=False` returns `(output, None)` through
        `F.scaled_dot_product_attention` (a fused kernel: faster, less memory, same result).

        With a `cache`, the keys and values of `key`/`value` join the P that `layer` of the
        cache holds, and the queries sit at positions P.. (causal: query i sees keys 0..P+i);
        `key=value=None` attends to the cached ones alone (an encoder's memory).
        """
        self._check_inputs(query, key, value)
        if key is None and cache is None:
            raise ValueError("key and value may be None only with a cache that holds them")
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, H, Lq, Dh)
        offset = 0 if cache is None else cache.length(layer)  # P tokens already seen
        if key is None:  # everything is in the cache
            k, v = cache.layers[layer]  # (B, Hkv, P, Dh)
        else:
            k, v = self.keys_values(key, value)  # (B, Hkv, Lk, Dh) each
            if self.rotary is not None:  # each pair of features turned by its position's angle
                # at its absolute position, before caching: a key keeps its rotation for good,
                # so a window's cache may drop old keys without re-rotating the rest.
                q, k = self.rotary(q, k, offset)
            if cache is not None:
                keep = None if self.window is None else self.window - 1
                k, v = cache.append(layer, k, v, keep)  # (B, Hkv, S + Lk, Dh)
        if self.window is not None:
            mask, is_causal = self._windowed(mask, is_causal, q.shape[2], k.shape[2], offset, q.device)
        elif cache is not None and is_causal:
            mask, is_causal = _after_cached(mask, q.shape[2], offset, q.device), False
        k, v = repeat_kv(k, self.num_heads), repeat_kv(v, self.num_heads)  # (B, H, Lk, Dh): each head's keys
        dropout_p = self.dropout.p if self.training else 0.0
        out, weights = attend_heads(q, k, v, mask, is_causal, need_weights, dropout_p)
        return self.out_proj(merge_heads(out)), weights  # (B, Lq, D)

    def keys_values(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """The key/value heads: (B, Lk, D), (B, Lk, D) -> (B, Hkv, Lk, Dh) each (Hkv = H
        unless grouped-query)."""
        k = split_heads(self.k_proj(key), self.num_kv_heads)  # (B, Hkv, Lk, Dh)
        v = split_heads(self.v_proj(value), self.num_kv_heads)  # (B, Hkv, Lk, Dh)
        return k, v

    def _windowed(self, mask: Tensor | None, is_causal: bool, t: int, seq_len_k: int, offset: int,
                  device: torch.device) -> tuple[Tensor | None, bool]:
        """The sliding window's visibility of t queries after `offset` seen positions over the
        last seq_len_k keys, combined with `mask` -> (mask, is_causal=False)."""
        if not is_causal:
            raise ValueError(f"window={self.window} is a causal sliding window: call with is_causal=True")
        if offset == 0 and seq_len_k != t:
            raise ValueError(f"windowed self-attention needs as many keys as queries, got "
                             f"{seq_len_k} keys for {t} queries")
        if t == 1 and seq_len_k <= self.window:
            return mask, False  # one new token and a cache of W - 1: every key is in its window
        band = sliding_window_mask(t, self.window, device, offset=offset, seq_len_k=seq_len_k)
        return (band if mask is None else mask & band), False

    def _check_inputs(self, query: Tensor, key: Tensor | None, value: Tensor | None) -> None:
        given = [("query", query)] + [(n, x) for n, x in (("key", key), ("value", value)) if x is not None]
        for name, x in given:
            if x.dim() != 3 or x.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must have shape (B, T, d_model={self.d_model}) (batch first), got "
                    f"{tuple(x.shape)}. A (T, B, D) tensor from a batch_first=False model? "
                    "Transpose it with .transpose(0, 1)."
                )
        if len({x.shape[0] for _, x in given}) != 1:
            raise ValueError(
                "query, key, value must share the batch size, got "
                + ", ".join(str(tuple(x.shape)) for _, x in given)
            )
        if (key is None) != (value is None):
            raise ValueError("key and value must both be given, or both be None (cached)")
        if key is not None and key.shape[1] != value.shape[1]:
            raise ValueError(
                f"key and value must have the same length, got {tuple(key.shape)} and "
                f"{tuple(value.shape)}"
            )

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A MultiHeadAttention with the same weights as `mha` (its in_proj cut into q, k, v)."""
        if not mha._qkv_same_embed_dim:
            raise ValueError("from_torch needs kdim == vdim == embed_dim (one packed in_proj)")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("from_torch does not support add_bias_kv or add_zero_attn")
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=bias)
        new = new.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        projections = (new.q_proj, new.k_proj, new.v_proj)
        with torch.no_grad():
            # nn.MultiheadAttention stacks the three projections: rows [q; k; v], (3D, D).
            for proj, weight in zip(projections, mha.in_proj_weight.chunk(3), strict=True):
                proj.weight.copy_(weight)
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                for proj, b in zip(projections, mha.in_proj_bias.chunk(3), strict=True):
                    proj.bias.copy_(b)
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new

    def to_torch(self) -> nn.MultiheadAttention:
        """An `nn.MultiheadAttention(batch_first=True)` with the same weights as this module."""
        if self.rotary is not None:
            raise ValueError("nn.MultiheadAttention has no rotary positions: to_torch needs rotary=False")
        if self.num_kv_heads != self.num_heads or self.window is not None:
            raise ValueError("nn.MultiheadAttention has neither grouped K/V heads nor a window: "
                             "to_torch needs num_kv_heads=num_heads and window=None")
        bias = self.q_proj.bias is not None
        weight = self.q_proj.weight
        mha = nn.MultiheadAttention(
            self.d_model, self.num_heads, dropout=self.dropout.p, bias=bias, batch_first=True
        ).to(device=weight.device, dtype=weight.dtype)
        projections = (self.q_proj, self.k_proj, self.v_proj)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))  # (3D, D)
            mha.out_proj.weight.copy_(self.out_proj.weight)
            if bias:
                mha.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))  # (3D,)
                mha.out_proj.bias.copy_(self.out_proj.bias)
        return mha


# --------------------------------------------------------------------------------------
# FlashAttention in PyTorch (lesson 10): Dao et al. 2022, "FlashAttention: Fast and
# Memory-Efficient Exact Attention with IO-Awareness", algorithms 1 (forward) and 2
# (backward), in the FlashAttention-2 loop order (Dao 2023): queries outside, keys inside.
# --------------------------------------------------------------------------------------

_FLASH_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def online_softmax_update(
    m: Tensor, l: Tensor, acc: Tensor, scores: Tensor, v_block: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Fold one key block into the running softmax: m, l (..., Bq), acc (..., Bq, Dv),
    scores (..., Bq, Bk), v_block (..., Bk, Dv) -> new (m, l, acc).

    Invariant after every block: m is the largest score seen so far in each row,
    l = Σ exp(s - m) over the keys seen, acc = Σ exp(s - m) v; so softmax(s) @ v = acc / l.
    Masked scores are -inf; a row that has seen only -inf keeps m = -inf and l = acc = 0.
    """
    m_new = torch.maximum(m, scores.amax(dim=-1))  # (..., Bq)
    # Subtract the new max before exp (so nothing overflows); for rows still at -inf,
    # subtract 0 instead, since -inf - (-inf) would be NaN. Their exps are 0 either way.
    shift = torch.where(m_new == float("-inf"), torch.zeros_like(m_new), m_new)
    p = torch.exp(scores - shift[..., None])  # (..., Bq, Bk), unnormalised probabilities
    alpha = torch.exp(m - shift)  # (..., Bq): e^(m_old - m_new) <= 1 rescales the old sums
    l = alpha * l + p.sum(dim=-1)  # (..., Bq)
    acc = alpha[..., None] * acc + p @ v_block  # (..., Bq, Dv)
    return m_new, l, acc


def key_blocks(
    q_start: int, q_end: int, seq_len_k: int, block_size: int, is_causal: bool
) -> list[tuple[int, int, bool]]:
    """(start, end, needs_mask) of the key blocks that queries q_start..q_end-1 can see."""
    # Causal: key j is visible from query i iff j <= i, so blocks that start after the
    # block's last query (q_end - 1) are hidden from all of its rows: skip them entirely.
    stop = min(seq_len_k, q_end) if is_causal else seq_len_k
    blocks = []
    for k_start in range(0, stop, block_size):
        k_end = min(k_start + block_size, seq_len_k)
        # Only blocks that cross the diagonal hold a future key (j > i) for some row.
        blocks.append((k_start, k_end, is_causal and k_end - 1 > q_start))
    return blocks


def _block_scores(
    q_block: Tensor, k_block: Tensor, q_start: int, k_start: int, needs_mask: bool
) -> Tensor:
    """Scaled scores of one tile: (N, Bq, D), (N, Bk, D) -> (N, Bq, Bk), -inf above diagonal."""
    scores = q_block @ k_block.transpose(1, 2)  # (N, Bq, Bk); q_block is already scaled
    if needs_mask:
        rows = torch.arange(q_start, q_start + q_block.shape[1], device=scores.device)
        cols = torch.arange(k_start, k_start + k_block.shape[1], device=scores.device)
        visible = rows[:, None] >= cols[None, :]  # (Bq, Bk): key j <= query i
        scores = scores.masked_fill(~visible, float("-inf"))
    return scores


def flash_attention_forward(
    q: Tensor, k: Tensor, v: Tensor, block_size: int = 64, is_causal: bool = False
) -> tuple[Tensor, Tensor]:
    """Tiled forward pass: q (N, Lq, D), k (N, Lk, D), v (N, Lk, Dv) ->
    (out (N, Lq, Dv), logsumexp (N, Lq)); the largest temporary is one (Bq, Bk) tile."""
    N, Lq, D = q.shape
    Lk, Dv = k.shape[1], v.shape[2]
    scale = 1.0 / math.sqrt(D)
    out = q.new_empty(N, Lq, Dv)
    logsumexp = q.new_empty(N, Lq)
    for q_start in range(0, Lq, block_size):
        q_end = min(q_start + block_size, Lq)
        q_block = q[:, q_start:q_end] * scale  # (N, Bq, D)
        m = q.new_full((N, q_end - q_start), float("-inf"))  # running max per query
        l = q.new_zeros(N, q_end - q_start)  # running sum of exp(s - m)
        acc = q.new_zeros(N, q_end - q_start, Dv)  # running sum of exp(s - m) v
        for k_start, k_end, needs_mask in key_blocks(q_start, q_end, Lk, block_size, is_causal):
            scores = _block_scores(q_block, k[:, k_start:k_end], q_start, k_start, needs_mask)
            m, l, acc = online_softmax_update(m, l, acc, scores, v[:, k_start:k_end])
        # Every row saw at least key 0 (top-left causal), so l >= 1: no division by zero.
        out[:, q_start:q_end] = acc / l[..., None]  # (N, Bq, Dv)
        logsumexp[:, q_start:q_end] = m + torch.log(l)  # all the backward needs of the softmax
    return out, logsumexp


def flash_attention_backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    logsumexp: Tensor,
    block_size: int = 64,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Tiled backward pass: grad_out (N, Lq, Dv) and the forward's saved tensors ->
    (dq (N, Lq, D), dk (N, Lk, D), dv (N, Lk, Dv)); recomputes each tile's probabilities."""
    N, Lq, D = q.shape
    Lk = k.shape[1]
    scale = 1.0 / math.sqrt(D)
    # For softmax P = softmax(S), dS = P * (dP - rowsum(dP * P)); and rowsum(dP * P) equals
    # rowsum(dO * O) (Dao et al. 2022, appendix B.2), a cheap (N, Lq) vector.
    delta = (grad_out * out).sum(dim=-1)  # (N, Lq)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for q_start in range(0, Lq, block_size):
        q_end = min(q_start + block_size, Lq)
        q_block = q[:, q_start:q_end] * scale  # (N, Bq, D)
        do_block = grad_out[:, q_start:q_end]  # (N, Bq, Dv)
        lse_block = logsumexp[:, q_start:q_end, None]  # (N, Bq, 1)
        delta_block = delta[:, q_start:q_end, None]  # (N, Bq, 1)
        for k_start, k_end, needs_mask in key_blocks(q_start, q_end, Lk, block_size, is_causal):
            k_block, v_block = k[:, k_start:k_end], v[:, k_start:k_end]  # (N, Bk, D), (N, Bk, Dv)
            scores = _block_scores(q_block, k_block, q_start, k_start, needs_mask)
            p = torch.exp(scores - lse_block)  # (N, Bq, Bk): the forward's softmax, recomputed
            dv[:, k_start:k_end] += p.transpose(1, 2) @ do_block  # (N, Bk, Dv)
            dp = do_block @ v_block.transpose(1, 2)  # (N, Bq, Bk)
            ds = p * (dp - delta_block)  # (N, Bq, Bk): gradient of the scaled scores
            dq[:, q_start:q_end] += (ds @ k_block) * scale  # (N, Bq, D)
            dk[:, k_start:k_end] += ds.transpose(1, 2) @ q_block  # (N, Bk, D); q_block is scaled
    return dq, dk, dv


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd for flash attention on (N, L, D) tensors: saves q, k, v, out and logsumexp,
    never the (Lq, Lk) probabilities, and recomputes them tile by tile in the backward."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, q: Tensor, k: Tensor, v: Tensor, block_size: int, is_causal: bool
    ) -> Tensor:
        """(N, Lq, D), (N, Lk, D), (N, Lk, Dv) -> (N, Lq, Dv)."""
        # Half precision is accumulated in float32, like the fused kernels do.
        compute = torch.float64 if q.dtype == torch.float64 else torch.float32
        qc, kc, vc = q.to(compute), k.to(compute), v.to(compute)
        out, logsumexp = flash_attention_forward(qc, kc, vc, block_size, is_causal)
        ctx.save_for_backward(qc, kc, vc, out, logsumexp)
        ctx.block_size, ctx.is_causal, ctx.dtype = block_size, is_causal, q.dtype
        return out.to(q.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """(N, Lq, Dv) -> (dq, dk, dv, None, None)."""
        q, k, v, out, logsumexp = ctx.saved_tensors
        grad_out = grad_out.to(q.dtype)
        dq, dk, dv = flash_attention_backward(
            grad_out, q, k, v, out, logsumexp, ctx.block_size, ctx.is_causal
        )
        return dq.to(ctx.dtype), dk.to(ctx.dtype), dv.to(ctx.dtype), None, None


def _check_flash_inputs(q: Tensor, k: Tensor, v: Tensor, block_size: int) -> None:
    _check_qkv(q, k, v)
    if q.dtype not in _FLASH_DTYPES:
        raise TypeError(
            f"flash_attention supports float16, bfloat16, float32 and float64, got {q.dtype}"
        )
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    if k.shape[-2] == 0:
        raise ValueError(f"flash_attention needs at least one key, got k of shape {tuple(k.shape)}")


def flash_attention(
    q: Tensor, k: Tensor, v: Tensor, block_size: int = 64, is_causal: bool = False
) -> Tensor:
    """Exact attention in tiles with an online softmax (FlashAttention, Dao et al. 2022):
    q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) -> (..., Lq, Dv).

    Equals `F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)` in values and
    gradients, but never materialises the (Lq, Lk) score matrix: memory grows like L, not
    L². Causal is top-left aligned, like SDPA. Non-contiguous inputs are accepted (copied);
    leading dims broadcast. Slower than SDPA here: each tile is several PyTorch calls, where
    a real kernel (see `utils.models.triton_attention`) keeps the tile in on-chip memory.
    """
    _check_flash_inputs(q, k, v, block_size)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    Lq, D, Lk, Dv = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    # Flatten every leading (batch, head) dim into one, N; expand() lets autograd sum the
    # gradients of broadcast dims for us.
    N = math.prod(batch)
    q3 = q.expand(*batch, Lq, D).reshape(N, Lq, D)  # (N, Lq, D)
    k3 = k.expand(*batch, Lk, D).reshape(N, Lk, D)  # (N, Lk, D)
    v3 = v.expand(*batch, Lk, Dv).reshape(N, Lk, Dv)  # (N, Lk, Dv)
    out = FlashAttentionFunction.apply(q3, k3, v3, block_size, is_causal)  # (N, Lq, Dv)
    return out.reshape(*batch, Lq, Dv)  # (..., Lq, Dv)
