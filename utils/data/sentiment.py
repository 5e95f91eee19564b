"""Film reviews whose label hangs on one cue placed at a chosen distance from the end.

A review is a chain of clauses. Exactly one clause gives an opinion ("the acting was not
good", "i did not like the plot", "the film was not at all what i feared"); every other
clause is neutral filler ("we sat near the red door", "it was a tuesday"). The knob
`cue_distance` sets how many tokens follow the opinion word, so lesson 02 can plot a
CNN's accuracy against it and lesson 07 can race an RNN, a CNN and a Transformer on
cues far from the end.

The label rule (`sentiment_label` implements it, and a test checks every review):

    Each review holds exactly one opinion word (`POSITIVE` or `NEGATIVE`). The label is
    its polarity, flipped when "not" stands before it in the same clause (clauses are
    separated by "," "." and "and"). Positive = 1, negative = 0.

So "the acting was not good" is negative and "not at all what i feared" is positive.
Neutral clauses may contain "not" too ("the seats were not red"), so that a model has to
tie the negation to the opinion word rather than count negations. Classes are balanced:
draws alternate the label, and half of the reviews of each label are negated.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# Opinion words: polarity 1 = positive, 0 = negative. Verbs come in past and base form
# ("i liked" / "i did not like"); "hoped" and "feared" carry the idiom "what i hoped for".
_POSITIVE_ADJ = ("good", "great", "excellent", "wonderful", "brilliant", "superb", "moving",
                 "clever", "charming", "fantastic", "enjoyable", "beautiful")
_NEGATIVE_ADJ = ("bad", "boring", "awful", "terrible", "dull", "weak", "poor", "silly",
                 "predictable", "clumsy", "tedious", "dreadful")
_POSITIVE_VERBS = (("loved", "love"), ("liked", "like"), ("enjoyed", "enjoy"),
                   ("admired", "admire"))
_NEGATIVE_VERBS = (("hated", "hate"), ("disliked", "dislike"), ("despised", "despise"),
                   ("resented", "resent"))
_GRADABLE = frozenset({"good", "clever", "moving", "charming", "enjoyable", "beautiful", "bad",
                       "boring", "dull", "weak", "poor", "silly", "predictable", "clumsy",
                       "tedious"})
POSITIVE = frozenset(_POSITIVE_ADJ + sum(_POSITIVE_VERBS, ()) + ("hoped",))
NEGATIVE = frozenset(_NEGATIVE_ADJ + sum(_NEGATIVE_VERBS, ()) + ("feared",))
BOUNDARIES = frozenset({",", ".", "and"})
LABELS = ("negative", "positive")

_ASPECTS = ("film", "acting", "story", "plot", "music", "ending", "script", "cast",
            "dialogue", "soundtrack", "direction", "photography", "humour", "editing")

# Neutral words only: nothing here may carry an opinion (a test checks the lists).
_THINGS = ("seat", "screen", "ticket", "poster", "door", "sign", "coat", "bag", "cup", "wall",
           "lamp", "carpet", "curtain", "car", "clock", "window")
_SPOTS = ("screen", "door", "window", "wall", "exit", "aisle", "stairs", "bar", "stage")
_COLOURS = ("red", "blue", "green", "grey", "white", "black", "yellow", "brown")
_SIZES = ("big", "small", "old", "new", "round", "square", "tall", "wide")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SNACKS = ("popcorn", "tea", "crisps", "sweets", "coffee", "soup", "lemonade")
_RELATIVES = ("brother", "sister", "mother", "father", "friend", "cousin", "uncle", "aunt",
              "neighbour")
_VEHICLES = ("bus", "train", "tram", "car")
_WHEN = ("yesterday", "today", "tonight", "twice")


def _clause_3(r: random.Random) -> list[str]:
    return r.choice((
        lambda: ["it", "was", r.choice(_DAYS)],
        lambda: ["we", "had", r.choice(_SNACKS)],
        lambda: ["my", r.choice(_RELATIVES), "came"],
    ))()


def _clause_4(r: random.Random) -> list[str]:
    return r.choice((
        lambda: ["the", r.choice(_THINGS), "was", r.choice(_COLOURS)],
        lambda: ["i", "saw", "it", r.choice(_WHEN)],
        lambda: ["my", r.choice(_RELATIVES), "saw", "it"],
        lambda: ["it", "was", "a", r.choice(_DAYS)],
        lambda: ["we", "took", "the", r.choice(_VEHICLES)],
    ))()


def _clause_5(r: random.Random) -> list[str]:
    return r.choice((
        lambda: ["the", r.choice(_SIZES), r.choice(_THINGS), "was", r.choice(_COLOURS)],
        lambda: ["i", "went", "with", "my", r.choice(_RELATIVES)],
        lambda: ["we", "sat", "near", "the", r.choice(_SPOTS)],
        lambda: ["i", "watched", "it", "on", r.choice(_DAYS)],
        lambda: ["we", "took", "the", r.choice(_VEHICLES), "home"],
    ))()


def _clause_6(r: random.Random) -> list[str]:
    return r.choice((
        lambda: ["i", "watched", "it", "with", "my", r.choice(_RELATIVES)],
        lambda: ["my", r.choice(_RELATIVES), "and", "i", "saw", "it"],
        lambda: ["we", "sat", "near", "the", r.choice(_SIZES), r.choice(_SPOTS[:4])],
    ))()


def _clause_7(r: random.Random) -> list[str]:
    return r.choice((
        lambda: ["the", r.choice(_THINGS), "near", "the", r.choice(_THINGS), "was",
                 r.choice(_COLOURS)],
        lambda: ["my", r.choice(_RELATIVES), "bought", "the", "tickets", "on", r.choice(_DAYS)],
    ))()


def _negated_clause(r: random.Random, n: int) -> list[str]:
    """A neutral clause with "not" in it, of 5 or 6 tokens ("the seat was not red")."""
    size = [r.choice(_SIZES)] if n == 6 else []
    return ["the", *size, r.choice(_THINGS), "was", "not", r.choice(_COLOURS)]


_CLAUSES = {3: _clause_3, 4: _clause_4, 5: _clause_5, 6: _clause_6, 7: _clause_7}
# Short neutral phrases that fill 1-3 tokens: after the opinion clause, or before it.
_TAILS = {1: (["today"], ["yesterday"], ["tonight"]),
          2: (["last", "night"], ["this", "week"], ["on", "monday"], ["on", "sunday"]),
          3: (["in", "the", "end"], ["on", "a", "tuesday"], ["last", "friday", "night"])}
_OPENERS = {1: (["so"], ["anyway"]),
            2: (["so", ","], ["anyway", ","]),
            3: (["in", "short", ","], ["on", "balance", ","], ["all", "in", "all"])}


@dataclass(frozen=True)
class ReviewConfig:
    """Knobs of the review sampler; lengths count tokens, the final "." included."""

    min_len: int = 6
    max_len: int = 24
    # Tokens after the opinion word (the final "." counts): an int, or a (low, high) range.
    cue_distance: int | tuple[int, int] = (1, 8)
    p_negated_filler: float = 0.25  # chance that a neutral clause of 5-6 tokens holds "not"

    def __post_init__(self) -> None:
        low, high = self.cue_range
        if low < 1:
            raise ValueError(f"cue_distance counts the tokens after the cue (>= 1), got {low}")
        if low > high:
            raise ValueError(f"cue_distance range is empty: {self.cue_distance}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        if self.max_len < high + 9:  # the longest opinion clause has 9 tokens
            raise ValueError(
                f"max_len={self.max_len} is too short for cue_distance up to {high}: "
                f"the opinion clause needs up to 9 tokens before it, so use max_len >= {high + 9}"
            )
        if not 0.0 <= self.p_negated_filler <= 1.0:
            raise ValueError(f"p_negated_filler is a probability, got {self.p_negated_filler}")

    @property
    def cue_range(self) -> tuple[int, int]:
        """`cue_distance` as an inclusive (low, high) range."""
        d = self.cue_distance
        return (d, d) if isinstance(d, int) else (int(d[0]), int(d[1]))


@dataclass(frozen=True, slots=True)
class Review:
    """A review, its label (1 = positive) and the token span `[start, end)` of its cue."""

    text: str
    label: int
    cue: tuple[int, int]  # from the negation (if any) to the opinion word, inclusive

    @property
    def tokens(self) -> list[str]:
        """The review's tokens."""
        return self.text.split()

    @property
    def cue_distance(self) -> int:
        """Tokens after the opinion word, the final "." included."""
        return len(self.tokens) - self.cue[1]

    @property
    def negated(self) -> bool:
        """True if "not" flips the opinion word."""
        return self.cue[1] - self.cue[0] > 1


def sentiment_label(text: str | Sequence[str]) -> int:
    """The label rule: the opinion word's polarity, flipped by a "not" in its clause."""
    tokens = text.split() if isinstance(text, str) else list(text)
    hits = [i for i, t in enumerate(tokens) if t in POSITIVE or t in NEGATIVE]
    if len(hits) != 1:
        raise ValueError(f"a review needs exactly one opinion word, found {len(hits)}: {text!r}")
    i = hits[0]
    negated = False
    j = i - 1
    while j >= 0 and tokens[j] not in BOUNDARIES:
        negated |= tokens[j] == "not"
        j -= 1
    positive = tokens[i] in POSITIVE
    return int(positive != negated)


class ReviewSampler:
    """Draws `Review`s with its own `random.Random(seed)`: same seed, same reviews."""

    def __init__(self, config: ReviewConfig | None = None,
                 seed: int | str | random.Random = 0) -> None:
        self.config = config or ReviewConfig()
        # A Random given as seed is used as is (the split drawer shares its stream).
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def sample(self, label: int | None = None) -> Review:
        """One review; `label` fixes the class (None: a fair coin)."""
        rng, cfg = self.rng, self.config
        label = rng.randrange(2) if label is None else int(label)
        negated = rng.random() < 0.5
        distance = rng.randint(*cfg.cue_range)
        polarity = label ^ negated
        clause, opinion = self._opinion(polarity, negated, distance)
        fill = distance - 1 - (len(clause) - opinion - 1)  # tokens between clause and "."
        base = len(clause) + fill + 1  # <= distance + 9 <= max_len, as the config checks
        length = rng.randint(max(cfg.min_len, base), cfg.max_len)
        prefix = self._prefix(length - base)
        tokens = prefix + clause + self._suffix(fill) + ["."]
        cue_start = len(prefix) + (clause.index("not") if negated else opinion)
        return Review(" ".join(tokens), label, (cue_start, len(prefix) + opinion + 1))

    # ------------------------------------------------------------------ pieces
    def _opinion(self, polarity: int, negated: bool, distance: int) -> tuple[list[str], int]:
        """An opinion clause and the index of its opinion word."""
        kinds = [self._adjective_clause]
        if distance >= 3:  # "i liked the plot": two tokens follow the opinion word
            kinds.append(self._verb_clause)
        if distance >= 2 or polarity == 0:  # "what i hoped for": one token follows "hoped"
            kinds.append(self._idiom_clause)
        return self.rng.choice(kinds)(polarity, negated)

    def _adjective_clause(self, polarity: int, negated: bool) -> tuple[list[str], int]:
        r = self.rng
        words = ["the", r.choice(_ASPECTS), "was"]
        if negated:
            words.append("not")
        adjective = r.choice(_POSITIVE_ADJ if polarity else _NEGATIVE_ADJ)
        if adjective in _GRADABLE and r.random() < 0.3:
            words.append("very")
        words.append(adjective)
        return words, len(words) - 1

    def _verb_clause(self, polarity: int, negated: bool) -> tuple[list[str], int]:
        r = self.rng
        past, base = r.choice(_POSITIVE_VERBS if polarity else _NEGATIVE_VERBS)
        words = ["i", "did", "not", base] if negated else ["i", past]
        return [*words, "the", r.choice(_ASPECTS)], len(words) - 1

    def _idiom_clause(self, polarity: int, negated: bool) -> tuple[list[str], int]:
        r = self.rng
        words = ["the", r.choice(_ASPECTS), "was"]
        words += ["not", "at", "all"] if negated else ["exactly"]
        words += ["what", "i", "hoped" if polarity else "feared"]
        opinion = len(words) - 1
        return (words + ["for"] if polarity else words), opinion

    def _clause(self, n: int) -> list[str]:
        if n in (5, 6) and self.rng.random() < self.config.p_negated_filler:
            return _negated_clause(self.rng, n)
        return _CLAUSES[n](self.rng)

    def _segments(self, n: int) -> list[int]:
        """Split n >= 4 tokens into segments of 4-8 (a clause of 3-7 and a comma)."""
        parts = []
        while n > 8:
            part = self.rng.randint(4, min(8, n - 4))
            parts.append(part)
            n -= part
        return parts + [n] if n else parts

    def _prefix(self, n: int) -> list[str]:
        """Exactly n neutral tokens before the opinion clause."""
        if n == 0:
            return []
        if n < 4:
            return list(self.rng.choice(_OPENERS[n]))
        out: list[str] = []
        for part in self._segments(n):
            out += self._clause(part - 1) + [","]
        return out

    def _suffix(self, n: int) -> list[str]:
        """Exactly n neutral tokens between the opinion clause and the final "."."""
        if n == 0:
            return []
        if n < 4:
            return list(self.rng.choice(_TAILS[n]))
        out: list[str] = []
        for part in self._segments(n):
            out += [","] + self._clause(part - 1)
        return out


def generate_reviews(n: int, seed: int | str = 0, config: ReviewConfig | None = None,
                     **overrides: object) -> list[Review]:
    """`n` reviews with alternating labels (balanced), drawn with `random.Random(seed)`."""
    from dataclasses import replace

    config = replace(config or ReviewConfig(), **overrides)  # type: ignore[arg-type]
    sampler = ReviewSampler(config, seed)
    return [sampler.sample(label=i % 2) for i in range(n)]
