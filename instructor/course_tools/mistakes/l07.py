"""Planted mistakes of lesson 07 (the Transformer encoder)."""

from course_tools.mistakes import Mistake

MISTAKES = [
    # layer_norm
    Mistake("layer_norm", "unbiased variance", old="((x - mean) ** 2).mean(dim=-1, keepdim=True)",
            new="x.var(dim=-1, keepdim=True)", hint=("unbiased",)),
    Mistake("layer_norm", "mean without keepdim", old="x.mean(dim=-1, keepdim=True)  # (..., 1)",
            new="x.mean(dim=-1)  # (..., 1)", hint=("missing dim",)),
    Mistake("layer_norm", "eps outside the square root", old="torch.sqrt(var + eps)",
            new="(torch.sqrt(var) + eps)", hint=("inside the sqrt",)),
    Mistake("layer_norm", "statistics over the batch, as batch norm",
            old="mean = x.mean(dim=-1, keepdim=True)  # (..., 1)\n"
                "    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)",
            new="mean = x.mean(dim=0, keepdim=True)  # (..., 1)\n"
                "    var = ((x - mean) ** 2).mean(dim=0, keepdim=True)",
            hint=("batch",)),
    Mistake("layer_norm", "gamma and beta not applied", old=" * weight + bias", new="",
            hint=("gamma and beta",)),
    # residual
    Mistake("residual", "the two orders swapped", old="if norm_first:", new="if not norm_first:",
            hint=("post-norm order",)),
    Mistake("residual", "no residual connection (pre-norm)", old="return x + sublayer(norm(x))",
            new="return sublayer(norm(x))", hint=("residual connection is missing",)),
    Mistake("residual", "pre-norm sum normalised too", old="return x + sublayer(norm(x))",
            new="return norm(x + sublayer(norm(x)))", hint=("normalised too",)),
    Mistake("residual", "the normalised x added back", old="return x + sublayer(norm(x))",
            new="return norm(x) + sublayer(norm(x))", hint=("x itself",)),
    Mistake("residual", "post-norm sub-layer reads the normalised x", old="return norm(x + sublayer(x))",
            new="return norm(x + sublayer(norm(x)))", hint=("reads x itself",)),
    # PreNormEncoderBlock
    Mistake("PreNormEncoderBlock", "post-norm order",
            old="h = self.norm1(x)\n"
                "        x = x + self.self_attn(h, h, h, mask=mask)[0]  # tokens exchange information\n"
                "        return x + self.feed_forward(self.norm2(x))",
            new="x = self.norm1(x + self.self_attn(x, x, x, mask=mask)[0])\n"
                "        return self.norm2(x + self.feed_forward(x))",
            hint=("post-norm order",)),
    Mistake("PreNormEncoderBlock", "padding mask not passed", old=", mask=mask)[0]", new=")[0]",
            hint=("mask was ignored",)),
    Mistake("PreNormEncoderBlock", "token mask (B, T) passed as the attention mask", old="mask=mask)[0]",
            new="mask=token_mask)[0]", hint=("padding_mask",)),
    Mistake("PreNormEncoderBlock", "inverted mask", old="attention.padding_mask(token_mask)",
            new="attention.padding_mask(~token_mask)", hint=("inverted",)),
    Mistake("PreNormEncoderBlock", "attention's residual connection missing", old="x = x + self.self_attn",
            new="x = self.self_attn", hint=("residual connection is missing",)),
    Mistake("PreNormEncoderBlock", "attention's (output, weights) pair used as a tensor", old="mask=mask)[0]",
            new="mask=mask)", hint=("(output, weights)",)),
    Mistake("PreNormEncoderBlock", "norm1 used for both branches", old="self.norm2(x)", new="self.norm1(x)",
            hint=("norm2",)),
    # masked_mean_pool
    Mistake("masked_mean_pool", "plain mean over all positions",
            old="return (h * weights).sum(dim=1) / weights.sum(dim=1)", new="return h.mean(dim=1)",
            hint=("plain mean",)),
    Mistake("masked_mean_pool", "divided by T", old="/ weights.sum(dim=1)", new="/ h.shape[1]",
            hint=("divided by T",)),
    Mistake("masked_mean_pool", "mask without a feature dim", old="token_mask.unsqueeze(-1).to(h.dtype)",
            new="token_mask.to(h.dtype)", hint=("missing dim",)),
    Mistake("masked_mean_pool", "count without keepdim", old="/ weights.sum(dim=1)",
            new="/ token_mask.sum(dim=1)", hint=("missing dim",)),
    Mistake("masked_mean_pool", "pooled over the features", old="(h * weights).sum(dim=1)",
            new="(h * weights).sum(dim=-1)", hint=("tokens (dim 1)",)),
    Mistake("masked_mean_pool", "inverted mask", old="token_mask.unsqueeze(-1)",
            new="(~token_mask).unsqueeze(-1)", hint=("inverted",)),
]
