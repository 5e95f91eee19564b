"""The encoder–decoder Transformer of lesson 08 (Vaswani et al. 2017, "Attention Is All You
Need", section 3), built from the shared blocks of `utils.models.transformer`.

    src ids (B, S) -> TokenEmbedding -> N x EncoderBlock -> memory (B, S, D)
    tgt ids (B, T) -> TokenEmbedding -> N x DecoderBlock(memory) -> Linear -> logits (B, T, V)

Also here: the training objective with label smoothing (section 5.4), the warm-up learning
rate schedule (section 5.3), and `parameter_count`, the closed-form number of parameters
that the notebook states and a test checks.

Masks follow the course convention: a token mask (B, L) is True at real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from utils.models.attention import KVCache
from utils.models.transformer import DecoderBlock, EncoderBlock, TokenEmbedding


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of the encoder–decoder Transformer (the paper's base model is d_model=512,
    num_heads=8, d_ff=2048, 6 + 6 layers)."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 128
    num_heads: int = 4
    d_ff: int = 256
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dropout: float = 0.1
    max_len: int = 256
    norm_first: bool = True  # pre-norm (Xiong et al. 2020); False is the paper's post-norm
    tie_embeddings: bool = True  # output projection shares the target embedding (section 3.4)
    pad_id: int = 0

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        if min(self.src_vocab_size, self.tgt_vocab_size) < 2:
            raise ValueError(f"vocabularies need >= 2 tokens, got {self.src_vocab_size}, "
                             f"{self.tgt_vocab_size}")


class Transformer(nn.Module):
    """Encoder–decoder Transformer: (src (B, S), tgt_in (B, T)) -> logits (B, T, V_tgt)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = self.config = config
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, c.max_len, c.dropout,
                                        padding_idx=c.pad_id)
        self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, c.max_len, c.dropout,
                                        padding_idx=c.pad_id)
        self.encoder = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, norm_first=c.norm_first)
            for _ in range(c.num_encoder_layers))
        self.decoder = nn.ModuleList(
            DecoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, norm_first=c.norm_first)
            for _ in range(c.num_decoder_layers))
        # Pre-norm never normalises the residual stream inside the blocks, so the stack
        # ends with one LayerNorm; post-norm blocks already end normalised.
        self.encoder_norm = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size, bias=not c.tie_embeddings)
        for name, param in self.named_parameters():
            # Xavier-uniform matrices (as nn.Transformer): with GPT-2's small N(0, 0.02) at a
            # width of 64-128, the source reaches the decoder through two tiny matrices (the
            # values and the output projection of cross-attention), and learning stalls.
            if param.dim() == 2 and "embed" not in name:
                nn.init.xavier_uniform_(param)
        for embed in (self.src_embed, self.tgt_embed):
            # std D^-0.5, so that the sqrt(D) scaling of TokenEmbedding gives token vectors of
            # unit size, on the scale of the sinusoidal positions they are added to.
            nn.init.normal_(embed.tokens.weight, std=c.d_model ** -0.5)
            with torch.no_grad():
                embed.tokens.weight[c.pad_id].zero_()
        if c.tie_embeddings:
            # One (V, D) matrix reads tokens in and writes them out (Press & Wolf 2017).
            self.generator.weight = self.tgt_embed.tokens.weight

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """src (B, S) ids, src_mask (B, S) True = real token -> memory (B, S, D)."""
        x = self.src_embed(src)  # (B, S, D)
        for block in self.encoder:
            x = block(x, src_mask)
        return self.encoder_norm(x)

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor | None = None,
               tgt_mask: Tensor | None = None) -> Tensor:
        """tgt_in (B, T) ids (BOS first), memory (B, S, D) -> logits (B, T, V_tgt).

        `tgt_mask` (B, T) may be left out: with right padding, causal attention already
        keeps every real position from seeing the padding after it.
        """
        y = self.tgt_embed(tgt_in)  # (B, T, D)
        for block in self.decoder:
            y = block(y, memory, tgt_mask, src_mask)
        return self.generator(self.decoder_norm(y))  # (B, T, V_tgt)

    def forward(self, src: Tensor, src_mask: Tensor | None, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), src_mask (B, S) True = real (None: src != pad_id),
        tgt_in (B, T) (<bos> y1 ...) -> logits (B, T, V_tgt), every position in parallel.

        The same signature as the recurrent models of lessons 03 and 04.
        """
        if src_mask is None:
            src_mask = src != self.config.pad_id  # (B, S)
        return self.decode(tgt_in, self.encode(src, src_mask), src_mask)

    # The decoding interface of `utils.decoding` (shared with lessons 03 and 04).
    def start(self, src: Tensor, src_mask: Tensor | None = None, cache: bool = True
              ) -> dict[str, Tensor | KVCache]:
        """Encode once: the decoding state (batch on dim 0) before the first target token.

        With `cache`, the state also holds two `KVCache`s: `memory_cache`, each decoder
        layer's cross-attention keys and values, computed once from the memory, and
        `cache`, those of self-attention, which grow by one position per step (the KV cache
        of lesson 09). Without it, every step re-reads the whole prefix: the same logits,
        more work.
        """
        if src_mask is None:
            src_mask = src != self.config.pad_id
        memory = self.encode(src, src_mask)  # (B, S, D)
        state: dict[str, Tensor | KVCache] = {"memory": memory, "src_mask": src_mask}
        if cache:
            memory_cache = KVCache()
            for layer, block in enumerate(self.decoder):
                memory_cache.append(layer, *block.cross_attn.keys_values(memory, memory))  # (B, H, S, Dh)
            state["memory_cache"], state["cache"] = memory_cache, KVCache()
        return state

    def step(self, tokens: Tensor, state: dict[str, Tensor | KVCache]
             ) -> tuple[Tensor, dict[str, Tensor | KVCache]]:
        """tokens so far (B, t), <bos> first -> logits of the next one (B, V) and the state."""
        if "cache" not in state:  # no cache: the decoder re-reads the prefix
            logits = self.decode(tokens, state["memory"], state["src_mask"])  # (B, t, V)
            return logits[:, -1], state
        cache = KVCache(state["cache"].layers)  # the caller's state stays as it was
        seen = cache.length()  # positions already in the cache
        y = self.tgt_embed(tokens[:, seen:], offset=seen)  # (B, t - seen, D): only the new tokens
        for layer, block in enumerate(self.decoder):
            y = block(y, None, memory_mask=state["src_mask"], cache=cache,
                      memory_cache=state["memory_cache"], layer=layer)
        return self.generator(self.decoder_norm(y))[:, -1], {**state, "cache": cache}  # (B, V)

    def translate(self, src: Tensor, src_mask: Tensor | None = None, *, bos_id: int, eos_id: int,
                  max_len: int, beam_size: int = 1, alpha: float = 0.6) -> Tensor:
        """Translations (B, T <= max_len), each row ending at its first <eos>, then padding:
        greedy for beam_size=1, else beam search with length normalisation `alpha`."""
        from utils.beam_search import beam_search
        from utils.decoding import greedy_decode

        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                state = self.start(src, src_mask)
                kwargs = dict(batch_size=src.shape[0], bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                              pad_id=self.config.pad_id, device=src.device)
                if beam_size == 1:
                    return greedy_decode(self.step, state, **kwargs)
                return beam_search(self.step, state, beam_size=beam_size, alpha=alpha, **kwargs)
        finally:
            self.train(was_training)


# ---------------------------------------------------------------- the parameter count


def parameter_count(config: TransformerConfig) -> int:
    """Trainable parameters of `Transformer(config)`, in closed form.

    With D = d_model, F = d_ff, V_s, V_t the vocabularies, N_e, N_d the layers:
    attention 4(D² + D) (q, k, v, out projections with biases); feed-forward 2DF + F + D;
    LayerNorm 2D. An encoder layer is attention + feed-forward + 2 norms = 4D² + 2DF + 9D + F;
    a decoder layer adds cross-attention and a third norm = 8D² + 2DF + 15D + F.
    Embeddings V_s·D + V_t·D; positions are sinusoidal (no parameters); the output layer
    is tied to the target embedding (0 new weights) or a (V_t, D) matrix with a V_t bias.
    """
    c = config
    D, Fd = c.d_model, c.d_ff
    encoder_layer = 4 * D * D + 2 * D * Fd + 9 * D + Fd
    decoder_layer = 8 * D * D + 2 * D * Fd + 15 * D + Fd
    embeddings = (c.src_vocab_size + c.tgt_vocab_size) * D
    final_norms = 2 * 2 * D if c.norm_first else 0
    output = 0 if c.tie_embeddings else c.tgt_vocab_size * D + c.tgt_vocab_size
    return (embeddings + c.num_encoder_layers * encoder_layer
            + c.num_decoder_layers * decoder_layer + final_norms + output)


# ---------------------------------------------------------------- training objective


def label_smoothed_loss(logits: Tensor, targets: Tensor, smoothing: float = 0.1,
                        ignore_index: int = 0) -> Tensor:
    """Cross-entropy against a smoothed target (Szegedy et al. 2016; Vaswani et al. 5.4):
    logits (B, T, V), targets (B, T) -> mean over non-ignored tokens (a scalar).

    The target puts 1 - ε on the right token and spreads ε evenly over all V tokens, the
    same convention as `F.cross_entropy(label_smoothing=ε)`.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    uniform = -log_probs.mean(dim=-1)  # (B, T): cross-entropy against the uniform target
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    keep = targets != ignore_index  # (B, T)
    return (loss * keep).sum() / keep.sum().clamp(min=1)


def warmup_lr(step: int, d_model: int, warmup_steps: int = 4000, factor: float = 1.0) -> float:
    """The learning rate of Vaswani et al. (2017, eq. 3) at `step` (counted from 1):
    factor · d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)."""
    step = max(step, 1)
    return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)


def warmup_scheduler(optimizer: torch.optim.Optimizer, d_model: int, warmup_steps: int,
                     factor: float = 1.0, peak_lr: float | None = None
                     ) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that sets the learning rate to `warmup_lr` at every step (the optimiser
    must be built with lr=1). `peak_lr`, if given, sets `factor` so that the rate peaks at
    it after `warmup_steps` (the paper's factor 1 peaks at 7e-4 for d_model=512, warm-up 4000)."""
    for group in optimizer.param_groups:
        if group["lr"] != 1.0:
            raise ValueError(
                f"warmup_scheduler multiplies the base learning rate by warmup_lr(...): build the "
                f"optimiser with lr=1.0, got lr={group['lr']}")
    if peak_lr is not None:
        factor = peak_lr / warmup_lr(warmup_steps, d_model, warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: warmup_lr(i + 1, d_model, warmup_steps, factor))


def teacher_forcing_loss(model: Transformer, src: Tensor, tgt: Tensor, smoothing: float = 0.1,
                         pad_id: int = 0) -> Tensor:
    """Loss of one batch: src (B, S), tgt (B, T+1) = BOS y1 .. yT EOS (padded with pad_id).

    The decoder reads tgt[:, :-1] and predicts tgt[:, 1:], every position in parallel.
    """
    logits = model(src, src != pad_id, tgt[:, :-1])  # (B, T, V)
    return label_smoothed_loss(logits, tgt[:, 1:], smoothing, ignore_index=pad_id)
