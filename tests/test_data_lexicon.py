"""The lexicon of the synthetic world: French forms checked against the rules of French."""

from __future__ import annotations

from utils.data.lexicon import FRENCH_VOWELS, H_MUET, PERSONS, compatible, lexicon

# Adjectives whose feminine or plural does not follow the regular rules (checked below
# against forms written out here, independently of the lexicon's table).
IRREGULAR_ADJECTIVES = {
    "heureux": ("heureux", "heureuse", "heureux", "heureuses"),
    "blanc": ("blanc", "blanche", "blancs", "blanches"),
    "gentil": ("gentil", "gentille", "gentils", "gentilles"),
    "léger": ("léger", "légère", "légers", "légères"),
    "cher": ("cher", "chère", "chers", "chères"),
    "fier": ("fier", "fière", "fiers", "fières"),
    "frais": ("frais", "fraîche", "frais", "fraîches"),
    "sec": ("sec", "sèche", "secs", "sèches"),
    "doux": ("doux", "douce", "doux", "douces"),
    "long": ("long", "longue", "longs", "longues"),
    "ancien": ("ancien", "ancienne", "anciens", "anciennes"),
    "bon": ("bon", "bonne", "bons", "bonnes"),
    "beau": ("beau", "belle", "beaux", "belles"),
    "nouveau": ("nouveau", "nouvelle", "nouveaux", "nouvelles"),
    "vieux": ("vieux", "vieille", "vieux", "vieilles"),
    "violet": ("violet", "violette", "violets", "violettes"),
}


def regular_adjective(m: str) -> tuple[str, str, str, str]:
    if m.endswith("eux"):
        f = m[:-1] + "se"
    else:
        f = m if m.endswith("e") else m + "e"
    mpl = m if m.endswith(("s", "x")) else m + "s"
    return m, f, mpl, f + "s"


def regular_verb_er(infinitive: str) -> tuple[str, str, str, str, str]:
    stem = infinitive[:-2]
    nous = stem + ("eons" if stem.endswith("g") else "ons")
    return stem + "e", stem + "e", nous, stem + "ez", stem + "ent"


IRREGULAR_VERBS = {"voir", "vouloir", "acheter", "appeler", "entendre", "suivre", "connaître",
                   "vendre", "ouvrir", "lire", "écrire", "mordre", "construire", "tenir",
                   "prendre", "peindre", "perdre", "sentir", "courir", "dormir", "rire",
                   "attendre", "partir", "venir"}


def test_lexicon_has_a_few_hundred_words_per_language():
    lex = lexicon()
    english = {w for n in lex.nouns for w in (n.en, n.en_pl)} | {a.en for a in lex.adjectives}
    english |= {w for v in lex.verbs for w in (v.en, v.en_3sg)}
    french = {w for n in lex.nouns for w in (n.fr, n.fr_pl)} | {
        w for a in lex.adjectives for w in a.fr} | {w for v in lex.verbs for w in v.fr_forms}
    assert 300 <= len(english) and 500 <= len(french)


def test_adjective_forms_follow_french_morphology():
    for adj in lexicon().adjectives:
        expected = IRREGULAR_ADJECTIVES.get(adj.fr[0], regular_adjective(adj.fr[0]))
        assert adj.fr == expected, adj.en


def test_adjectives_with_a_vowel_form_are_the_classic_three():
    vowel_forms = {a.fr[0]: a.fr_vowel for a in lexicon().adjectives if a.fr_vowel}
    assert vowel_forms == {"beau": "bel", "nouveau": "nouvel", "vieux": "vieil"}


def test_regular_er_verbs_conjugate_by_person_and_number():
    for verb in lexicon().verbs:
        if verb.fr.endswith("er") and verb.fr not in IRREGULAR_VERBS:
            assert verb.fr_forms == regular_verb_er(verb.fr), verb.fr
    assert lexicon().verbs[0].fr_form(1, "pl") == "voyons"
    assert PERSONS == ((1, "sg"), (3, "sg"), (1, "pl"), (2, "pl"), (3, "pl"))


def test_french_noun_plurals_follow_the_rules_or_are_listed():
    irregular = {"cheval": "chevaux", "hôpital": "hôpitaux", "journal": "journaux",
                 "sandwich": "sandwichs", "monsieur": "messieurs"}
    for noun in lexicon().nouns:
        if noun.fr in irregular:
            assert noun.fr_pl == irregular[noun.fr]
        elif noun.fr.endswith(("s", "x")):
            assert noun.fr_pl == noun.fr
        elif noun.fr.endswith("eau"):
            assert noun.fr_pl == noun.fr + "x"
        else:
            assert noun.fr_pl == noun.fr + "s", noun.fr
        assert noun.gender in ("m", "f")


def test_nouns_adjectives_and_verbs_never_share_a_form():
    # Forms are unambiguous, so a French or English sentence can be checked word by word.
    lex = lexicon()
    for lang_nouns, lang_adjs, lang_verbs in (
        ({w for n in lex.nouns for w in (n.fr, n.fr_pl)},
         {w for a in lex.adjectives for w in (*a.fr, a.fr_vowel) if w},
         {w for v in lex.verbs for w in v.fr_forms}),
        ({w for n in lex.nouns for w in (n.en, n.en_pl)},
         {a.en for a in lex.adjectives},
         {w for v in lex.verbs for w in (v.en, v.en_3sg)}),
    ):
        assert not lang_nouns & lang_adjs
        assert not lang_nouns & lang_verbs
        assert not lang_adjs & lang_verbs


def test_every_english_word_has_one_french_translation():
    lex = lexicon()
    for words in ([n.en for n in lex.nouns], [a.en for a in lex.adjectives],
                  [v.en for v in lex.verbs]):
        assert len(words) == len(set(words))


def test_french_words_starting_with_h_have_a_mute_h():
    lex = lexicon()
    words = {w for n in lex.nouns for w in (n.fr, n.fr_pl)}
    words |= {w for a in lex.adjectives for w in a.fr} | {w for v in lex.verbs for w in v.fr_forms}
    assert {w for w in words if w.startswith("h")} <= H_MUET
    assert "h" in FRENCH_VOWELS


def test_english_words_starting_with_u_or_o_take_an():
    # "a"/"an" is chosen by spelling; words like "university" or "one" would break it.
    lex = lexicon()
    words = [n.en for n in lex.nouns] + [a.en for a in lex.adjectives]
    assert not [w for w in words if w.startswith(("uni", "use", "one", "eu", "hour", "hon"))]


def test_every_noun_can_be_described_and_acted_upon():
    lex = lexicon()
    for noun in lex.nouns:
        assert [a for a in lex.adjectives if compatible(a.tags, noun)], noun.en
        assert [v for v in lex.verbs if v.transitive and compatible(v.object, noun)], noun.en
