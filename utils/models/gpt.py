"""A GPT-style decoder-only Transformer (lesson 09; Radford et al. 2018, 2019), with a
KV cache for generation.

    ids (B, T) -> TokenEmbedding (learned positions) -> N x CausalSelfAttentionBlock
               -> LayerNorm -> Linear (tied to the embedding) -> logits (B, T, V)

The block is lesson 07's pre-norm block with causal self-attention: a decoder block
without cross-attention. `GPT.forward(ids, targets=None)` is all that training needs (it
returns the loss when given targets), so the model drops into any training loop, DDP's
included. Generation adds a *KV cache*: each layer keeps the keys and values of the tokens
already seen, so that each new token costs one position's work instead of the whole prefix's.
Two options of `GPTConfig` shrink that cache as today's LLMs do: `num_kv_heads` (grouped-query
attention, one K/V head per group of query heads) and `window` (sliding-window attention, a
cache of the last W - 1 tokens); both default to None, the plain GPT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.models.attention import KVCache, MultiHeadAttention
from utils.models.transformer import CausalSelfAttentionBlock, TokenEmbedding, init_weights
from utils.sampling import sample_next

IGNORE_INDEX = -100  # targets at this value carry no loss (prompt tokens, padding)


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a GPT (GPT-2 small is vocab 50257, max_len 1024, d_model 768, 12 heads, 12 layers)."""

    vocab_size: int
    max_len: int = 128  # the context: positions 0 .. max_len - 1
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.0
    tie_embeddings: bool = True
    pad_id: int | None = 0  # its embedding row stays zero; None if the vocabulary has no pad
    num_kv_heads: int | None = None  # key/value heads (GQA; 1 = multi-query); None = num_heads
    window: int | None = None  # causal sliding window of each layer's attention; None = full

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        kv = self.kv_heads
        if kv < 1 or self.num_heads % kv != 0:
            raise ValueError(f"num_heads={self.num_heads} must be divisible by num_kv_heads={kv}")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window must be >= 1 or None (full attention), got {self.window}")
        if self.vocab_size < 2 or self.max_len < 1 or self.num_layers < 1:
            raise ValueError(f"need vocab_size >= 2, max_len >= 1, num_layers >= 1; got {self}")

    @property
    def kv_heads(self) -> int:
        """Hkv, the key/value heads of each layer."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads


def kv_cache_bytes_per_token(config: GPTConfig, dtype: torch.dtype = torch.float32) -> int:
    """Bytes the KV cache grows by per token of one sequence: a key and a value of Hkv heads of
    head_dim numbers in every layer, 2 · layers · Hkv · Dh · bytes (float32: 4, float16: 2).
    MHA has Hkv = H, GQA fewer, MQA 1; a window of W caps the cache at W - 1 tokens."""
    head_dim = config.d_model // config.num_heads
    return 2 * config.num_layers * config.kv_heads * head_dim * torch.finfo(dtype).bits // 8


def cached_self_attention(attn: MultiHeadAttention, x: Tensor,
                          past: tuple[Tensor, Tensor] | None = None
                          ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Causal self-attention of t new tokens over the P cached ones and themselves:
    x (B, t, D), past (k, v) each (B, H, P, Dh) -> (output (B, t, D), (k, v) (B, H, P+t, Dh)).
    One layer of what `attn(..., cache=KVCache)` does (lesson 09's exercise)."""
    cache = KVCache([] if past is None else [past])
    out, _ = attn(x, x, x, is_causal=True, need_weights=False, cache=cache)
    return out, cache.layers[0]


def gpt_block(d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
              num_kv_heads: int | None = None, window: int | None = None) -> CausalSelfAttentionBlock:
    """One GPT layer, (B, T, D) -> (B, T, D): lesson 07's pre-norm block with causal
    self-attention and a GELU MLP, x + attn(LN(x)) then x + MLP(LN(x)) (lesson 09's
    `GPTBlock` exercise); `num_kv_heads`, `window`: grouped-query, sliding-window attention."""
    block = CausalSelfAttentionBlock(d_model, num_heads, d_ff, dropout, norm_first=True, activation="gelu")
    if num_kv_heads not in (None, num_heads) or window is not None:
        # The block's constructor knows plain multi-head attention only: swap in the variant
        # (same place among the parameters; the GPT initialises all weights afterwards).
        block.self_attn = MultiHeadAttention(d_model, num_heads, dropout, num_kv_heads=num_kv_heads,
                                             window=window)
    return block


class GPT(nn.Module):
    """Decoder-only Transformer: ids (B, T) -> logits (B, T, V), or the loss given targets."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        c = self.config = config
        self.embed = TokenEmbedding(c.vocab_size, c.d_model, c.max_len, c.dropout,
                                    positions="learned", padding_idx=c.pad_id)
        self.blocks = nn.ModuleList(gpt_block(c.d_model, c.num_heads, c.d_ff, c.dropout,
                                              c.num_kv_heads, c.window)
                                    for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.d_model)  # pre-norm blocks leave the stream unnormalised
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        _init_weights(self, c)
        if c.tie_embeddings:  # one (V, D) matrix reads tokens in and writes them out
            self.lm_head.weight = self.embed.tokens.weight

    def forward(self, ids: Tensor, targets: Tensor | None = None) -> Tensor:
        """ids (B, T) -> logits (B, T, V); with targets (B, T) -> the mean cross-entropy over
        targets != -100 (a scalar). targets[:, t] is the token that should follow ids[:, t]."""
        if ids.dim() != 2 or ids.shape[1] > self.config.max_len:
            raise ValueError(f"ids must be (B, T) with T <= max_len={self.config.max_len}, "
                             f"got {tuple(ids.shape)}")
        x = self.embed(ids)  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # causal: position t never sees t+1, t+2, ...
        h = self.norm(x)  # (B, T, D)
        if targets is None:
            return self.lm_head(h)  # (B, T, V)
        if h.device.type == "cpu":
            # On a CPU the (D, V) output layer is the costliest matmul of a small model: run it
            # only where a target counts (a text-to-text model learns from its answers alone).
            # Not on a GPU: there the full matmul is cheap, and boolean indexing would make the
            # host wait for the device at every step.
            keep = targets != IGNORE_INDEX  # (B, T)
            return F.cross_entropy(self.lm_head(h[keep]).float(), targets[keep])  # (N, V), (N,)
        logits = self.lm_head(h)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),  # (B*T, V), (B*T,)
                               ignore_index=IGNORE_INDEX)

    def forward_cached(self, ids: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """New tokens ids (B, t) after the cached ones -> (logits (B, t, V), the longer cache);
        `past` itself is left as it was."""
        cache = KVCache() if past is None else past.copy()
        offset = cache.length()  # P tokens already seen
        if offset + ids.shape[1] > self.config.max_len:
            raise ValueError(f"{offset + ids.shape[1]} tokens exceed the context max_len="
                             f"{self.config.max_len}")
        x = self.embed(ids, offset=offset)  # (B, t, D), positions P .. P+t-1
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        return self.lm_head(self.norm(x)), cache

    @torch.no_grad()
    def generate(self, ids: Tensor, max_new_tokens: int, *, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """Continue prompts ids (B, T) by up to `max_new_tokens`: -> (B, T + n).

        temperature=0 is greedy; otherwise tokens are sampled (with `top_k`, `top_p` if given). A row
        that has produced `eos_id` is padded with it; generation stops when all rows have.
        `use_cache=False` recomputes the whole prefix at every step (same tokens, slower).
        """
        if ids.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(f"prompt ({ids.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds "
                             f"max_len={self.config.max_len}")
        was_training = self.training
        self.eval()
        out, past, fresh = ids, None, ids  # `fresh`: the tokens the cache has not seen yet
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            if use_cache:
                logits, past = self.forward_cached(fresh, past)  # (B, t, V)
            else:
                logits = self(out)  # (B, T, V): the whole prefix again
            token = sample_next(logits[:, -1], temperature, top_k, generator, top_p=top_p)  # (B,)
            if eos_id is not None:
                token = token.masked_fill(done, eos_id)
                done = done | (token == eos_id)
            out = torch.cat([out, token[:, None]], dim=1)  # (B, T+1)
            fresh = token[:, None]  # (B, 1)
            if eos_id is not None and bool(done.all()):
                break
        self.train(was_training)
        return out


def _init_weights(model: GPT, c: GPTConfig) -> None:
    """Xavier-uniform matrices and N(0, 1/D) embeddings. GPT-2's N(0, 0.02) suits widths near
    768; at the course's widths (64-256) it leaves attention's signal so small that short
    runs stall, while these scales keep every layer's output near unit size from the start."""
    model.apply(init_weights)  # zero biases, and the zero pad row
    for name, param in model.named_parameters():
        if param.dim() == 2 and not name.startswith("embed."):
            nn.init.xavier_uniform_(param)
    nn.init.normal_(model.embed.tokens.weight, std=c.d_model ** -0.5)
    if c.pad_id is not None:
        with torch.no_grad():
            model.embed.tokens.weight[c.pad_id].zero_()


def parameter_count(config: GPTConfig) -> int:
    """Trainable parameters of `GPT(config)`, in closed form (D = d_model, F = d_ff):
    tokens V·D + positions max_len·D + layers N(2D² + 2D·Dkv + 2DF + 7D + 2Dkv + F) + final
    norm 2D (+ V·D for an untied output layer), where Dkv = Hkv·Dh (= D unless grouped-query)."""
    c = config
    D, Fd = c.d_model, c.d_ff
    Dkv = c.kv_heads * (D // c.num_heads)
    # attention 2(D²+D) + 2(D·Dkv+Dkv), MLP 2DF+F+D, 2 norms 4D
    layer = 2 * D * D + 2 * D * Dkv + 2 * D * Fd + 7 * D + 2 * Dkv + Fd
    output = 0 if c.tie_embeddings else c.vocab_size * D
    return c.vocab_size * D + c.max_len * D + c.num_layers * layer + 2 * D + output
