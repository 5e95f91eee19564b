"""Sentiment reviews: a documented label rule, balanced classes, a controlled cue distance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.data import sentiment as sent
from utils.data.sentiment import (
    NEGATIVE,
    POSITIVE,
    ReviewConfig,
    ReviewSampler,
    generate_reviews,
    sentiment_label,
)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS)
def test_the_label_is_the_documented_function_of_the_text(seed):
    for review in generate_reviews(50, seed=seed, cue_distance=(1, 12), max_len=30):
        assert sentiment_label(review.text) == review.label


@pytest.mark.parametrize(("text", "label"), [
    ("the acting was not good .", 0),
    ("the acting was good .", 1),
    ("the film was not at all what i feared , the music was red .", 1),
    ("the film was exactly what i feared .", 0),
    ("i did not hate the plot , the seat was not red .", 1),
    ("the seat was not red , i loved the ending .", 1),  # a "not" in another clause
    ("my sister and i saw it , the story was not very dull .", 1),
])
def test_label_rule_on_examples(text, label):
    assert sentiment_label(text) == label


def test_label_rule_refuses_texts_without_exactly_one_opinion():
    with pytest.raises(ValueError, match="exactly one opinion word"):
        sentiment_label("the seat was red .")
    with pytest.raises(ValueError, match="found 2"):
        sentiment_label("the acting was good , the plot was bad .")


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, distance=st.integers(1, 30), extra=st.integers(0, 15))
def test_the_cue_sits_exactly_cue_distance_tokens_from_the_end(seed, distance, extra):
    config = ReviewConfig(min_len=1, max_len=distance + 9 + extra, cue_distance=distance)
    sampler = ReviewSampler(config, seed)
    for _ in range(10):
        review = sampler.sample()
        tokens = review.tokens
        assert review.cue_distance == distance
        assert len(tokens) - 1 - (review.cue[1] - 1) == distance
        assert tokens[review.cue[1] - 1] in POSITIVE | NEGATIVE
        assert (tokens[review.cue[0]] == "not") == review.negated
        assert len(tokens) <= config.max_len and tokens[-1] == "."


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, low=st.integers(5, 30), span=st.integers(0, 20))
def test_lengths_honour_the_requested_range(seed, low, span):
    high = max(low + span, 17)
    for review in generate_reviews(20, seed=seed, min_len=low, max_len=high, cue_distance=(1, 8)):
        assert low <= len(review.tokens) <= high


def test_classes_are_balanced_and_negation_is_not_a_shortcut():
    reviews = generate_reviews(2000, seed=0)
    labels = [r.label for r in reviews]
    assert labels.count(1) == labels.count(0) == 1000
    negated = [r for r in reviews if r.negated]
    assert 900 < len(negated) < 1100
    assert 0.4 < sum(r.label for r in negated) / len(negated) < 0.6  # "not" alone says nothing
    with_not = [r for r in reviews if "not" in r.tokens]
    assert 0.4 < sum(r.label for r in with_not) / len(with_not) < 0.6


def test_filler_words_carry_no_opinion():
    neutral = set()
    for name in ("_THINGS", "_SPOTS", "_COLOURS", "_SIZES", "_DAYS", "_SNACKS", "_RELATIVES",
                 "_VEHICLES", "_WHEN", "_ASPECTS"):
        neutral |= set(getattr(sent, name))
    for phrases in (*sent._TAILS.values(), *sent._OPENERS.values()):
        neutral |= {w for phrase in phrases for w in phrase}
    assert not neutral & (POSITIVE | NEGATIVE)
    for review in generate_reviews(300, seed=1):
        opinions = [t for t in review.tokens if t in POSITIVE | NEGATIVE]
        assert len(opinions) == 1


def test_same_seed_same_reviews():
    assert generate_reviews(30, seed=4) == generate_reviews(30, seed=4)
    assert generate_reviews(30, seed=4) != generate_reviews(30, seed=5)


def test_config_errors_say_what_to_change():
    with pytest.raises(ValueError, match="max_len >= 39"):
        ReviewConfig(max_len=24, cue_distance=30)
    with pytest.raises(ValueError, match=">= 1"):
        ReviewConfig(cue_distance=0)
