"""Task datasets: disjoint seeded splits, vocabularies from train only, loaders, test draws."""

from __future__ import annotations

import pytest
import torch

from utils.data import (
    ClassificationBatch,
    LanguageModelBatch,
    Seq2SeqBatch,
    sentiment_data,
    summary_data,
    text_to_text_data,
    translation_data,
)
from utils.data.tasks import SPLITS, draw_disjoint
from utils.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID


@pytest.fixture(scope="module")
def translation():
    return translation_data(num_train=600, num_valid=100, num_test=100, seed=0)


@pytest.fixture(scope="module")
def sentiment():
    return sentiment_data(num_train=400, num_valid=100, num_test=100, seed=0)


def sources(data, split):
    return {e.src if hasattr(e, "src") else e.text for e in data.splits[split]}


@pytest.mark.parametrize("make", [
    lambda: translation_data(300, 50, 50, seed=1),
    lambda: summary_data(300, 50, 50, seed=1),
    lambda: sentiment_data(300, 50, 50, seed=1),
    lambda: text_to_text_data(100, 20, 20, seed=1),
    lambda: translation_data(300, 100, 100, min_len=4, max_len=5, seed=2),  # a crowded space
])
def test_splits_never_share_a_source_sentence(make):
    data = make()
    seen = [sources(data, s) for s in SPLITS]
    assert all(seen)
    assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]


def test_splits_are_deterministic_by_seed(translation):
    again = translation_data(num_train=600, num_valid=100, num_test=100, seed=0)
    assert again.splits == translation.splits
    other = translation_data(num_train=600, num_valid=100, num_test=100, seed=1)
    assert other.test != translation.test


def test_test_and_valid_do_not_depend_on_num_train(translation):
    bigger = translation_data(num_train=900, num_valid=100, num_test=100, seed=0)
    assert bigger.test == translation.test and bigger.valid == translation.valid
    assert bigger.train[:10] == translation.train[:10]


def test_lengths_honour_the_requested_range():
    data = translation_data(200, 20, 20, min_len=10, max_len=14, seed=0)
    assert all(10 <= len(p.src_tokens) <= 14 for s in SPLITS for p in data.splits[s])


def test_vocabularies_come_from_the_training_split_only(translation):
    train_words = {w for p in translation.train for w in p.tgt_tokens}
    assert set(translation.tgt_vocab.itos[4:]) == train_words
    unseen = [w for p in translation.test for w in p.tgt_tokens if w not in train_words]
    assert unseen  # 600 training sentences do not cover the world's few hundred words
    ids = translation.tgt_vocab.encode(" ".join(unseen))
    assert set(ids) == {UNK_ID}


def test_translation_loader_yields_teacher_forcing_batches(translation):
    loader = translation.loader("train", batch_size=32)
    batch = next(iter(loader))
    assert isinstance(batch, Seq2SeqBatch)
    B, S = batch.src.shape
    T = batch.tgt_in.shape[1]
    assert B == 32 and batch.src_mask.shape == (B, S) and batch.tgt_mask.shape == (B, T)
    assert batch.src.dtype == torch.long and batch.src_mask.dtype == torch.bool
    assert (batch.tgt_in[:, 0] == BOS_ID).all()
    lengths = batch.tgt_mask.sum(1)
    assert (batch.tgt_out[torch.arange(B), lengths - 1] == EOS_ID).all()
    assert (batch.tgt_out[1:][~batch.tgt_mask[1:]] == PAD_ID).all()
    assert torch.equal(batch.tgt_in[:, 1:][batch.tgt_mask[:, 1:]],
                       batch.tgt_out[:, :-1][batch.tgt_mask[:, 1:]])  # shifted by one
    assert sum(len(b.src) for b in loader) == 600


def test_batches_decode_back_to_the_examples(translation):
    batch = translation.batch(translation.test[:5])
    for i, pair in enumerate(translation.test[:5]):
        src = translation.src_vocab.decode(batch.src[i])
        assert src == " ".join(w if w in translation.src_vocab else "<unk>"
                               for w in pair.src_tokens)
        assert translation.decode(batch.tgt_out[i]).split()[-1] == "."


def test_eval_loaders_keep_the_data_order(translation):
    batches = list(translation.loader("test", batch_size=40))
    decoded = [translation.src_vocab.decode(row) for b in batches for row in b.src]
    assert [len(d.split()) for d in decoded] == [len(p.src_tokens) for p in translation.test]


def test_draw_test_gives_a_longer_test_set_disjoint_from_training(translation):
    long = translation.draw_test(30, min_len=25, max_len=35)
    assert len(long) == 30 and all(25 <= len(p.src_tokens) <= 35 for p in long)
    assert not {p.src for p in long} & (sources(translation, "train")
                                        | sources(translation, "valid"))
    assert translation.draw_test(30, min_len=25, max_len=35) == long  # deterministic
    assert next(iter(translation.loader(long, batch_size=8))).src.shape[1] >= 25


def test_translation_pairs_carry_their_alignment(translation):
    pair = translation.train[0]
    assert {i for i, _ in pair.alignment} == set(range(len(pair.src_tokens)))
    from utils.data import alignment_matrix

    matrix = alignment_matrix(pair.alignment, len(pair.src_tokens), len(pair.tgt_tokens))
    assert matrix.shape == (len(pair.tgt_tokens), len(pair.src_tokens))  # (T, S) as attention


def test_french_to_english_swaps_sides_and_alignment():
    backward = translation_data(50, 10, 10, seed=0, direction="fr-en")
    forward = translation_data(50, 10, 10, seed=0)
    for f, b in zip(forward.test, backward.test, strict=True):
        assert (b.src, b.tgt) == (f.tgt, f.src)
        assert sorted((i, j) for j, i in b.alignment) == list(f.alignment)


def test_sentiment_loader_yields_tokens_mask_and_balanced_labels(sentiment):
    batch = next(iter(sentiment.loader("train", batch_size=64)))
    assert isinstance(batch, ClassificationBatch)
    assert batch.tokens.shape == batch.mask.shape and batch.label.shape == (64,)
    labels = [r.label for r in sentiment.train]
    assert labels.count(0) == labels.count(1) == 200
    assert sentiment.num_classes == 2 and sentiment.labels == ("negative", "positive")


def test_sentiment_draws_test_sets_at_a_chosen_cue_distance(sentiment):
    far = sentiment.draw_test(40, cue_distance=20, max_len=40)
    assert all(r.cue_distance == 20 for r in far)
    assert not {r.text for r in far} & sources(sentiment, "train")


def test_summary_pairs_compress_the_source():
    data = summary_data(200, 20, 20, seed=0)
    assert data.shared_vocab and data.vocab is data.src_vocab
    assert all(len(p.tgt_tokens) <= len(p.src_tokens) for p in data.train)
    assert sum(p.tgt != p.src for p in data.train) > 150


def test_text_to_text_feeds_a_decoder_only_model():
    data = text_to_text_data(60, 10, 10, seed=0)
    prefixes = {p.src.split(" : ")[0] for p in data.train}
    assert prefixes == {"translate", "summarize", "sentiment"}
    batch = next(iter(data.loader("train", batch_size=8, decoder_only=True)))
    assert isinstance(batch, LanguageModelBatch)
    assert batch.tokens.shape == batch.targets.shape == batch.loss_mask.shape
    assert (batch.loss_mask <= batch.mask).all() and batch.loss_mask.any(1).all()
    with pytest.raises(ValueError, match="shared_vocab=True"):
        translation_data(20, 5, 5).loader("train", decoder_only=True)


def test_character_level_data_round_trips():
    data = translation_data(100, 10, 10, seed=0, level="char")
    pair = data.train[0]
    batch = data.batch([pair])
    assert batch.src.shape[1] == len(pair.src)
    assert data.src_vocab.decode(batch.src[0]) == pair.src


def toy_sampler(rng):
    return lambda k: rng.randrange(30)


def test_draw_disjoint_excludes_and_dedups():
    splits = draw_disjoint(toy_sampler, lambda x: x, {"a": 10, "b": 10}, 0, "toy",
                           exclude={0, 1})
    values = splits["a"] + splits["b"]
    assert len(set(values)) == 20 and not {0, 1} & set(values)


def test_a_space_too_small_for_the_request_says_so():
    with pytest.raises(ValueError, match="found only 28 new examples.*Widen the range"):
        draw_disjoint(toy_sampler, lambda x: x, {"a": 40}, 0, "toy", exclude={0, 1})


def test_repr_summarises_sizes_and_vocabularies(translation):
    text = repr(translation)
    assert "train=600" in text and "src_vocab=" in text


def test_the_package_exports_its_entry_points_lazily():
    import subprocess
    import sys

    # The synthetic world needs no torch: importing it stays instant.
    code = ("import sys, utils.data as d; d.parse_sentence('the cat runs .'); "
            "d.generate_reviews(2); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import utils.data

    for name in utils.data.__all__:
        assert getattr(utils.data, name) is not None
