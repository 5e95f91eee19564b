"""Real text into the course's token format: lower-case words and punctuation, space-separated.

The synthetic world already writes this format ("la voiture rouge est rapide ."). Real
sentences (Tatoeba) need normalising first, and the rules are the same in both languages
so that a model meets one convention everywhere:

- Unicode NFC, so "é" is one code point whatever the source wrote;
- typographic apostrophes (’ ‘ ʼ) become ', quotes (« » “ ” „) become ";
- every kind of space (no-break, narrow no-break, thin) becomes a plain space, so French
  "Va !" (with a no-break space) and "Va!" both give ["va", "!"];
- punctuation marks are tokens of their own; a hyphenated word stays one token
  ("peut-être", "est-ce");
- French elision is split after the apostrophe, as in the synthetic world: "l'arbre" ->
  "l' arbre", "qu'il" -> "qu' il"; English contractions stay whole ("don't", "i'm").
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'",
                              "`": "'", "\u00b4": "'"})
_QUOTES = str.maketrans({"\u00ab": '"', "\u00bb": '"', "\u201c": '"', "\u201d": '"',
                         "\u201e": '"', "\u2039": '"', "\u203a": '"'})
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2011": "-", "\u2010": "-"})
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009\u2007\u200b\ufeff]+")
# A word: letters, maybe joined by hyphens or apostrophes, maybe ending in an apostrophe
# (so that already-tokenised "l' arbre" reads back the same); or a number; or "...";
# or one mark.
_TOKEN = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*'?|\d+(?:[.,:]\d+)*|\.\.\.|\S")
# French words that elide before a vowel; split after their apostrophe.
_ELISIONS = frozenset({"l", "d", "j", "n", "m", "t", "s", "c", "qu", "jusqu", "lorsqu",
                       "puisqu", "quoiqu", "presqu"})


def normalize(text: str) -> str:
    """NFC, plain apostrophes, quotes and dashes, one kind of space, lower case."""
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_APOSTROPHES).translate(_QUOTES).translate(_DASHES)
    text = text.replace("\u2026", "...")
    return _SPACES.sub(" ", text).strip().lower()


def tokenize(text: str, lang: str = "en") -> list[str]:
    """Normalise `text` and split it into word and punctuation tokens (French: l' arbre)."""
    if lang not in ("en", "fr"):
        raise ValueError(f"lang must be 'en' or 'fr', got {lang!r}")
    tokens = _TOKEN.findall(normalize(text))
    if lang == "en":
        return tokens
    out = []
    for token in tokens:
        while "'" in token[:-1]:
            head, tail = token.split("'", 1)
            if head not in _ELISIONS:
                break
            out.append(head + "'")
            token = tail
        out.append(token)
    return out


def detokenize(tokens: list[str]) -> str:
    """Join tokens with single spaces: the course's text format (the inverse of split)."""
    return " ".join(tokens)
