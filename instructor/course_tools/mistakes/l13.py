"""Planted mistakes of lesson 13 (language models on real text: BPE pair counts and merges, top-p,
grouped-query attention, a sliding-window mask)."""

from course_tools.mistakes import Mistake

_REPEAT = ("k = k.repeat_interleave(group, dim=1)  # (B, H, T, Dh): heads 0..group-1 read K/V head 0, ...\n"
           "    v = v.repeat_interleave(group, dim=1)  # (B, H, T, Dh)")

_MERGE = ("out, i = [], 0\n"
          "    while i < len(ids):\n"
          "        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:\n"
          "            out.append(new_id)\n"
          "            i += 2  # both ids of the pair are consumed\n"
          "        else:\n"
          "            out.append(ids[i])\n"
          "            i += 1\n"
          "    return out")

MISTAKES = [
    # count_pairs
    Mistake("count_pairs", "each chunk counted once, whatever its count", old="counts.get(pair, 0) + n",
            new="counts.get(pair, 0) + 1", hint=("counted once", "instead of")),
    Mistake("count_pairs", "a pair repeated inside a chunk counted once",
            old="for pair in zip(word, word[1:]):", new="for pair in set(zip(word, word[1:])):",
            hint=("twice",)),
    Mistake("count_pairs", "the last pair of each chunk missed", old="zip(word, word[1:])",
            new="zip(word[:-1], word[1:-1])", hint=("last pair",)),
    Mistake("count_pairs", "pairs stored reversed", old="counts[pair] = counts.get(pair, 0) + n",
            new="counts[pair[::-1]] = counts.get(pair[::-1], 0) + n", hint=("wrong way round",)),
    # merge
    Mistake("merge", "the scan moves on by one after a merge",
            old="i += 2  # both ids of the pair are consumed", new="i += 1", hint=("i += 2",)),
    Mistake("merge", "the last id dropped", old="while i < len(ids):", new="while i < len(ids) - 1:",
            hint=("last id",)),
    Mistake("merge", "only the first occurrence merged", old="out.append(new_id)\n",
            new="out.append(new_id)\n            pair = None\n", hint=("first occurrence",)),
    Mistake("merge", "the input list edited in place", old=_MERGE,
            new="i = 0\n"
                "    while i < len(ids) - 1:\n"
                "        if (ids[i], ids[i + 1]) == pair:\n"
                "            ids[i:i + 2] = [new_id]\n"
                "        i += 1\n"
                "    return ids", hint=("input list",)),
    # top_p_filter
    Mistake("top_p_filter", "the token that reaches p dropped (inclusive cumulative sum)",
            old="above = ranked.cumsum(dim=-1) - ranked", new="above = ranked.cumsum(dim=-1)",
            hint=("one too few",)),
    Mistake("top_p_filter", "sorted in ascending order", old="descending=True", new="descending=False",
            hint=("descending",)),
    Mistake("top_p_filter", "the sorted mask applied without scattering it back",
            old="drop = drop_ranked.scatter(-1, order, drop_ranked)", new="drop = drop_ranked",
            hint=("scatter",)),
    Mistake("top_p_filter", "softmax over the rows", old="probs = torch.softmax(logits, dim=-1)",
            new="probs = torch.softmax(logits, dim=0)", hint=("dim 0",)),
    Mistake("top_p_filter", "cumulative sum of logits", old="probs = torch.softmax(logits, dim=-1)",
            new="probs = logits", hint=("softmax first",)),
    # grouped_query_attention
    Mistake("grouped_query_attention", "K/V heads tiled (repeat) instead of grouped", old=_REPEAT,
            new="k = k.repeat(1, group, 1, 1)\n    v = v.repeat(1, group, 1, 1)",
            hint=("repeat_interleave",)),
    Mistake("grouped_query_attention", "not causal", old="is_causal=is_causal)[0]", new="is_causal=False)[0]",
            hint=("causal",)),
    Mistake("grouped_query_attention", "scores not scaled", old="scaled_dot_product_attention(q, k, v,",
            new="scaled_dot_product_attention(q * k.shape[-1] ** 0.5, k, v,", hint=("sqrt",)),
    Mistake("grouped_query_attention", "the values not repeated (raises)",
            old="    v = v.repeat_interleave(group, dim=1)  # (B, H, T, Dh)\n", new="",
            hint=("repeat both",)),
    Mistake("grouped_query_attention", "(output, weights) returned", old="is_causal=is_causal)[0]",
            new="is_causal=is_causal)", hint=("tuple",)),
    # sliding_window_mask
    Mistake("sliding_window_mask", "one key too many", old="(j > i - window)", new="(j >= i - window)",
            hint=("one key too many",)),
    Mistake("sliding_window_mask", "not causal", old="return (j <= i) & (j > i - window)",
            new="return j > i - window", hint=("not causal",)),
    Mistake("sliding_window_mask", "the window ignored", old="return (j <= i) & (j > i - window)",
            new="return j <= i", hint=("window is ignored",)),
    Mistake("sliding_window_mask", "True = hidden", old="return (j <= i) & (j > i - window)",
            new="return ~((j <= i) & (j > i - window))", hint=("inverted",)),
    Mistake("sliding_window_mask", "a float mask", old="return (j <= i) & (j > i - window)",
            new="return ((j <= i) & (j > i - window)).float()", hint=("bool",)),
]
