"""Real text that ships with the course: 5,000 Tatoeba English–French pairs, no network needed.

    text = real_text(side="both", seed=0)        # RealText: train and valid sentences
    tok = train_bpe(text.text("train"), vocab_size=1000)
    held_out = text.valid                         # sentences never seen in training

Sentences are kept as written (accents, curly apostrophes, French no-break spaces before
`!` and `?`): a byte-level tokenizer and a language model should see real text, not the
course's normalised word tokens. The file is parsed by `utils.data.tatoeba.read_tatoeba`.
Licence: CC-BY 2.0 (France), attribution per line; see `utils/data/corpus/README.md`.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

from utils.data.tatoeba import TatoebaLine, read_tatoeba

CORPUS_FILE = Path(__file__).with_name("corpus") / "tatoeba-eng-fra-sample.tsv"
SIDES = ("en", "fr", "both")


@dataclass(frozen=True, slots=True)
class RealText:
    """Sentences of the shipped corpus in two splits that share no sentence."""

    train: tuple[str, ...]
    valid: tuple[str, ...]
    side: str
    seed: int

    def text(self, split: str = "train") -> str:
        """The sentences of `split`, one a line (the text to train a tokenizer on)."""
        if split not in ("train", "valid"):
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
        return "\n".join(getattr(self, split))


def read_corpus(path: str | os.PathLike | None = None) -> list[TatoebaLine]:
    """Every line of the shipped corpus (or of a Tatoeba TSV at `path`), as written."""
    return read_tatoeba(CORPUS_FILE if path is None else path)


def _sentences(lines: list[TatoebaLine], side: str) -> list[str]:
    """The sentences of `side` in these lines, in order, each once."""
    out: list[str] = []
    for line in lines:
        out += {"en": [line.en], "fr": [line.fr], "both": [line.en, line.fr]}[side]
    return list(dict.fromkeys(out))  # drops repeats, keeps the first occurrence's place


def real_text(side: str = "both", valid_fraction: float = 0.1, seed: int = 0,
              path: str | os.PathLike | None = None) -> RealText:
    """Split the corpus into train and valid sentences of `side` ('en', 'fr' or 'both').

    The split is by English sentence: all the translations of one English sentence fall in
    the same split, so a validation sentence is not a near-copy of a training one. A French
    sentence that translates English sentences of both splits ("Salut !" for "Hi." and
    "Hello!") stays in train only. Deterministic for a given seed.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be between 0 and 1 (exclusive), got {valid_fraction}")
    groups: dict[str, list[TatoebaLine]] = {}
    for line in read_corpus(path):
        groups.setdefault(line.en, []).append(line)
    english = sorted(groups)  # sorted first: the shuffle then depends on the seed alone
    random.Random(f"real_text/{seed}").shuffle(english)
    num_valid = math.ceil(valid_fraction * len(english))
    if num_valid >= len(english):
        raise ValueError(f"valid_fraction {valid_fraction} leaves no training sentence "
                         f"({len(english)} English sentences in the corpus)")
    valid_lines = [line for en in english[:num_valid] for line in groups[en]]
    train_lines = [line for en in english[num_valid:] for line in groups[en]]
    train = _sentences(train_lines, side)
    seen = set(train)
    valid = [s for s in _sentences(valid_lines, side) if s not in seen]
    return RealText(tuple(train), tuple(valid), side, seed)


def bpe_training_text(side: str = "both", seed: int = 0, valid_fraction: float = 0.1) -> str:
    """The training sentences of `real_text(...)`, one a line: the text to learn BPE merges from."""
    return real_text(side, valid_fraction, seed).text("train")
