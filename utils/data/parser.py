"""Read an English sentence of the grammar back into its tree, and translate it exactly.

    parse_sentence("the red car is not fast .").fr   ->  "la voiture rouge n' est pas rapide ."

The grammar never writes two trees with the same English, so the tree can be recovered
word by word (one word of look-ahead decides every choice). Notebooks use it to show the
gold translation and alignment of a sentence they choose; tests use it to check chosen
phenomena exactly. A sentence outside the grammar raises `ValueError` naming the first
word that cannot be read. Meaning is not checked: "the cake eats the dog ." parses.
"""

from __future__ import annotations

from functools import cache

from utils.data.grammar import (
    _NP,
    COP,
    INTR,
    TRANS,
    Sentence,
    _Clause,
    _index,
    _NounInfo,
    _Pron,
    _realise,
    _Tree,
)
from utils.data.lexicon import Adjective, Verb, lexicon

_SPEAKERS = {"i": (1, False, "je"), "you": (2, True, "vous"), "we": (1, True, "nous")}
_COREFERENT = {"he", "she", "it", "they"}


@cache
def _words() -> dict[str, dict]:
    ix = _index()
    nouns: dict[str, tuple[_NounInfo, bool]] = {}
    for info in ix.nouns:
        nouns[info.noun.en] = (info, False)
        nouns[info.noun.en_pl] = (info, True)
    verbs: dict[str, tuple[Verb, bool]] = {}  # form -> (verb, is the 3rd singular form)
    for v in ix.trans + ix.intr:
        verbs[v.verb.en] = (v.verb, False)
        verbs[v.verb.en_3sg] = (v.verb, True)
    lex = lexicon()
    return {
        "nouns": nouns,
        "verbs": verbs,
        "adjectives": {a.en: a for a in lex.adjectives},
        "frequency": {a.en: a for a in lex.frequency_adverbs},
        "degree": {a.en: a for a in lex.degree_adverbs},
    }


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = text.split()
        self.i = 0
        self.tree = _Tree()
        self.w = _words()

    # ------------------------------------------------------------ reading
    def peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def fail(self, expected: str) -> ValueError:
        found = self.peek()
        where = f"word {self.i + 1} ({found!r})" if found is not None else "the end"
        return ValueError(f"not a sentence of the grammar: expected {expected} at {where} "
                          f"in {self.text!r}")

    def take(self, *words: str) -> str | None:
        if self.peek() in words:
            self.i += 1
            return self.tokens[self.i - 1]
        return None

    def expect(self, *words: str) -> str:
        word = self.take(*words)
        if word is None:
            raise self.fail(" or ".join(repr(w) for w in words))
        return word

    def new_id(self) -> int:
        self.tree.next_id += 8
        return self.tree.next_id - 8

    # ------------------------------------------------------------ grammar
    def sentence(self) -> Sentence:
        tree = self.tree
        tree.main = self.clause(depth=0)
        if self.take("and"):
            ante = tree.main.subj
            if not isinstance(ante, _NP):
                raise ValueError(f"not a sentence of the grammar: {self.text!r} joins a second "
                                 "clause to a pronoun subject; the grammar joins one only to a "
                                 "noun (\"the cat runs and it sleeps .\")")
            info = ante.info
            pronoun = info.en_pron[ante.plural]
            self.expect(pronoun)
            pron = _Pron(3, ante.plural, pronoun, info.fr_pron[ante.plural], self.new_id(),
                         antecedent=ante)
            tree.coord = self.predicate(pron, gap=None, depth=0)
        self.expect(".")
        if self.peek() is not None:
            raise self.fail("the end after '.'")
        return _realise(tree)

    def clause(self, depth: int) -> _Clause:
        return self.predicate(self.subject(depth, nest=True), gap=None, depth=depth)

    def subject(self, depth: int, nest: bool) -> _NP | _Pron:
        word = self.peek()
        if word in _SPEAKERS:
            self.i += 1
            person, plural, fr = _SPEAKERS[word]
            return _Pron(person, plural, word, fr, self.new_id())
        return self.noun_phrase(depth, nest)

    def noun_phrase(self, depth: int, nest: bool = True) -> _NP:
        article = self.take("the", "a", "an")
        adjectives: list[Adjective] = []
        while self.peek() in self.w["adjectives"]:
            adjectives.append(self.w["adjectives"][self.tokens[self.i]])
            self.i += 1
        word = self.peek()
        if word not in self.w["nouns"]:
            raise self.fail("a noun" if adjectives or article else "a subject")
        info, plural = self.w["nouns"][word]
        self.i += 1
        if article in ("a", "an") and plural:
            raise self.fail(f"a singular noun after {article!r}")
        if article is None and not plural:
            raise self.fail(f"'the' or 'a' before the singular {word!r}")
        np = _NP(info, plural, article == "the", self.new_id(), depth, nest)
        self.tree.nps.append(np)
        pre = [a for a in adjectives if a.pre]
        post = [a for a in adjectives if not a.pre]
        if len(pre) > 1 or len(post) > 1 or adjectives != pre + post:
            raise ValueError(
                f"not a sentence of the grammar: {' '.join(a.en for a in adjectives)!r} before "
                f"{word!r}; a noun takes at most one adjective that stays before it in French "
                "(small, big, good, ...) followed by at most one that moves after it (red, ...)"
            )
        np.pre = pre[0] if pre else None
        np.post = post[0] if post else None
        if self.take("that"):
            np.rel = self.relative(np)
        return np

    def relative(self, head: _NP) -> _Clause:
        word = self.peek()
        starts_subject = (word in ("the", "a", "an") or word in _SPEAKERS
                          or word in self.w["adjectives"] or word in self.w["nouns"])
        if not starts_subject:  # "the cat that sees the dog": the head is the subject
            return self.predicate(head, gap="subj", depth=head.depth + 1)
        subj = self.subject(head.depth + 1, nest=False)  # "the cat that the dog sees"
        clause = self.predicate(subj, gap="obj", depth=head.depth)
        if clause.kind != TRANS:
            raise self.fail("a transitive verb ending the relative clause")
        clause.obj = head
        return clause

    def predicate(self, subj: _NP | _Pron, gap: str | None, depth: int) -> _Clause:
        singular = not subj.plural and (not isinstance(subj, _Pron) or subj.person == 3)
        if self.peek() in ("is", "are"):
            if isinstance(subj, _Pron) and subj.person != 3:
                raise self.fail(f"a verb: the grammar has no copula after {subj.en!r}")
            self.expect("is" if singular else "are")
            clause = _Clause(COP, subj, self.new_id(), gap=gap)
            clause.neg = self.take("not") is not None
            degree = self.take(*self.w["degree"])
            clause.degree = self.w["degree"][degree] if degree else None
            word = self.peek()
            if word not in self.w["adjectives"]:
                raise self.fail("an adjective")
            clause.adj = self.w["adjectives"][word]
            self.i += 1
            self.tree.clauses.append(clause)
            return clause
        negated = self.take("does", "do")
        if negated:
            if (negated == "does") != singular:
                raise self.fail(f"{'does' if singular else 'do'} for this subject")
            self.expect("not")
        adverb = None if negated else self.take(*self.w["frequency"])
        word = self.peek()
        if word not in self.w["verbs"]:
            raise self.fail("a verb")
        verb, third = self.w["verbs"][word]
        if third != (singular and not negated):
            raise self.fail(f"the form of {verb.en!r} that agrees with its subject")
        self.i += 1
        kind = TRANS if verb.transitive else INTR
        clause = _Clause(kind, subj, self.new_id(), verb=verb, gap=gap)
        clause.neg = negated is not None
        clause.adv = self.w["frequency"][adverb] if adverb else None
        self.tree.clauses.append(clause)
        if kind == TRANS and gap != "obj":
            clause.obj = self.noun_phrase(depth)
        return clause


def parse_sentence(english: str) -> Sentence:
    """The `Sentence` (French, alignment, summary, agreements) of an English grammar sentence."""
    sentence = _Parser(english).sentence()
    if [_article(w) for w in sentence.en_tokens] != [_article(w) for w in english.split()]:
        raise AssertionError(f"parsed {english!r} but it reads back as {sentence.en!r}")
    return sentence


def _article(word: str) -> str:
    return "a" if word == "an" else word
