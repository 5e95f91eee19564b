"""The course's data: a synthetic English–French world, its tasks, and real Tatoeba pairs.

    from utils.data import translation_data
    data = translation_data(num_train=5000, seed=0)
    loader = data.loader("train", batch_size=64)   # Seq2SeqBatch(src, src_mask, tgt_in, ...)

Importing this package is instant: each name loads its module (and torch) on first use.
(The submodules `lexicon` and `download` share their names with their main function, so
those two are imported from the submodule: `from utils.data.lexicon import lexicon`.)
See `utils/data/DATA_CARD.md` for the grammar, the tasks and their label rules.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule that defines it
_EXPORTS = {
    # the synthetic world
    "GrammarConfig": "grammar",
    "Sentence": "grammar",
    "SentenceSampler": "grammar",
    "generate_sentences": "grammar",
    "parse_sentence": "parser",
    "ReviewConfig": "sentiment",
    "Review": "sentiment",
    "ReviewSampler": "sentiment",
    "generate_reviews": "sentiment",
    "sentiment_label": "sentiment",
    # tasks, splits and loaders
    "Pair": "tasks",
    "Seq2SeqData": "tasks",
    "ClassificationData": "tasks",
    "translation_data": "tasks",
    "summary_data": "tasks",
    "sentiment_data": "tasks",
    "text_to_text_data": "tasks",
    "draw_disjoint": "tasks",
    # tokens and tensors
    "Vocab": "vocab",
    "CharVocab": "vocab",
    "build_vocab": "vocab",
    "SPECIALS": "vocab",
    "PAD_ID": "vocab",
    "BOS_ID": "vocab",
    "EOS_ID": "vocab",
    "UNK_ID": "vocab",
    "pad": "batching",
    "lengths_to_mask": "batching",
    "BucketBatchSampler": "batching",
    "Seq2SeqBatch": "batching",
    "ClassificationBatch": "batching",
    "LanguageModelBatch": "batching",
    "alignment_matrix": "alignment",
    "alignment_agreement": "alignment",
    # real text
    "normalize": "text",
    "tokenize": "text",
    "tatoeba_data": "tatoeba",
    "load_tatoeba": "tatoeba",
    "read_tatoeba": "tatoeba",
    "fetch_tatoeba": "tatoeba",
    "DataFormatError": "tatoeba",
    "DataUnavailableError": "tatoeba",
    "ChecksumError": "download",
    "cache_dir": "download",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'utils.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"utils.data.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

