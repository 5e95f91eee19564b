"""Normalising and tokenising real text into the course's token format."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.data.text import detokenize, normalize, tokenize


@pytest.mark.parametrize(("text", "lang", "tokens"), [
    ("Va !", "fr", ["va", "!"]),
    ("Va\u00a0!", "fr", ["va", "!"]),  # no-break space before "!"
    ("Va\u202f!", "fr", ["va", "!"]),  # narrow no-break space
    ("Va!", "fr", ["va", "!"]),
    ("J\u2019ai gagné.", "fr", ["j'", "ai", "gagné", "."]),  # curly apostrophe
    ("L'arbre est là ; qu'il vienne : oui ?", "fr",
     ["l'", "arbre", "est", "là", ";", "qu'", "il", "vienne", ":", "oui", "?"]),
    ("Aujourd'hui, peut-être.", "fr", ["aujourd'hui", ",", "peut-être", "."]),
    ("Dis « ahhh » !", "fr", ["dis", '"', "ahhh", '"', "!"]),
    ("I'm so sorry.", "en", ["i'm", "so", "sorry", "."]),
    ("Don\u2019t go...", "en", ["don't", "go", "..."]),
    ("It costs 3.50 euros.", "en", ["it", "costs", "3.50", "euros", "."]),
])
def test_tokenize_examples(text, lang, tokens):
    assert tokenize(text, lang) == tokens


def test_normalize_composes_unicode_and_lowers_case():
    decomposed = "E\u0301te\u0301"  # É-t-é written with combining accents
    assert normalize(decomposed) == "été"
    assert normalize("  A\u2009B  ") == "a b"


def test_tokenize_refuses_unknown_languages():
    with pytest.raises(ValueError, match="'en' or 'fr'"):
        tokenize("hello", "de")


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("abcéèà ' ’-.,!?:;«»\u00a0\u202f0123")),
                    max_size=40), lang=st.sampled_from(["en", "fr"]))
def test_tokenizing_is_idempotent_on_the_token_format(text, lang):
    tokens = tokenize(text, lang)
    assert tokenize(detokenize(tokens), lang) == tokens
    assert all(t and " " not in t for t in tokens)
