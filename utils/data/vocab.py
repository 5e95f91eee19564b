"""Vocabularies: tokens to integer ids and back, at the word or the character level.

Ids 0-3 are the same in every vocabulary of the course, so that models and losses can
rely on them: `<pad>`=0 (so `F.cross_entropy(..., ignore_index=PAD_ID)` skips padding),
`<bos>`=1, `<eos>`=2, `<unk>`=3. Ordinary tokens follow, most frequent first (ties in
alphabetical order), so the same corpus always gives the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


class Vocab:
    """A word-level vocabulary: a text is its space-separated tokens."""

    level = "word"

    def __init__(self, tokens: Iterable[str], extra_specials: Sequence[str] = ()) -> None:
        self.specials = SPECIALS + tuple(extra_specials)
        self.itos: list[str] = list(self.specials)
        for token in tokens:
            if token not in self.specials:
                self.itos.append(token)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary cannot hold the same token twice")
        # Structural specials vanish when decoding; <unk> stays, so unknown words show.
        self._special_ids = frozenset(range(len(self.specials))) - {UNK_ID}

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        corpus: Iterable[str | Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        extra_specials: Sequence[str] = (),
    ) -> Vocab:
        """Count tokens over `corpus` (texts or token lists); keep those seen `min_freq` times."""
        counts: Counter[str] = Counter()
        for text in corpus:
            counts.update(cls.tokenize(text) if isinstance(text, str) else text)
        kept = [t for t, c in counts.items() if c >= min_freq]
        kept.sort(key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS) - len(extra_specials))]
        return cls(kept, extra_specials)

    # ------------------------------------------------------------------ text <-> tokens
    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Split a text into tokens: words and punctuation separated by spaces."""
        return text.split()

    @staticmethod
    def detokenize(tokens: Sequence[str]) -> str:
        """Join tokens back into a text, with single spaces."""
        return " ".join(tokens)

    # ------------------------------------------------------------------ tokens <-> ids
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, UNK_ID)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.itos == self.itos  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self.itos)))

    def __repr__(self) -> str:
        preview = " ".join(self.itos[len(self.specials):len(self.specials) + 8])
        return f"{type(self).__name__}(size={len(self)}, tokens: {preview} ...)"

    @property
    def pad_id(self) -> int:
        """Id of <pad> (0)."""
        return PAD_ID

    @property
    def bos_id(self) -> int:
        """Id of <bos> (1)."""
        return BOS_ID

    @property
    def eos_id(self) -> int:
        """Id of <eos> (2)."""
        return EOS_ID

    @property
    def unk_id(self) -> int:
        """Id of <unk> (3)."""
        return UNK_ID

    def token(self, index: int) -> str:
        """The token with id `index`."""
        return self.itos[index]

    def encode(self, text: str | Sequence[str], *, bos: bool = False,
               eos: bool = False) -> list[int]:
        """Ids of a text's tokens (unknown ones -> `<unk>`); optionally framed by <bos>/<eos>."""
        tokens = self.tokenize(text) if isinstance(text, str) else text
        get = self.stoi.get
        ids = [get(t, UNK_ID) for t in tokens]
        if bos:
            ids.insert(0, BOS_ID)
        if eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Iterable[int] | Any, *, stop_at_eos: bool = True,
               keep_specials: bool = False) -> str:
        """The text of a 1-D id sequence (list or tensor): cut at <eos>, <pad>/<bos> dropped."""
        if hasattr(ids, "dim") and ids.dim() != 1:
            raise ValueError(
                f"decode takes one sequence (1-D), got a tensor of shape {tuple(ids.shape)}: "
                "use decode_batch for a (B, T) batch"
            )
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        tokens = []
        for i in ids:
            i = int(i)
            if i == EOS_ID and stop_at_eos:
                break
            if i in self._special_ids and not keep_specials:
                continue
            tokens.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return self.detokenize(tokens)

    def decode_batch(self, ids: Any, **kwargs: bool) -> list[str]:
        """Texts of a (B, T) batch of ids, one per row (see `decode`)."""
        rows = ids.tolist() if hasattr(ids, "tolist") else ids
        return [self.decode(row, **kwargs) for row in rows]

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: `Vocab.from_dict(v.to_dict()) == v`."""
        return {"level": self.level, "specials": list(self.specials), "itos": list(self.itos)}

    @staticmethod
    def from_dict(state: dict[str, Any]) -> Vocab:
        """Rebuild a vocabulary saved with `to_dict`."""
        cls = CharVocab if state.get("level") == "char" else Vocab
        specials = list(state["specials"])
        if specials[: len(SPECIALS)] != list(SPECIALS):
            raise ValueError(f"a course vocabulary starts with {SPECIALS}, got {specials[:4]}")
        return cls(state["itos"][len(specials):], extra_specials=specials[len(SPECIALS):])


class CharVocab(Vocab):
    """A character-level vocabulary: every character, the space included, is a token."""

    level = "char"

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Split a text into characters."""
        return list(text)

    @staticmethod
    def detokenize(tokens: Sequence[str]) -> str:
        """Join characters back into a text."""
        return "".join(tokens)


def build_vocab(corpus: Iterable[str], level: str = "word", min_freq: int = 1,
                max_size: int | None = None, extra_specials: Sequence[str] = ()) -> Vocab:
    """A `Vocab` ("word") or `CharVocab` ("char") counted over the texts of `corpus`."""
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")
    cls = CharVocab if level == "char" else Vocab
    return cls.build(corpus, min_freq=min_freq, max_size=max_size, extra_specials=extra_specials)
