"""A grammar that writes the same sentence in English and in French.

The sampler draws a *tree* (clauses with a subject, a verb, maybe an object or a
predicative adjective; noun phrases with adjectives and relative clauses) and then reads
it out twice, once per language. Both sentences come from one tree, so every English
sentence has exactly one French translation, and every word knows which node of the tree
it came from: matching those nodes gives the word alignment for free.

What the French side teaches a model (each is a phenomenon attention has to learn):

- gender and number agreement: le/la/l'/les, un/une/des, adjective endings, verb endings
  ("the small red cars are fast" -> "les petites voitures rouges sont rapides");
- adjectives that move after the noun ("the red car" -> "la voiture rouge"), while a few
  (petit, grand, bon, beau, nouveau, vieux, ...) stay before it;
- negation around the verb ("does not see" -> "ne voit pas", "n'est pas"), with "de"
  for an indefinite object ("does not see a dog" -> "ne voit pas de chien");
- pronouns that agree with their antecedent ("the table ... and it is heavy" -> "elle");
- relative clauses with "qui" (subject) and "que" (object), nested to make sentences
  as long as asked: length is the sampler's main knob.

Lengths count English tokens, the final "." included.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from itertools import accumulate
from typing import TypeVar

from utils.data.lexicon import (
    FRENCH_VOWELS,
    Adjective,
    Adverb,
    Noun,
    Verb,
    compatible,
    lexicon,
)

TRANS, INTR, COP = "trans", "intr", "cop"
T = TypeVar("T")

# French elision: these words lose their vowel before a vowel (or a mute h) and keep the
# apostrophe as part of the token: "le arbre" -> "l' arbre".
_ELIDE = {"le": "l'", "la": "l'", "je": "j'", "ne": "n'", "que": "qu'", "de": "d'"}
_EN_VOWELS = frozenset("aeiou")

# Link offsets: each tree node owns 8 consecutive link ids; a word's link says which
# node (and which slot of it) it realises, in either language.
_DET, _NOUN, _PRE, _POST, _REL = 0, 1, 2, 3, 4  # noun phrase slots
_VERB, _NEG, _ADV, _DEGREE, _ADJ = 0, 1, 2, 3, 4  # clause slots


@dataclass(frozen=True)
class GrammarConfig:
    """Knobs of the sentence sampler; lengths count English tokens, "." included."""

    min_len: int = 4
    max_len: int = 16
    max_depth: int = 4  # how deeply relative clauses may nest
    p_plural: float = 0.3  # a noun phrase is plural
    p_indefinite: float = 0.3  # a noun phrase is indefinite (a / an / bare plural)
    p_pronoun: float = 0.1  # a subject is "i", "you" or "we"
    p_negation: float = 0.25  # a clause is negated
    clause_weights: tuple[float, float, float] = (0.5, 0.2, 0.3)  # transitive, intransitive, copula
    # How often the sampler grows a sentence by: an adjective, a relative clause, a frequency
    # adverb, a degree adverb, a second clause with a pronoun ("... and it is heavy").
    grow_weights: tuple[float, float, float, float, float] = (4.0, 3.0, 1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if not 3 <= self.min_len <= self.max_len:
            raise ValueError(
                f"need 3 <= min_len <= max_len (English tokens, '.' included), "
                f"got min_len={self.min_len}, max_len={self.max_len}"
            )
        if self.max_depth < 0:
            raise ValueError(f"max_depth must be >= 0, got {self.max_depth}")
        for name in ("p_plural", "p_indefinite", "p_pronoun", "p_negation"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability, got {value}")


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence pair of the world, with the links that give its word alignment.

    Both sentences are read from one tree; `en_links[i]` and `fr_links[j]` name the tree
    node (and slot) that token realises, so tokens with equal links translate each other.
    `agreement` holds groups of French token indices: the controller first (a noun or a
    subject pronoun), then every word that must agree with it (determiner, adjectives,
    verb, predicative adjective, coreferent pronoun).
    """

    en: str
    fr: str
    summary: str  # the English sentence compressed: no adjectives, adverbs, relative clauses
    en_links: tuple[int, ...]
    fr_links: tuple[int, ...]
    agreement: tuple[tuple[int, ...], ...]
    depth: int  # how deeply relative clauses nest (0 = no relative clause)
    negated: bool  # some clause carries a negation

    @property
    def en_tokens(self) -> list[str]:
        """The English tokens."""
        return self.en.split()

    @property
    def fr_tokens(self) -> list[str]:
        """The French tokens."""
        return self.fr.split()

    @property
    def alignment(self) -> tuple[tuple[int, int], ...]:
        """`(english_index, french_index)` pairs of tokens that translate each other, sorted."""
        where: dict[int, list[int]] = {}
        for i, link in enumerate(self.en_links):
            where.setdefault(link, []).append(i)
        return tuple(sorted((i, j) for j, link in enumerate(self.fr_links)
                            for i in where.get(link, ())))

    def aligned(self, en_index: int) -> list[int]:
        """French token indices aligned to the English token at `en_index`."""
        link = self.en_links[en_index]
        return [j for j, other in enumerate(self.fr_links) if other == link]


# --------------------------------------------------------------------- the tree
class _NP:
    """A noun phrase: determiner, at most one adjective on each side, maybe a relative."""

    __slots__ = ("info", "plural", "definite", "pre", "post", "rel", "id", "depth", "nest")

    def __init__(self, info: _NounInfo, plural: bool, definite: bool, id: int, depth: int,
                 nest: bool) -> None:
        self.info, self.plural, self.definite = info, plural, definite
        self.pre: Adjective | None = None
        self.post: Adjective | None = None
        self.rel: _Clause | None = None
        self.id, self.depth, self.nest = id, depth, nest


class _Pron:
    """A subject pronoun: i / you / we, or he / she / it / they for an antecedent."""

    __slots__ = ("person", "plural", "en", "fr", "id", "antecedent")

    def __init__(self, person: int, plural: bool, en: str, fr: str, id: int,
                 antecedent: _NP | None = None) -> None:
        self.person, self.plural, self.en, self.fr = person, plural, en, fr
        self.id, self.antecedent = id, antecedent


class _Clause:
    """A clause; `gap` names the role its antecedent fills in a relative clause."""

    __slots__ = ("kind", "verb", "adj", "subj", "obj", "neg", "adv", "degree", "gap", "id")

    def __init__(self, kind: str, subj: _NP | _Pron, id: int, verb: Verb | None = None,
                 obj: _NP | None = None, adj: Adjective | None = None,
                 gap: str | None = None) -> None:
        self.kind, self.subj, self.id, self.gap = kind, subj, id, gap
        self.verb, self.obj, self.adj = verb, obj, adj
        self.neg = False
        self.adv: Adverb | None = None
        self.degree: Adverb | None = None


class _Tree:
    __slots__ = ("main", "coord", "id", "nps", "clauses", "length", "next_id")

    def __init__(self) -> None:
        self.main: _Clause | None = None
        self.coord: _Clause | None = None
        self.nps: list[_NP] = []
        self.clauses: list[_Clause] = []
        self.length = 0
        self.next_id = 8  # ids 0..7 belong to the sentence itself ("and", ".")


# ---------------------------------------------------------------- the lexicon index
class _NounInfo:
    """A noun with everything it combines with, precomputed once."""

    __slots__ = ("noun", "pre", "post", "adjs", "intr", "trans_subj", "trans_obj", "en_pron",
                 "fr_pron", "vowel_en_sg", "vowel_fr_sg", "vowel_fr_pl")

    def __init__(self, noun: Noun) -> None:
        self.noun = noun
        lex = lexicon()
        self.adjs = [a for a in lex.adjectives if compatible(a.tags, noun)]
        self.pre = [a for a in self.adjs if a.pre]
        self.post = [a for a in self.adjs if not a.pre]
        self.intr = [v for v in lex.verbs if not v.transitive and compatible(v.subject, noun)]
        self.trans_subj = [v for v in lex.verbs if v.transitive and compatible(v.subject, noun)]
        self.trans_obj = [v for v in lex.verbs if v.transitive and compatible(v.object, noun)]
        person = "person" in noun.tags
        female = noun.gender == "f"
        self.en_pron = (("she" if female else "he") if person else "it", "they")
        self.fr_pron = ("elle" if female else "il", "elles" if female else "ils")


class _VerbInfo:
    __slots__ = ("verb", "subjects", "objects", "person")

    def __init__(self, verb: Verb, nouns: list[_NounInfo]) -> None:
        self.verb = verb
        self.subjects = [n for n in nouns if compatible(verb.subject, n.noun)]
        self.objects = [n for n in nouns if verb.transitive and compatible(verb.object, n.noun)]
        self.person = "person" in verb.subject


class _Index:
    def __init__(self) -> None:
        lex = lexicon()
        self.nouns = [_NounInfo(n) for n in lex.nouns]
        verbs = [_VerbInfo(v, self.nouns) for v in lex.verbs]
        self.verb_info = {id(v.verb): v for v in verbs}
        self.trans = [v for v in verbs if v.verb.transitive]
        self.intr = [v for v in verbs if not v.verb.transitive]
        self.freq = lex.frequency_adverbs
        self.degree = lex.degree_adverbs


@cache
def _index() -> _Index:
    return _Index()


def _pick(rng: random.Random, items: Sequence[T]) -> T:
    """`rng.choice(items)`, about twice as fast (the sampler calls it a lot)."""
    return items[int(rng.random() * len(items))]


# Subject pronouns that need no antecedent: (person, plural, English, French).
_SPEAKERS = ((1, False, "i", "je"), (2, True, "you", "vous"), (1, True, "we", "nous"))


# ------------------------------------------------------------------ the sampler
class SentenceSampler:
    """Draws `Sentence`s from the grammar with its own `random.Random(seed)`."""

    def __init__(self, config: GrammarConfig | None = None,
                 seed: int | str | random.Random = 0) -> None:
        self.config = config or GrammarConfig()
        # A Random given as seed is used as is (the split drawer shares its stream).
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        self._ix = _index()
        self._grow_ops = (self._grow_adjective, self._grow_relative, self._grow_adverb,
                          self._grow_degree, self._grow_coordination)
        self._clause_cum = list(accumulate(self.config.clause_weights))

    def __iter__(self) -> SentenceSampler:
        return self

    def __next__(self) -> Sentence:
        return self.sample()

    def sample(self) -> Sentence:
        """One sentence pair whose English length lies in [min_len, max_len]."""
        cfg, rng = self.config, self.rng
        for _ in range(1000):
            tree = self._skeleton()
            if tree.length > cfg.max_len:
                continue
            target = rng.randint(max(cfg.min_len, tree.length), cfg.max_len)
            self._grow(tree, target)
            if tree.length >= cfg.min_len:
                return _realise(tree)
        raise RuntimeError(
            f"could not draw a sentence of {cfg.min_len}-{cfg.max_len} tokens with "
            f"max_depth={cfg.max_depth}: raise max_depth or lower min_len"
        )

    # -------------------------------------------------------------- building blocks
    def _new_id(self, tree: _Tree) -> int:
        tree.next_id += 8
        return tree.next_id - 8

    def _np(self, tree: _Tree, info: _NounInfo, depth: int, nest: bool = True) -> _NP:
        rng, cfg = self.rng, self.config
        np = _NP(info, rng.random() < cfg.p_plural, rng.random() >= cfg.p_indefinite,
                 self._new_id(tree), depth, nest)
        tree.nps.append(np)
        return np

    def _subject(self, tree: _Tree, verb: _VerbInfo, depth: int, nest: bool) -> _NP | _Pron:
        rng = self.rng
        if verb.person and rng.random() < self.config.p_pronoun:
            person, plural, en, fr = _pick(rng, _SPEAKERS)
            return _Pron(person, plural, en, fr, self._new_id(tree))
        return self._np(tree, _pick(rng, verb.subjects), depth, nest)

    def _clause(self, tree: _Tree, kind: str, subj: _NP | _Pron, **parts: object) -> _Clause:
        clause = _Clause(kind, subj, self._new_id(tree), **parts)  # type: ignore[arg-type]
        clause.neg = self.rng.random() < self.config.p_negation
        tree.clauses.append(clause)
        return clause

    def _main_clause(self, tree: _Tree) -> _Clause:
        rng, ix = self.rng, self._ix
        kind = (TRANS, INTR, COP)[bisect(self._clause_cum, rng.random() * self._clause_cum[-1])]
        if kind == COP:
            subj = self._np(tree, _pick(rng, ix.nouns), 0)
            return self._clause(tree, COP, subj, adj=_pick(rng, subj.info.adjs))
        verb = _pick(rng, ix.trans if kind == TRANS else ix.intr)
        subj = self._subject(tree, verb, 0, True)
        obj = self._np(tree, _pick(rng, verb.objects), 0) if kind == TRANS else None
        return self._clause(tree, kind, subj, verb=verb.verb, obj=obj)

    def _skeleton(self) -> _Tree:
        tree = _Tree()
        tree.main = self._main_clause(tree)
        tree.length = _clause_len(tree.main) + 1  # "."
        return tree

    def _grow(self, tree: _Tree, target: int) -> None:
        rng, ops, max_len = self.rng, self._grow_ops, self.config.max_len
        base = self.config.grow_weights
        weights = list(base)
        while tree.length < target:
            # An operation that finds nothing to grow is switched off until another one
            # succeeds (which may bring new noun phrases or clauses to grow).
            total = sum(weights)
            if total <= 0:
                return
            x, k = rng.random() * total, 0
            while x >= weights[k] or weights[k] == 0:
                x -= weights[k]
                k += 1
            added = ops[k](tree, max_len - tree.length, target - tree.length)
            if added:
                tree.length += added
                weights[:] = base
            else:
                weights[k] = 0.0

    # Each grow step gets the room left (up to max_len) and the tokens still wanted (up to
    # the target length); it returns the number of English tokens it added (0 = none fit).
    def _grow_adjective(self, tree: _Tree, room: int, want: int) -> int:
        open_nps = [np for np in tree.nps
                    if (np.pre is None and np.info.pre) or (np.post is None and np.info.post)]
        if not open_nps or room < 1:
            return 0
        rng = self.rng
        np = _pick(rng, open_nps)
        info = np.info
        if np.pre is None and info.pre and (np.post is not None or rng.random() < 0.5):
            np.pre = _pick(rng, info.pre)
        else:
            np.post = _pick(rng, info.post)
        return 1

    def _grow_relative(self, tree: _Tree, room: int, want: int) -> int:
        max_depth = self.config.max_depth
        heads = [np for np in tree.nps if np.rel is None and np.nest and np.depth < max_depth]
        if not heads or room < 2:
            return 0
        head = _pick(self.rng, heads)
        for long in (want >= 5, False):  # if the first draw is too long, try a short one
            n_nps = len(tree.nps)
            clause = self._relative(tree, head, long)
            cost = 1 + _clause_len(clause)
            if cost <= room:
                head.rel = clause
                return cost
            del tree.nps[n_nps:]  # too long: forget it and the noun phrases it brought
            tree.clauses.remove(clause)
        return 0

    def _relative(self, tree: _Tree, head: _NP, long: bool) -> _Clause:
        """A relative clause on `head`; `long` prefers kinds that bring a new noun phrase."""
        rng, ix, info, depth = self.rng, self._ix, head.info, head.depth + 1
        kinds = []
        if info.trans_subj:
            kinds.append(TRANS)
        if info.trans_obj:
            kinds.append("obj")
        if not long or not kinds or rng.random() < 0.25:
            kinds += [COP, INTR] if info.intr else [COP]
        kind = _pick(rng, kinds)
        if kind == COP:
            clause = self._clause(tree, COP, head, adj=_pick(rng, info.adjs), gap="subj")
        elif kind == INTR:
            clause = self._clause(tree, INTR, head, verb=_pick(rng, info.intr), gap="subj")
        elif kind == TRANS:
            verb = ix.verb_info[id(_pick(rng, info.trans_subj))]
            obj = self._np(tree, _pick(rng, verb.objects), depth)
            clause = self._clause(tree, TRANS, head, verb=verb.verb, obj=obj, gap="subj")
        else:
            # Object relative ("the cat that the dog sees"): its subject does not nest
            # further, which keeps centre-embedding to one level and the English readable.
            verb = ix.verb_info[id(_pick(rng, info.trans_obj))]
            subj = self._subject(tree, verb, depth, nest=False)
            clause = self._clause(tree, TRANS, subj, verb=verb.verb, obj=head, gap="obj")
        if not long:
            clause.neg = False
        return clause

    def _grow_adverb(self, tree: _Tree, room: int, want: int) -> int:
        clauses = [c for c in tree.clauses if c.kind != COP and not c.neg and c.adv is None]
        if not clauses or room < 1:
            return 0
        _pick(self.rng, clauses).adv = _pick(self.rng, self._ix.freq)
        return 1

    def _grow_degree(self, tree: _Tree, room: int, want: int) -> int:
        clauses = [c for c in tree.clauses if c.kind == COP and c.degree is None]
        if not clauses or room < 1:
            return 0
        _pick(self.rng, clauses).degree = _pick(self.rng, self._ix.degree)
        return 1

    def _grow_coordination(self, tree: _Tree, room: int, want: int) -> int:
        main, rng = tree.main, self.rng
        if tree.coord is not None or not isinstance(main.subj, _NP) or room < 4:
            return 0
        ante = main.subj
        info = ante.info
        pron = _Pron(3, ante.plural, info.en_pron[ante.plural], info.fr_pron[ante.plural],
                     self._new_id(tree), antecedent=ante)
        kinds = [COP] + [INTR] * bool(info.intr)
        if info.trans_subj and want >= 5:
            kinds += [TRANS, TRANS]
        n_nps = len(tree.nps)
        kind = _pick(rng, kinds)
        if kind == COP:
            clause = self._clause(tree, COP, pron, adj=_pick(rng, info.adjs))
        elif kind == INTR:
            clause = self._clause(tree, INTR, pron, verb=_pick(rng, info.intr))
        else:
            verb = self._ix.verb_info[id(_pick(rng, info.trans_subj))]
            obj = self._np(tree, _pick(rng, verb.objects), 0)
            clause = self._clause(tree, TRANS, pron, verb=verb.verb, obj=obj)
        cost = 1 + _clause_len(clause)  # "and" + the clause
        if cost > room:
            del tree.nps[n_nps:]
            tree.clauses.remove(clause)
            return 0
        tree.coord = clause
        return cost


# ------------------------------------------------------------------ lengths
def _np_len(np: _NP) -> int:
    n = 1 + (np.definite or not np.plural) + (np.pre is not None) + (np.post is not None)
    return n + (1 + _clause_len(np.rel) if np.rel is not None else 0)


def _clause_len(c: _Clause) -> int:
    """English tokens of a clause, without the constituent a relative clause leaves out."""
    n = 0
    if c.gap != "subj":
        n += 1 if isinstance(c.subj, _Pron) else _np_len(c.subj)
    if c.kind == COP:
        return n + 2 + c.neg + (c.degree is not None)
    n += 1 + 2 * c.neg + (c.adv is not None)
    if c.kind == TRANS and c.gap != "obj":
        n += _np_len(c.obj)
    return n


# ------------------------------------------------------------------ English
def _third_singular(subj: _NP | _Pron) -> bool:
    if isinstance(subj, _Pron):
        return subj.person == 3 and not subj.plural
    return not subj.plural


class _English:
    """Accumulates English tokens, their links, and whether the summary keeps each one."""

    __slots__ = ("out", "links", "keep")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.links: list[int] = []
        self.keep: list[bool] = []

    def add(self, word: str, link: int, keep: bool) -> None:
        self.out.append(word)
        self.links.append(link)
        self.keep.append(keep)

    def np(self, np: _NP, keep: bool) -> None:
        b, noun = np.id, np.info.noun
        if np.definite:
            self.add("the", b + _DET, keep)
        elif not np.plural:
            self.add("a", b + _DET, keep)  # "an" is decided once the next word is known
        if np.pre is not None:  # English puts every adjective before the noun
            self.add(np.pre.en, b + _PRE, False)
        if np.post is not None:
            self.add(np.post.en, b + _POST, False)
        self.add(noun.en_pl if np.plural else noun.en, b + _NOUN, keep)
        if np.rel is not None:  # the summary drops relative clauses whole
            self.add("that", b + _REL, False)
            self.clause(np.rel, False)

    def clause(self, c: _Clause, keep: bool) -> None:
        b, subj = c.id, c.subj
        if c.gap != "subj":
            if isinstance(subj, _Pron):
                self.add(subj.en, subj.id, keep)
            else:
                self.np(subj, keep)
        singular = _third_singular(subj)
        if c.kind == COP:
            self.add("is" if singular else "are", b + _VERB, keep)
            if c.neg:
                self.add("not", b + _NEG, keep)
            if c.degree is not None:
                self.add(c.degree.en, b + _DEGREE, False)
            self.add(c.adj.en, b + _ADJ, keep)  # predicative: the summary keeps it
            return
        verb = c.verb
        if c.neg:  # do-support: "does" carries the tense, so it aligns with the French verb
            self.add("does" if singular else "do", b + _VERB, keep)
            self.add("not", b + _NEG, keep)
            self.add(verb.en, b + _VERB, keep)
        else:
            if c.adv is not None:
                self.add(c.adv.en, b + _ADV, False)
            self.add(verb.en_3sg if singular else verb.en, b + _VERB, keep)
        if c.kind == TRANS and c.gap != "obj":
            self.np(c.obj, keep)


def _en_articles(out: list[str]) -> list[str]:
    for i in range(len(out) - 1):
        if out[i] == "a" and out[i + 1][0] in _EN_VOWELS:
            out[i] = "an"
        elif out[i] == "an" and out[i + 1][0] not in _EN_VOWELS:
            out[i] = "a"
    return out


def _en_sentence(tree: _Tree) -> _English:
    en = _English()
    en.clause(tree.main, True)
    if tree.coord is not None:
        en.add("and", 0, True)
        en.clause(tree.coord, True)
    en.add(".", 1, True)
    _en_articles(en.out)
    return en


# ------------------------------------------------------------------ French
class _French:
    """Accumulates French tokens, their links and the agreement groups."""

    __slots__ = ("out", "links", "groups", "heads")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.links: list[int] = []
        self.groups: list[tuple[int, ...]] = []
        self.heads: dict[int, int] = {}  # noun phrase id -> index of its noun

    def add(self, word: str, link: int) -> int:
        self.out.append(word)
        self.links.append(link)
        return len(self.out) - 1

    def np(self, np: _NP, negated_object: bool = False) -> int:
        """Write a noun phrase; returns the index of its noun."""
        b, noun, plural = np.id, np.info.noun, np.plural
        gender = noun.gender
        if np.definite:
            det = self.add("les" if plural else ("la" if gender == "f" else "le"), b + _DET)
        elif negated_object:  # "ne voit pas de chien(s)"
            det = self.add("de", b + (_NOUN if plural else _DET))
        elif plural:  # English has a bare plural: "des" aligns with the noun
            det = self.add("de" if np.pre is not None else "des", b + _NOUN)
        else:
            det = self.add("une" if gender == "f" else "un", b + _DET)
        group = [det]
        if np.pre is not None:
            word = np.pre.form(gender, plural)
            if np.pre.fr_vowel and not plural and gender == "m" and noun.fr[0] in FRENCH_VOWELS:
                word = np.pre.fr_vowel  # "un nouvel avion", "un vieil arbre"
            group.append(self.add(word, b + _PRE))
        head = self.add(noun.fr_pl if plural else noun.fr, b + _NOUN)
        self.heads[b] = head
        if np.post is not None:
            group.append(self.add(np.post.form(gender, plural), b + _POST))
        self.groups.append((head, *group))
        if np.rel is not None:
            self.add("qui" if np.rel.gap == "subj" else "que", b + _REL)
            self.clause(np.rel, head)
        return head

    def clause(self, c: _Clause, antecedent: int = -1) -> None:
        b, subj = c.id, c.subj
        if c.gap == "subj":
            controller = antecedent
        elif isinstance(subj, _Pron):
            controller = self.add(subj.fr, subj.id)
            if subj.antecedent is not None:
                self.groups.append((self.heads[subj.antecedent.id], controller))
        else:
            controller = self.np(subj)
        if isinstance(subj, _Pron):
            person, number = subj.person, "pl" if subj.plural else "sg"
        else:
            person, number = 3, "pl" if subj.plural else "sg"
        if c.neg:
            self.add("ne", b + _NEG)
        if c.kind == COP:
            verb = self.add("sont" if number == "pl" else "est", b + _VERB)
            if c.neg:
                self.add("pas", b + _NEG)
            if c.degree is not None:
                self.add(c.degree.fr, b + _DEGREE)
            gender = subj.antecedent.info.noun.gender if isinstance(subj, _Pron) else (
                subj.info.noun.gender)
            adj = self.add(c.adj.form(gender, number == "pl"), b + _ADJ)
            self.groups.append((controller, verb, adj))
            return
        verb = self.add(c.verb.fr_form(person, number), b + _VERB)
        self.groups.append((controller, verb))
        if c.neg:
            self.add("pas", b + _NEG)
        if c.adv is not None:
            self.add(c.adv.fr, b + _ADV)
        if c.kind == TRANS and c.gap != "obj":
            obj = c.obj
            self.np(obj, negated_object=c.neg and not obj.definite)

    def elide(self) -> None:
        out = self.out
        for i in range(len(out) - 1):
            short = _ELIDE.get(out[i])
            if short is not None and out[i + 1][0] in FRENCH_VOWELS:
                out[i] = short


def _fr_sentence(tree: _Tree) -> _French:
    fr = _French()
    fr.clause(tree.main)
    if tree.coord is not None:
        fr.add("et", 0)
        fr.clause(tree.coord)
    fr.add(".", 1)
    fr.elide()
    return fr


# ------------------------------------------------------------------ both
def _realise(tree: _Tree) -> Sentence:
    en = _en_sentence(tree)
    summary = _en_articles([w for w, keep in zip(en.out, en.keep, strict=True) if keep])
    fr = _fr_sentence(tree)
    depth = 0
    for np in tree.nps:
        if np.rel is not None and np.depth >= depth:
            depth = np.depth + 1
    return Sentence(
        en=" ".join(en.out),
        fr=" ".join(fr.out),
        summary=" ".join(summary),
        en_links=tuple(en.links),
        fr_links=tuple(fr.links),
        agreement=tuple(fr.groups),
        depth=depth,
        negated=any(c.neg for c in tree.clauses),
    )


def generate_sentences(n: int, seed: int | str = 0, config: GrammarConfig | None = None,
                       **overrides: object) -> list[Sentence]:
    """`n` sentence pairs drawn with `random.Random(seed)`; `overrides` patch the config."""
    config = config or GrammarConfig()
    if overrides:
        config = replace(config, **overrides)  # type: ignore[arg-type]
    sampler = SentenceSampler(config, seed)
    return [sampler.sample() for _ in range(n)]
