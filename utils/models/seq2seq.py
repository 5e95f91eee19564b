"""Recurrent sequence-to-sequence models: lesson 03 (a GRU encoder-decoder) and lesson 04
(the same with attention in the decoder).

- `Encoder`: embedding + bidirectional GRU; returns every position's state (the
  *annotations* attention reads) and one fixed-size summary of the whole sentence.
- `Seq2Seq`: the decoder sees the source only through that summary, as in Cho et al. (2014),
  "Learning phrase representations using RNN encoder-decoder", and Sutskever et al. (2014):
  the fixed-size bottleneck.
- `AdditiveAttention` (Bahdanau et al. 2014, "Neural machine translation by jointly learning
  to align and translate") and `DotProductAttention` (Luong et al. 2015, "Effective
  approaches to attention-based neural machine translation", the "general" score).
- `AttentionSeq2Seq`: at each target step the decoder state asks the attention module which
  source positions matter and mixes their annotations into a context vector. As in Luong et al.,
  attention sits on top of the decoder GRU, so that teacher forcing runs the GRU over all
  target positions in one call.

Every model offers `forward(src, src_mask, tgt_in)` (teacher forcing: logits for every target
position) and `start(src, src_mask)` / `step(tokens, state)` for `utils.decoding`.

Shape letters: B batch, S source length, T target length, E embedding width, H hidden width,
V vocabulary. Masks are boolean, True = real token; padding sits at the end of each row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from utils.decoding import greedy_decode
from utils.models.rnn import lengths_from_mask


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Sizes of a recurrent encoder-decoder."""

    src_vocab_size: int
    tgt_vocab_size: int
    embed_dim: int = 64
    hidden_size: int = 128  # per direction in the encoder; the decoder's state width
    attention: str = "none"  # "none" (lesson 03), "additive" or "dot" (lesson 04)
    attention_dim: int = 64  # width of the additive score's hidden layer
    dropout: float = 0.0
    pad_id: int = 0


# ---------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    """Bidirectional GRU: src (B, S), mask (B, S) -> annotations (B, S, 2H), summary (B, 2H)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, dropout: float = 0.0,
                 pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embed_dim, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, src: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        lengths = lengths_from_mask(mask)  # (B,)
        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        # Packing makes the backward direction start at each row's last *real* token, so that
        # padding never reaches a real position.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, h_n = self.gru(packed)  # h_n: (2, B, H), forward then backward direction
        annotations, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])
        summary = torch.cat([h_n[0], h_n[1]], dim=-1)  # (B, 2H): end of -> and end of <-
        return annotations, summary  # (B, S, 2H), (B, 2H)


# ---------------------------------------------------------------------------- attention


def sequence_loss(logits: Tensor, tgt_out: Tensor, pad_id: int = 0) -> Tensor:
    """Mean cross-entropy over real target tokens: logits (B, T, V), tgt_out (B, T) -> scalar."""
    # (B*T, V) and (B*T,): padded positions are skipped, so short sentences weigh the same
    return nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=pad_id)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over source positions that are real: scores (B, T, S), mask (B, S) -> (B, T, S)."""
    scores = scores.masked_fill(~mask[:, None, :], float("-inf"))  # padding gets weight exp(-inf) = 0
    return torch.softmax(scores, dim=-1)


class AdditiveAttention(nn.Module):
    """Bahdanau et al. (2014): score(q, k) = vᵀ tanh(W_q q + W_k k).

    query (B, T, Dq), keys (B, S, Dk), values (B, S, Dv), mask (B, S)
    -> context (B, T, Dv), weights (B, T, S).
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, attention_dim, bias=True)
        self.v = nn.Linear(attention_dim, 1, bias=False)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """(B, T, Dq), (B, S, Dk) -> (B, T, S)."""
        q = self.query_proj(query)[:, :, None, :]  # (B, T, 1, A)
        k = self.key_proj(keys)[:, None, :, :]  # (B, 1, S, A)
        return self.v(torch.tanh(q + k)).squeeze(-1)  # (B, T, S, A) -> (B, T, S)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        weights = masked_softmax(self.scores(query, keys), mask)  # (B, T, S)
        return weights @ values, weights  # (B, T, Dv), (B, T, S)


class DotProductAttention(nn.Module):
    """Luong et al. (2015), "general": score(q, k) = qᵀ W k (W maps keys to the query width).

    query (B, T, Dq), keys (B, S, Dk), values (B, S, Dv), mask (B, S)
    -> context (B, T, Dv), weights (B, T, S).
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """(B, T, Dq), (B, S, Dk) -> (B, T, S)."""
        return query @ self.key_proj(keys).transpose(1, 2)  # (B, T, Dq) @ (B, Dq, S) -> (B, T, S)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        weights = masked_softmax(self.scores(query, keys), mask)  # (B, T, S)
        return weights @ values, weights  # (B, T, Dv), (B, T, S)


def make_attention(kind: str, query_dim: int, key_dim: int, attention_dim: int) -> nn.Module:
    """The attention module named `kind`: "additive" (Bahdanau) or "dot" (Luong)."""
    if kind == "additive":
        return AdditiveAttention(query_dim, key_dim, attention_dim)
    if kind == "dot":
        return DotProductAttention(query_dim, key_dim)
    raise ValueError(f"attention must be 'additive' or 'dot', got {kind!r}")


# ---------------------------------------------------------------------------- models


class _RecurrentSeq2Seq(nn.Module):
    """What both models share: the encoder, the bridge to the decoder, decoding."""

    def __init__(self, config: Seq2SeqConfig, decoder_input: int) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = Encoder(c.src_vocab_size, c.embed_dim, c.hidden_size, c.dropout, c.pad_id)
        self.bridge = nn.Linear(2 * c.hidden_size, c.hidden_size)  # summary -> first decoder state
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.embed_dim, padding_idx=c.pad_id)
        self.dropout = nn.Dropout(c.dropout)
        self.decoder = nn.GRU(decoder_input, c.hidden_size, batch_first=True)

    def _encode(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        annotations, summary = self.encoder(src, src_mask)  # (B, S, 2H), (B, 2H)
        return annotations, summary, torch.tanh(self.bridge(summary))  # h0: (B, H)

    def translate(self, src: Tensor, src_mask: Tensor, *, bos_id: int, eos_id: int,
                  max_len: int) -> Tensor:
        """Greedy translations (B, T <= max_len), each row ending at its first <eos>, then padding."""
        was_training = self.training
        self.eval()
        try:
            return greedy_decode(self.step, self.start(src, src_mask), batch_size=src.shape[0],
                                 bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                                 pad_id=self.config.pad_id, device=src.device)
        finally:
            self.train(was_training)


class Seq2Seq(_RecurrentSeq2Seq):
    """GRU encoder-decoder with a fixed-size bottleneck (Cho et al. 2014).

    The decoder starts from the sentence summary and also reads it at every step, next to the
    previous target token; it never sees the individual source positions.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        c = config
        super().__init__(config, decoder_input=c.embed_dim + 2 * c.hidden_size)
        self.out = nn.Linear(c.hidden_size + 2 * c.hidden_size, c.tgt_vocab_size)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), src_mask (B, S), tgt_in (B, T) (<bos> y1 ...) -> (B, T, V)."""
        _, summary, h0 = self._encode(src, src_mask)
        summary_t = summary[:, None, :].expand(-1, tgt_in.shape[1], -1)  # (B, T, 2H)
        inputs = torch.cat([self.dropout(self.tgt_embedding(tgt_in)), summary_t], dim=-1)  # (B, T, E+2H)
        states, _ = self.decoder(inputs, h0[None])  # (B, T, H); h0[None]: (1, B, H)
        return self.out(self.dropout(torch.cat([states, summary_t], dim=-1)))  # (B, T, V)

    def start(self, src: Tensor, src_mask: Tensor) -> dict[str, Tensor]:
        """The decoding state (batch on dim 0 of every tensor) before the first target token."""
        _, summary, h0 = self._encode(src, src_mask)
        return {"hidden": h0, "summary": summary}

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """tokens so far (B, t) -> logits of the next one (B, V) and the new state."""
        summary = state["summary"][:, None, :]  # (B, 1, 2H)
        inputs = torch.cat([self.tgt_embedding(tokens[:, -1:]), summary], dim=-1)  # (B, 1, E+2H)
        out, h = self.decoder(inputs, state["hidden"][None])  # (B, 1, H), (1, B, H)
        logits = self.out(torch.cat([out, summary], dim=-1))[:, 0]  # (B, V)
        return logits, {"hidden": h[0], "summary": state["summary"]}


class AttentionSeq2Seq(_RecurrentSeq2Seq):
    """GRU encoder-decoder whose decoder attends over every source position.

    At target step t the decoder state h_t is the query; attention returns a context c_t (a
    weighted mean of the annotations) and the prediction reads tanh(W [c_t; h_t]).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        c = config
        if c.attention == "none":
            raise ValueError("AttentionSeq2Seq needs attention='additive' or 'dot'; use Seq2Seq for none")
        super().__init__(config, decoder_input=c.embed_dim)
        self.attention = make_attention(c.attention, c.hidden_size, 2 * c.hidden_size, c.attention_dim)
        self.combine = nn.Linear(c.hidden_size + 2 * c.hidden_size, c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.tgt_vocab_size)

    def _predict(self, states: Tensor, annotations: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder states (B, T, H) -> logits (B, T, V), attention weights (B, T, S)."""
        context, weights = self.attention(states, annotations, annotations, src_mask)  # (B, T, 2H)
        attended = torch.tanh(self.combine(torch.cat([context, states], dim=-1)))  # (B, T, H)
        return self.out(self.dropout(attended)), weights

    def forward_with_weights(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher forcing -> logits (B, T, V) and attention weights (B, T, S)."""
        annotations, _, h0 = self._encode(src, src_mask)
        states, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), h0[None])  # (B, T, H)
        return self._predict(states, annotations, src_mask)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), src_mask (B, S), tgt_in (B, T) -> logits (B, T, V)."""
        return self.forward_with_weights(src, src_mask, tgt_in)[0]

    def start(self, src: Tensor, src_mask: Tensor) -> dict[str, Tensor]:
        """The decoding state (batch on dim 0 of every tensor) before the first target token."""
        annotations, _, h0 = self._encode(src, src_mask)
        return {"hidden": h0, "annotations": annotations, "src_mask": src_mask}

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """tokens so far (B, t) -> logits of the next one (B, V) and the new state."""
        out, h = self.decoder(self.tgt_embedding(tokens[:, -1:]), state["hidden"][None])  # (B, 1, H)
        logits, _ = self._predict(out, state["annotations"], state["src_mask"])  # (B, 1, V)
        return logits[:, 0], {**state, "hidden": h[0]}


def build_seq2seq(config: Seq2SeqConfig) -> Seq2Seq | AttentionSeq2Seq:
    """The model `config` describes: `Seq2Seq` without attention, else `AttentionSeq2Seq`."""
    return Seq2Seq(config) if config.attention == "none" else AttentionSeq2Seq(config)
