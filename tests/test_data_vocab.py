"""Vocabularies: fixed special ids, round trips, unknown words."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.data.grammar import generate_sentences
from utils.data.vocab import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    CharVocab,
    Vocab,
    build_vocab,
)

WORDS = st.text(alphabet="abcdefgé'.,", min_size=1, max_size=6)


def test_specials_have_the_same_ids_everywhere():
    assert SPECIALS == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    for vocab in (Vocab.build(["a b"]), CharVocab.build(["ab"])):
        assert vocab.itos[:4] == list(SPECIALS)
        assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)


def test_tokens_are_ordered_by_frequency_then_alphabet():
    vocab = Vocab.build(["b a c", "c b", "c"])
    assert vocab.itos[4:] == ["c", "b", "a"]


def test_min_freq_and_max_size_drop_rare_tokens():
    vocab = Vocab.build(["x x y z"], min_freq=2)
    assert "x" in vocab and "y" not in vocab
    assert len(Vocab.build(["a b c d e"], max_size=6)) == 6


def test_an_unknown_token_encodes_to_unk_and_never_crashes():
    vocab = Vocab.build(["the red car ."])
    assert vocab.encode("the blue car .") == [vocab["the"], UNK_ID, vocab["car"], vocab["."]]
    assert vocab["zebra"] == UNK_ID
    assert vocab.decode(vocab.encode("the blue car")) == "the <unk> car"
    assert CharVocab.build(["abc"]).encode("abz") == [4, 5, UNK_ID]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_encode_then_decode_is_the_identity_on_the_grammar(seed):
    sentences = generate_sentences(20, seed=seed, max_len=30)
    texts = [t for s in sentences for t in (s.en, s.fr, s.summary)]
    words, chars = build_vocab(texts), build_vocab(texts, level="char")
    for text in texts:
        assert words.decode(words.encode(text, bos=True, eos=True)) == text
        assert chars.decode(chars.encode(text)) == text


@settings(max_examples=50, deadline=None)
@given(tokens=st.lists(WORDS, min_size=1, max_size=12))
def test_tokenise_then_detokenise_is_the_identity(tokens):
    text = " ".join(tokens)
    vocab = Vocab.build([text])
    assert vocab.detokenize(vocab.tokenize(text)) == text
    assert vocab.decode(vocab.encode(text)) == text


def test_decode_stops_at_eos_and_drops_padding():
    vocab = Vocab.build(["a b c"])
    ids = torch.tensor([BOS_ID, vocab["a"], vocab["b"], EOS_ID, vocab["c"], PAD_ID])
    assert vocab.decode(ids) == "a b"
    assert vocab.decode(ids, stop_at_eos=False) == "a b c"
    assert vocab.decode(ids, keep_specials=True) == "<bos> a b"
    assert vocab.decode_batch(torch.stack([ids, ids])) == ["a b", "a b"]


def test_decoding_a_batch_with_decode_explains_decode_batch():
    import pytest

    with pytest.raises(ValueError, match="decode_batch"):
        Vocab.build(["a"]).decode(torch.zeros(2, 3, dtype=torch.long))


def test_a_vocabulary_survives_a_json_round_trip():
    import json

    for vocab in (Vocab.build(["le chat noir"], extra_specials=("<sep>",)),
                  CharVocab.build(["chat"])):
        again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
        assert again == vocab and type(again) is type(vocab)
