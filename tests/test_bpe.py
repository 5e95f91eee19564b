"""utils.data.bpe: byte-level BPE round-trips any text, learns the same merges both ways,
keeps special tokens whole, saves and loads, matches tiktoken, and explains bad input."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.data.bpe import (
    BPETokenizer,
    MergesFileError,
    pretokenize,
    train_bpe,
    train_bpe_naive,
    word_counts,
)
from utils.data.real_text import bpe_training_text, real_text

EOT = "<|endoftext|>"
# The characters that break naive tokenizers: accents (composed and decomposed), emoji (4 bytes,
# a skin tone and a zero-width joiner), no-break and narrow no-break spaces, curly quotes,
# a lone combining mark, separators that `re` counts as spaces, and the empty string.
TRICKY = ["", "é", "e\u0301", "\u0301", "\u0301\u0301a", "Ça va ?", "Va\u202f!", "a\u00a0b",
          "\u201cquoted\u201d it\u2019s", "👍🏽 👨\u200d👩\u200d👧", "日本語", "x\x1c y\x1f",
          "  two  spaces  ", "tab\tnew\nline\r\n", "Tom's 3rd ½ ² _id_", EOT, f"a{EOT}{EOT}b"]


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return train_bpe(bpe_training_text("both"), vocab_size=400, special_tokens=(EOT,))


def test_pretokenize_cuts_like_gpt2() -> None:
    assert pretokenize("Hello world's 42 cats!! ") == ["Hello", " world", "'s", " 42", " cats", "!!", " "]
    # several spaces: all but the last stay together, the last one starts the next word
    assert pretokenize("a   b") == ["a", "  ", " b"]
    assert pretokenize("l'arbre, c'est_ça") == ["l", "'", "arbre", ",", " c", "'", "est", "_", "ça"]


@given(st.text())
@settings(max_examples=100, deadline=None)
def test_pretokenize_loses_no_character(text: str) -> None:
    assert "".join(pretokenize(text)) == text


def test_by_hand_the_most_frequent_pair_merges_first_and_ties_take_the_smallest_bytes() -> None:
    # "aaabdaaabac": aa occurs 4 times (overlaps count), so it merges first (256 = "aa").
    # Then "aa"+"a" and "a"+"b" both occur twice: the tie goes to the smaller byte strings,
    # (b"a", b"b") < (b"aa", b"a"), so 257 = "ab"; then 256+257 = "aaab" occurs twice.
    tok = train_bpe("aaabdaaabac", vocab_size=259)
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    # all counts equal: the smallest pair of byte strings wins, here (b" ", b"c")
    assert train_bpe("ab cd", vocab_size=257).merges == [(ord(" "), ord("c"))]


def test_training_stops_when_no_pair_is_left() -> None:
    tok = train_bpe("ab ab", vocab_size=1000)
    # "ab" and " ab": (a, b) twice, then (" ", "ab") once; then every chunk is one token
    assert [tok.vocab[i] for i in range(256, tok.vocab_size)] == [b"ab", b" ab"]


def test_incremental_and_naive_training_learn_identical_merges_on_real_text() -> None:
    text = bpe_training_text("en")
    assert train_bpe(text, 400).merges == train_bpe_naive(text, 400).merges


@given(st.text(alphabet="ab \u00e9!\u202f", max_size=60), st.integers(256, 300))
@settings(max_examples=60, deadline=None)
def test_incremental_and_naive_training_agree_on_any_text(text: str, vocab_size: int) -> None:
    # a small alphabet makes long runs ("aaaa") and many ties, where bookkeeping goes wrong
    assert train_bpe(text, vocab_size).merges == train_bpe_naive(text, vocab_size).merges


@pytest.mark.parametrize("text", TRICKY)
def test_decode_encode_round_trips_tricky_text(tok: BPETokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_decode_encode_round_trips_any_text(tok: BPETokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_merges_compress_real_text(tok: BPETokenizer) -> None:
    valid = real_text("both").text("valid")
    assert len(tok.encode(valid)) < 0.7 * len(valid.encode())  # 144 merges: 0.61


def test_special_tokens_are_one_id_and_never_learned_from() -> None:
    text = f"the cat{EOT}the dog{EOT}" * 20
    tok = train_bpe(text, vocab_size=300, special_tokens=(EOT, "<|pad|>"))
    eot = tok.special_ids[EOT]
    assert eot == 256 + len(tok.merges) and tok.vocab_size == eot + 2
    assert tok.encode(f"a{EOT}b") == [ord("a"), eot, ord("b")]
    assert tok.decode([eot]) == EOT
    assert not any(b"<|" in token or b"|>" in token for token in tok.vocab)
    assert all(b"<|" not in bytes(chunk) for chunk in word_counts(text, (EOT,)))


def test_the_longest_special_token_wins_when_one_prefixes_another() -> None:
    tok = BPETokenizer([], special_tokens=("<a>", "<a><b>"))
    assert tok.encode("<a><b><a>") == [257, 256]


def test_decode_of_a_split_character_shows_a_replacement_mark(tok: BPETokenizer) -> None:
    ids = tok.encode("é")  # two bytes, 0xC3 0xA9, maybe one token
    assert tok.decode([0xC3]) == "\ufffd" and tok.decode(ids) == "é"


def test_save_and_load_give_the_same_tokenizer(tok: BPETokenizer, tmp_path: Path) -> None:
    odd = BPETokenizer(tok.merges, special_tokens=(EOT, 'say "hi" ', "fin\u202f!"))
    odd.save(tmp_path / "merges.txt")
    loaded = BPETokenizer.load(tmp_path / "merges.txt")
    assert loaded.merges == odd.merges and loaded.special_tokens == odd.special_tokens
    text = 'Je suis là, say "hi" fin\u202f!<|endoftext|>'
    assert loaded.encode(text) == odd.encode(text)


def test_to_tiktoken_gives_the_same_ids_on_real_text(tok: BPETokenizer) -> None:
    encoding = _tiktoken_of(tok)
    text = real_text("both").text("valid")
    assert encoding.encode_ordinary(text) == tok.encode(text)
    assert encoding.encode(f"Va !{EOT}", allowed_special="all") == tok.encode(f"Va !{EOT}")


@given(st.text(st.characters(exclude_categories=("Cs", "Cn"))))
@settings(max_examples=150, deadline=None)
def test_to_tiktoken_cuts_any_text_like_ours(tok: BPETokenizer, text: str) -> None:
    # Characters that Python's Unicode tables leave unassigned (Cn) are left out: tiktoken's
    # Rust tables may be newer and already call them letters.
    assert _tiktoken_of(tok).encode_ordinary(text) == tok.encode(text)


@functools.cache
def _tiktoken_of(tok: BPETokenizer) -> Any:
    pytest.importorskip("tiktoken")
    return tok.to_tiktoken()


# --- errors that say what is wrong -----------------------------------------------------------
def test_a_vocabulary_smaller_than_the_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"vocab_size 200 is too small.*256 byte values.*at least 256"):
        train_bpe("abc", vocab_size=200)
    with pytest.raises(ValueError, match=r"plus 1 special token.*at least 257"):
        train_bpe_naive("abc", vocab_size=256, special_tokens=(EOT,))


def test_decoding_an_id_outside_the_vocabulary_names_it(tok: BPETokenizer) -> None:
    with pytest.raises(ValueError, match=r"token id 400 at position 1 .* 0 to 399 \(vocab_size 400\)"):
        tok.decode([5, 400])
    with pytest.raises(ValueError, match=r"token id -1 at position 0"):
        tok.decode([-1])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "merges.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("content, message", [
    ("", r"merges.txt:1: expected the header .* found an empty file"),
    ("97 98\n", r"merges.txt:1: expected the header .* found '97 98'"),
    ("#bpe v1 merges=3 specials=0\n97 98\n256 99\n", r"merges.txt:3: truncated: .* 3 merges, "
                                                     r"the file ends after 2 lines"),
    ("#bpe v1 merges=2 specials=0\n97 98\n97,99\n", r"merges.txt:3: expected a merge as two token "
                                                    r"ids 'A B', found '97,99'"),
    ("#bpe v1 merges=2 specials=0\n97 98\n257 99\n", r"merges.txt:3: merge 257 99 makes id 257, so "
                                                     r"it can only join ids below 257"),
    ("#bpe v1 merges=1 specials=1\n<eot>\n97 98\n", r"merges.txt:2: expected a special token"),
    ("#bpe v1 merges=1 specials=0\n97 98\n98 99\n", r"merges.txt:3: the header promises 1 merges "
                                                    r"but more lines follow"),
])
def test_a_corrupt_or_truncated_merges_file_names_the_line(tmp_path: Path, content: str,
                                                           message: str) -> None:
    with pytest.raises(MergesFileError, match=message):
        BPETokenizer.load(_write(tmp_path, content))


def test_a_saved_file_cut_short_is_reported_as_truncated(tok: BPETokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "merges.txt")
    lines = (tmp_path / "merges.txt").read_text().splitlines()
    _write(tmp_path, "\n".join(lines[:50]) + "\n")
    with pytest.raises(MergesFileError, match=r"truncated: the header promises 1 special tokens and "
                                              r"143 merges, the file ends after 49 lines"):
        BPETokenizer.load(tmp_path / "merges.txt")


def test_the_benchmark_runs_and_asserts_identical_ids(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tokenizers")
    pytest.importorskip("tiktoken")
    from utils.bench import bpe as bench_bpe

    assert bench_bpe.main(["--vocab-size", "300", "--side", "en", "--skip-naive"]) == 0
    out = capsys.readouterr().out
    assert "HF tokenizers" in out and "identical ids" in out and "tiktoken, our merges" in out
