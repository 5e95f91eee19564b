"""utils.data.real_text: the shipped Tatoeba sample, its attribution, and seeded splits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from utils.data.real_text import CORPUS_FILE, SIDES, bpe_training_text, read_corpus, real_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_the_corpus_ships_inside_the_package_with_its_licence(root: Path) -> None:
    assert CORPUS_FILE.is_file() and CORPUS_FILE.parent == root / "utils" / "data" / "corpus"
    readme = (CORPUS_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert "CC-BY 2.0" in readme and "tatoeba.org" in readme
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["utils.data"]
    assert {"corpus/*.tsv", "corpus/*.md"} <= set(package_data), "pip install would leave it out"


def test_every_line_keeps_its_attribution() -> None:
    lines = read_corpus()
    assert len(lines) == 5000
    assert all(line.attribution and line.attribution.startswith("CC-BY 2.0 (France) Attribution: "
                                                                "tatoeba.org #") for line in lines)


def test_the_shipped_copy_is_the_shared_sample_unchanged(root: Path) -> None:
    shared = root.parent / "shared" / "data" / "tatoeba-eng-fra-sample.tsv"
    if not shared.exists():
        pytest.skip(f"the shared sample is not at {shared}")
    assert CORPUS_FILE.read_bytes() == shared.read_bytes()


def test_sentences_are_kept_as_written() -> None:
    french = {line.fr for line in read_corpus()}
    assert "Va !" in french and any("\u202f" in s for s in french)  # the narrow no-break space stays


@pytest.mark.parametrize("side", SIDES)
def test_train_and_valid_share_no_sentence(side: str) -> None:
    data = real_text(side, seed=0)
    assert not set(data.train) & set(data.valid)
    assert len(set(data.train)) == len(data.train) and len(set(data.valid)) == len(data.valid)


def test_all_translations_of_an_english_sentence_fall_in_one_split() -> None:
    data = real_text("both", seed=0)
    train = set(data.train)
    for line in read_corpus():
        if line.en in data.valid:
            assert line.fr in data.valid or line.fr in train  # in train only when shared
        else:
            assert line.en in train and line.fr in train


def test_the_split_depends_on_the_seed_alone() -> None:
    assert real_text("en", seed=3) == real_text("en", seed=3)
    assert real_text("en", seed=3).valid != real_text("en", seed=4).valid
    english = {line.en for line in read_corpus()}
    data = real_text("en", valid_fraction=0.1, seed=0)
    assert len(data.valid) == -(-len(english) // 10) and len(data.train) + len(data.valid) == len(english)


def test_both_sides_hold_the_english_and_the_french_sentences() -> None:
    both, en, fr = (real_text(side, seed=1) for side in ("both", "en", "fr"))
    assert set(both.train) == set(en.train) | set(fr.train)


def test_bpe_training_text_is_the_training_split_one_sentence_a_line() -> None:
    data = real_text("fr", seed=2)
    text = bpe_training_text("fr", seed=2)
    assert text == data.text("train") and text.split("\n") == list(data.train)


@pytest.mark.parametrize("kwargs, message", [
    ({"side": "de"}, r"side must be one of \('en', 'fr', 'both'\), got 'de'"),
    ({"valid_fraction": 1.0}, r"valid_fraction must be between 0 and 1"),
    ({"valid_fraction": 0.9999999}, r"leaves no training sentence"),
])
def test_bad_arguments_are_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        real_text(**kwargs)


def test_text_of_an_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="split must be 'train' or 'valid', got 'test'"):
        real_text("en").text("test")
