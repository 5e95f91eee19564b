"""Planted mistakes of lesson 09 (a decoder-only GPT: answer-only loss, a GPT block, parameters,
sampling, a KV cache)."""

from course_tools.mistakes import Mistake

_BLOCK = ("h = self.norm1(x)  # (B, T, D): only the sublayer's input is normalised\n"
          "        x = x + self.self_attn(h, h, h, is_causal=True, need_weights=False)[0]"
          "  # tokens look back\n"
          "        return x + self.feed_forward(self.norm2(x))  # then each token on its own")

MISTAKES = [
    # answer_loss
    Mistake("answer_loss", "mask of real tokens instead of the answers", old="~batch.loss_mask",
            new="~batch.mask", hint=("loss_mask",)),
    Mistake("answer_loss", "mask not inverted: hides the answers, keeps the prompts",
            old="masked_fill(~batch.loss_mask", new="masked_fill(batch.loss_mask", hint=("~loss_mask",)),
    Mistake("answer_loss", "no masking at all",
            old="batch.targets.masked_fill(~batch.loss_mask, IGNORE_INDEX)",
            new="batch.targets", hint=("padding",)),
    Mistake("answer_loss", "hidden targets set to 0 (the pad id) instead of -100",
            old="IGNORE_INDEX)  # (B, T)", new="0)  # (B, T)", hint=("-100",)),
    Mistake("answer_loss", "targets not passed: returns the logits",
            old="return model(batch.tokens, targets)",
            new="return model(batch.tokens)", hint=("logits", "scalar")),
    Mistake("answer_loss", "answer positions selected into 1-D ids (raises in the model)",
            old="return model(batch.tokens, targets)",
            new="return model(batch.tokens[batch.loss_mask], batch.targets[batch.loss_mask])",
            hint=("(b, t)",)),
    # GPTBlock
    Mistake("GPTBlock", "no causal mask", old=", is_causal=True", new="", hint=("causal",)),
    Mistake("GPTBlock", "post-norm order", old=_BLOCK,
            new="x = self.norm1(x + self.self_attn(x, x, x, is_causal=True, need_weights=False)[0])\n"
                "        return self.norm2(x + self.feed_forward(x))", hint=("post-norm",)),
    Mistake("GPTBlock", "attention residual missing",
            old="x = x + self.self_attn(", new="x = self.self_attn(",
            hint=("residual", "attention")),
    Mistake("GPTBlock", "MLP residual missing",
            old="return x + self.feed_forward(", new="return self.feed_forward(",
            hint=("residual", "mlp")),
    Mistake("GPTBlock", "attention residual added twice (the branch already includes x)",
            old="x = x + self.self_attn(h, h, h, is_causal=True, need_weights=False)[0]",
            new="a = x + self.self_attn(h, h, h, is_causal=True, need_weights=False)[0]\n        x = x + a",
            hint=("twice",)),
    Mistake("GPTBlock", "the residual stream itself normalised", old=_BLOCK,
            new="x = self.norm1(x)\n"
                "        x = x + self.self_attn(x, x, x, is_causal=True, need_weights=False)[0]\n"
                "        x = self.norm2(x)\n"
                "        return x + self.feed_forward(x)", hint=("stream", "normalised")),
    Mistake("GPTBlock", "a LayerNorm on the block's output",
            old="return x + self.feed_forward(self.norm2(x))",
            new="return self.norm2(x + self.feed_forward(self.norm2(x)))", hint=("layernorm", "output")),
    Mistake("GPTBlock", "MLP before attention", old=_BLOCK,
            new="x = x + self.feed_forward(self.norm2(x))\n"
                "        h = self.norm1(x)\n"
                "        return x + self.self_attn(h, h, h, is_causal=True, need_weights=False)[0]",
            hint=("mlp", "before")),
    Mistake("GPTBlock", "the attention's (output, weights) pair added to x", old="need_weights=False)[0]",
            new="need_weights=False)", hint=("tuple",)),
    # gpt_parameter_count
    Mistake("gpt_parameter_count", "no biases in the attention", old="attention = 4 * (D * D + D)",
            new="attention = 4 * D * D", hint=("attention", "biases")),
    Mistake("gpt_parameter_count", "three projections, no out_proj", old="attention = 4 * (D * D + D)",
            new="attention = 3 * (D * D + D)", hint=("four",)),
    Mistake("gpt_parameter_count", "no biases in the MLP", old="mlp = D * Fd + Fd + Fd * D + D",
            new="mlp = 2 * D * Fd", hint=("mlp", "biases")),
    Mistake("gpt_parameter_count", "one LayerNorm per layer", old="norms = 2 * 2 * D", new="norms = 2 * D",
            hint=("two layernorms",)),
    Mistake("gpt_parameter_count", "positions forgotten",
            old=" + c.max_len * D", new="", hint=("positions",)),
    Mistake("gpt_parameter_count", "final LayerNorm forgotten", old="+ 2 * D + output", new="+ output",
            hint=("final layernorm",)),
    Mistake("gpt_parameter_count", "the tied output layer counted again",
            old="output = 0 if c.tie_embeddings else c.vocab_size * D", new="output = c.vocab_size * D",
            hint=("tied",)),
    Mistake("gpt_parameter_count", "one layer only", old="c.num_layers * (attention + mlp + norms)",
            new="(attention + mlp + norms)", hint=("num_layers",)),
    Mistake("gpt_parameter_count", "nanoGPT's config name (n_layer)", old="c.num_layers", new="c.n_layer",
            hint=("n_layer",)),
    # sample_next
    Mistake("sample_next", "logits multiplied by the temperature", old="logits = logits / temperature",
            new="logits = logits * temperature", hint=("multiplied",)),
    Mistake("sample_next", "temperature ignored", old="    logits = logits / temperature\n", new="",
            hint=("temperature", "ignored")),
    Mistake("sample_next", "softmax over the rows", old="torch.softmax(logits, dim=-1)",
            new="torch.softmax(logits, dim=0)", hint=("dim 0",)),
    Mistake("sample_next", "top-k keeps one token too few (<=)", old="logits < kth", new="logits <= kth",
            hint=("too few",)),
    Mistake("sample_next", "top-k ignored", old="logits = logits.masked_fill(logits < kth, float(\"-inf\"))",
            new="pass", hint=("top_k", "ignored")),
    Mistake("sample_next", "topk over the rows (raises)", old="logits.topk(top_k, dim=-1)",
            new="logits.topk(top_k, dim=0)", hint=("broadcast",)),
    Mistake("sample_next", "multinomial's (N, 1) not squeezed", old=".squeeze(-1)  # (N,)", new="  # (N,)",
            hint=("squeeze",)),
    # cached_attention
    Mistake("cached_attention", "a top-left causal mask",
            old=".tril(P)", new=".tril()", hint=("bottom-right",)),
    Mistake("cached_attention", "no mask", old="attn_mask=mask", new="attn_mask=None", hint=("future",)),
    Mistake("cached_attention", "a float mask", old="torch.ones(t, P + t, dtype=torch.bool, device=x.device)",
            new="torch.ones(t, P + t, device=x.device)", hint=("bool",)),
    Mistake("cached_attention", "the cache never read",
            old="    if past is not None:\n"
                "        k = torch.cat([past[0], k], dim=2)  # (B, H, P + t, Dh)\n"
                "        v = torch.cat([past[1], v], dim=2)\n", new="", hint=("concatenate",)),
    Mistake("cached_attention", "cache concatenated along the heads (raises)",
            old="k = torch.cat([past[0], k], dim=2)", new="k = torch.cat([past[0], k], dim=1)",
            hint=("torch.cat",)),
    Mistake("cached_attention", "heads not merged before out_proj (raises)",
            old="attn.out_proj(merge_heads(out))", new="attn.out_proj(out)", hint=("in_features",)),
    Mistake("cached_attention", "the cache not returned",
            old="return attn.out_proj(merge_heads(out)), (k, v)",
            new="return attn.out_proj(merge_heads(out))", hint=("(output, (k, v))",)),
]
