"""Byte-level byte-pair encoding (BPE), written to be read.

BPE (Sennrich, Haddow and Birch, 2016, "Neural Machine Translation of Rare Words with
Subword Units") starts from single symbols and repeatedly merges the most frequent
adjacent pair into a new symbol. Byte-level BPE (Radford et al., 2019, "Language Models are
Unsupervised Multitask Learners", GPT-2) starts from the 256 byte values of UTF-8, so every
string, in any script, with emoji or odd spaces, encodes without an unknown token.

    tok = train_bpe(text, vocab_size=1000, special_tokens=("<|endoftext|>",))
    ids = tok.encode("Va !")             # list[int], each in range(tok.vocab_size)
    tok.decode(ids) == "Va !"            # always: decode(encode(s)) == s
    tok.save("merges.txt"); BPETokenizer.load("merges.txt")

Ids: 0-255 are the bytes, 256 + i is the token made by merge i, and the special tokens
come last. Training is `train_bpe` (pair counts updated incrementally, fast) or
`train_bpe_naive` (all pairs recounted after every merge, slow); both learn the same merges.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

NUM_BYTES = 256

# Pre-tokenisation: text is cut into chunks first and merges never cross a chunk, so a token
# never spans "dog." or "the dog". GPT-2's pattern, for the stdlib `re`, which has no \p{L}:
# `[^\W\d_]` is "a word character that is not a digit nor '_'", i.e. a letter (Unicode L),
# plus the numbers that are not decimal digits (Nl, No: Ⅻ, ², ½; GPT-2 counts those as
# numbers). Alternatives, in order: an English contraction ('s 't 're 've 'm 'll 'd), an
# optional space and letters, an optional space and digits, an optional space and other
# symbols ('_' included), whitespace not followed by a non-space (so that the last space
# stays with the next word: "a  b" -> "a", " ", " b"), any other whitespace. Every character
# matches one of them, so the chunks put together give the text back.
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

# The same pattern for tiktoken's regex engine (Rust), whose \w and \s mean slightly different
# sets: the classes are spelled out so that both engines cut text identically (`re`'s \s also
# holds the separators \x1c-\x1f; Rust's does not).
TIKTOKEN_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?[\p{L}\p{Nl}\p{No}]+| ?\p{Nd}+"""
                    r"""| ?[^\s\x1c-\x1f\p{L}\p{N}]+|[\s\x1c-\x1f]+(?![^\s\x1c-\x1f])|[\s\x1c-\x1f]+""")

_CHUNK = re.compile(PATTERN)

Pair = tuple[int, int]


def pretokenize(text: str) -> list[str]:
    """Cut `text` into the chunks that BPE merges within; "".join(chunks) == text."""
    return _CHUNK.findall(text)


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, left to right (lesson 13's
    exercise `merge`; also its reference)."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """A trained byte-level BPE: `merges[i]` is the pair of ids that makes id 256 + i."""

    def __init__(self, merges: Sequence[Pair], special_tokens: Sequence[str] = ()) -> None:
        self.merges: list[Pair] = [tuple(m) for m in merges]
        self.special_tokens: tuple[str, ...] = tuple(special_tokens)
        self.vocab: list[bytes] = [bytes([b]) for b in range(NUM_BYTES)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        # pair -> the id it merges into; a lower id was learned earlier and applies first
        self.ranks: dict[Pair, int] = {pair: NUM_BYTES + i for i, pair in enumerate(self.merges)}
        first_special = NUM_BYTES + len(self.merges)
        self.special_ids = {s: first_special + k for k, s in enumerate(self.special_tokens)}
        # longest first, so that "<|end|>" never shadows "<|end|><|x|>" when one prefixes another
        alternatives = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(map(re.escape, alternatives)) + ")"
                                      ) if alternatives else None
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes + merges + special tokens."""
        return NUM_BYTES + len(self.merges) + len(self.special_tokens)

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")

    # --- encoding -------------------------------------------------------------------------
    def _encode_chunk(self, chunk: str) -> list[int]:
        """Apply the merges to one chunk, earliest-learned pair first."""
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(pairwise(ids), key=lambda p: self.ranks.get(p, 1 << 62))
            if pair not in self.ranks:
                break  # no adjacent pair was ever merged: the chunk is done
            ids = merge(ids, pair, self.ranks[pair])
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        out: list[int] = []
        for chunk in pretokenize(text):
            # Real text repeats its words: each distinct chunk is encoded once.
            if chunk not in self._cache:
                self._cache[chunk] = self._encode_chunk(chunk)
            out.extend(self._cache[chunk])
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of `text`; a special token in the text becomes its single id."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}; "
                            "decode bytes first (bytes.decode('utf-8'))")
        if self._special_re is None:
            return self._encode_ordinary(text)
        out: list[int] = []
        # re.split with a group keeps the separators: odd positions are special tokens
        for k, part in enumerate(self._special_re.split(text)):
            if k % 2:
                out.append(self.special_ids[part])
            elif part:
                out.extend(self._encode_ordinary(part))
        return out

    # --- decoding -------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one id (a special token's are its UTF-8 text)."""
        if token_id >= len(self.vocab):
            return self.special_tokens[token_id - len(self.vocab)].encode("utf-8")
        return self.vocab[token_id]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; raises ValueError for an id outside the vocabulary."""
        ids = list(ids)
        for position, token_id in enumerate(ids):
            if not isinstance(token_id, int) or isinstance(token_id, bool) \
                    or not 0 <= token_id < self.vocab_size:
                raise ValueError(
                    f"token id {token_id!r} at position {position} is outside the vocabulary: "
                    f"ids run from 0 to {self.vocab_size - 1} (vocab_size {self.vocab_size}); "
                    "were these ids made by another tokenizer, or by a model with a larger "
                    "output layer?")
        data = b"".join(self.token_bytes(i) for i in ids)
        # Ids from `encode` always join into valid UTF-8. Any other sequence (a model's sample,
        # a slice cut inside a multi-byte character) may not: show U+FFFD there, do not fail.
        return data.decode("utf-8", errors="replace")

    # --- saving ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the merges as text: see `load` for the format."""
        lines = [f"#bpe v1 merges={len(self.merges)} specials={len(self.special_tokens)}"]
        lines += [f"special {json.dumps(s, ensure_ascii=False)}" for s in self.special_tokens]
        lines += [f"{a} {b}" for a, b in self.merges]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a merges file written by `save`.

        Format (UTF-8 text): a header `#bpe v1 merges=M specials=S`, then S lines
        `special "<json string>"`, then M lines `A B`: merge i joins ids A and B into id 256 + i,
        so A and B are below 256 + i. Errors name the file, the line and what is wrong.
        """
        return cls(*_parse_merges(Path(path)))

    def to_tiktoken(self, name: str = "course-bpe") -> Any:
        """The same tokenizer as a `tiktoken.Encoding` (same ids; tiktoken must be installed)."""
        import tiktoken  # a test and benchmark dependency, not a course requirement

        ranks: dict[bytes, int] = {}
        for token_id, token in enumerate(self.vocab):
            if token in ranks:
                # tiktoken maps bytes to one id; two merges spelling the same bytes cannot map
                raise ValueError(f"ids {ranks[token]} and {token_id} both spell {token!r}; "
                                 "tiktoken needs every token's bytes to be unique")
            ranks[token] = token_id
        return tiktoken.Encoding(name=name, pat_str=TIKTOKEN_PATTERN, mergeable_ranks=ranks,
                                 special_tokens=dict(self.special_ids))


class MergesFileError(ValueError):
    """A merges file is corrupt or truncated; the message names the file and the line."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def _parse_merges(path: Path) -> tuple[list[Pair], list[str]]:
    """Merges and special tokens of a file in `BPETokenizer.load`'s format."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    header = re.fullmatch(r"#bpe v1 merges=(\d+) specials=(\d+)", lines[0]) if lines else None
    if header is None:
        found = repr(lines[0][:60]) if lines else "an empty file"
        raise MergesFileError(path, 1, "expected the header '#bpe v1 merges=M specials=S', "
                                       f"found {found}; is this a merges file from BPETokenizer.save?")
    num_merges, num_specials = int(header[1]), int(header[2])
    if len(lines) - 1 < num_merges + num_specials:
        raise MergesFileError(path, len(lines), f"truncated: the header promises {num_specials} "
                              f"special tokens and {num_merges} merges, the file ends after "
                              f"{len(lines) - 1} lines")
    specials = [_parse_special(path, n, lines[n - 1]) for n in range(2, 2 + num_specials)]
    merges: list[Pair] = []
    for n in range(2 + num_specials, 2 + num_specials + num_merges):
        merges.append(_parse_merge(path, n, lines[n - 1], NUM_BYTES + len(merges)))
    if len(lines) > 1 + num_specials + num_merges:
        raise MergesFileError(path, 2 + num_specials + num_merges,
                              f"the header promises {num_merges} merges but more lines follow")
    return merges, specials


def _parse_special(path: Path, n: int, line: str) -> str:
    try:
        if not line.startswith("special "):
            raise ValueError
        token = json.loads(line.removeprefix("special "))
        if not isinstance(token, str) or not token:
            raise ValueError
    except ValueError:
        raise MergesFileError(path, n, 'expected a special token as `special "<json string>"`, '
                                       f"found {line[:60]!r}") from None
    return token


def _parse_merge(path: Path, n: int, line: str, new_id: int) -> Pair:
    parts = line.split(" ")
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise MergesFileError(path, n, f"expected a merge as two token ids 'A B', found {line[:60]!r}")
    a, b = int(parts[0]), int(parts[1])
    if max(a, b) >= new_id:
        raise MergesFileError(path, n, f"merge {a} {b} makes id {new_id}, so it can only join ids "
                                       f"below {new_id}; the file is corrupt or its lines reordered")
    return a, b


# --- training --------------------------------------------------------------------------------
def _check_vocab_size(vocab_size: int, special_tokens: Sequence[str]) -> int:
    """The number of merges to learn; raises ValueError when `vocab_size` is too small."""
    if isinstance(special_tokens, str):
        raise TypeError("special_tokens is a sequence of strings, e.g. ('<|endoftext|>',), not one str")
    smallest = NUM_BYTES + len(special_tokens)
    if vocab_size < smallest:
        raise ValueError(f"vocab_size {vocab_size} is too small: a byte-level vocabulary holds the "
                         f"{NUM_BYTES} byte values plus {len(special_tokens)} special token(s), "
                         f"so vocab_size must be at least {smallest}")
    if len(set(special_tokens)) != len(special_tokens) or not all(special_tokens):
        raise ValueError(f"special tokens must be distinct, non-empty strings: {special_tokens!r}")
    return vocab_size - smallest


def word_counts(text: str, special_tokens: Sequence[str] = ()) -> Counter[tuple[int, ...]]:
    """Each distinct chunk of `text` as a tuple of byte ids, with how often it occurs."""
    parts = [text]
    if special_tokens:  # a special token is never split nor learned from
        parts = re.split("|".join(map(re.escape, special_tokens)), text)
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(pretokenize(part))
    return Counter({tuple(chunk.encode("utf-8")): n for chunk, n in counts.items()})


def _tie_key(pair: Pair, count: int, vocab: list[bytes]) -> tuple:
    """The order merges are chosen in: highest count, then the smallest pair of byte strings.

    Comparing bytes rather than ids makes the choice independent of how ids were numbered;
    the ids come last only for two tokens that spell the same bytes.
    """
    return (-count, vocab[pair[0]], vocab[pair[1]], pair)


def word_pairs(word: Sequence[int]) -> Counter[Pair]:
    """Adjacent pairs of one word, counted (overlaps too: "aaa" holds (a, a) twice)."""
    return Counter(pairwise(word))


def train_bpe(text: str, vocab_size: int, special_tokens: Sequence[str] = ()) -> BPETokenizer:
    """Learn merges until the vocabulary holds `vocab_size` ids (or no pair is left).

    Incremental: pair counts are kept between merges. Merging (a, b) changes only the words
    that contain it, found through an index pair -> words, so only their pairs are recounted.
    The best pair comes from a heap; stale entries (counts changed since) are skipped.
    """
    num_merges = _check_vocab_size(vocab_size, special_tokens)
    counts = word_counts(text, special_tokens)
    words, freqs = [list(w) for w in counts], list(counts.values())
    vocab = [bytes([b]) for b in range(NUM_BYTES)]
    pair_counts: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words holding it
    for index, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair, n in word_pairs(word).items():
            pair_counts[pair] += n * freq
            where[pair].add(index)
    heap = [_tie_key(p, n, vocab) for p, n in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges:
        while heap and pair_counts.get(heap[0][3]) != -heap[0][0]:
            heapq.heappop(heap)  # stale: that pair's count changed after it was pushed
        if not heap:
            break  # every word is a single token: nothing left to merge
        pair = heap[0][3]
        new_id = len(vocab)
        merges.append(pair)
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        changed: set[Pair] = set()
        for index in where.pop(pair):
            old, freq = words[index], freqs[index]
            new = merge(old, pair, new_id)
            # The difference between the word's pairs after and before, weighted by frequency
            delta = word_pairs(new)
            delta.subtract(word_pairs(old))
            for p, n in delta.items():
                if n:
                    pair_counts[p] += n * freq
                    changed.add(p)
                    if n > 0:
                        where[p].add(index)  # words that lost a pair stay indexed: harmless
            words[index] = new
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, _tie_key(p, pair_counts[p], vocab))
            else:
                del pair_counts[p]
    return BPETokenizer(merges, special_tokens)


def train_bpe_naive(text: str, vocab_size: int, special_tokens: Sequence[str] = ()) -> BPETokenizer:
    """`train_bpe` by brute force: recount every pair of every word after each merge."""
    num_merges = _check_vocab_size(vocab_size, special_tokens)
    counts = word_counts(text, special_tokens)
    words, freqs = [list(w) for w in counts], list(counts.values())
    vocab = [bytes([b]) for b in range(NUM_BYTES)]
    merges: list[Pair] = []
    while len(merges) < num_merges:
        pair_counts: Counter[Pair] = Counter()
        for word, freq in zip(words, freqs, strict=True):
            for pair in pairwise(word):
                pair_counts[pair] += freq
        if not pair_counts:
            break
        pair = min(pair_counts, key=lambda p: _tie_key(p, pair_counts[p], vocab))
        merges.append(pair)
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        words = [merge(w, pair, len(vocab) - 1) for w in words]
    return BPETokenizer(merges, special_tokens)
