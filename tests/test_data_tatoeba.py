"""The Tatoeba loader: the real sample, malformed files, and downloads (file:// only)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from utils.data.download import ChecksumError, cache_dir, download
from utils.data.tatoeba import (
    FILENAME,
    DataFormatError,
    DataUnavailableError,
    fetch_tatoeba,
    load_tatoeba,
    read_tatoeba,
    tatoeba_data,
)

LINES = ("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250\n"
         "I won.\tJ\u2019ai gagné.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2005 & #2006\n"
         "Run!\tCours\u202f!\n")


@pytest.fixture(scope="module")
def sample(root: Path) -> Path:
    # In CI the repository is cloned with a copy of shared/ beside it.
    path = root.parent / "shared" / "data" / "tatoeba-eng-fra-sample.tsv"
    if not path.exists():
        pytest.skip(f"the Tatoeba sample is not at {path} (shared/ is not beside the repo)")
    return path


@pytest.fixture
def tsv(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.tsv"
    path.write_text(LINES, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE", str(cache))
    monkeypatch.delenv("COURSE_TATOEBA_URL", raising=False)
    monkeypatch.delenv("COURSE_TATOEBA_SHA256", raising=False)
    return cache


def test_reads_the_real_sample_into_the_token_format(sample):
    pairs = load_tatoeba(sample)
    assert len(pairs) == 5000
    assert pairs[0].src == "go ." and pairs[0].tgt == "va !"
    assert all(p.attribution.startswith("CC-BY 2.0 (France)") for p in pairs)
    assert all("\u2019" not in p.tgt and "\u202f" not in p.tgt for p in pairs)
    assert any("l'" in p.tgt_tokens for p in pairs)


def test_sample_splits_never_share_an_english_sentence(sample):
    data = tatoeba_data(path=sample, num_valid=300, num_test=300, max_len=8)
    seen = [{p.src for p in data.splits[s]} for s in ("train", "valid", "test")]
    assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]
    assert all(len(p.src_tokens) <= 8 for p in data.train)
    short = data.draw_test(50, max_len=4)
    assert short and all(len(p.src_tokens) <= 4 for p in short)
    batch = next(iter(data.loader("train", batch_size=16)))
    assert batch.src.shape[0] == 16


def test_two_and_three_column_lines_both_read(tsv):
    lines = read_tatoeba(tsv)
    assert [line.attribution is None for line in lines] == [False, False, True]
    pairs = load_tatoeba(tsv)
    assert [p.tgt for p in pairs] == ["va !", "j' ai gagné .", "cours !"]


def test_length_filter_counts_english_tokens(tsv):
    assert [p.src for p in load_tatoeba(tsv, min_len=3)] == ["i won ."]


def test_a_line_without_a_tab_is_named(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("Go.\tVa !\nHello there\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.tsv:2: .*no tab") as error:
        read_tatoeba(path)
    assert error.value.line == 2


def test_too_many_columns_are_named(tmp_path):
    path = tmp_path / "four.tsv"
    path.write_text("1\tGo.\t2\tVa !\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"four\.tsv:1: .*found 4"):
        read_tatoeba(path)


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_bytes(b"\n \n")
    with pytest.raises(DataFormatError, match=r"empty\.tsv: the file is empty"):
        read_tatoeba(path)


def test_latin1_bytes_are_named_with_their_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Go.\tVa !\nSummer.\tÉté.\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.tsv:2: not valid UTF-8 .*0xc9"):
        read_tatoeba(path)


def test_download_fetches_a_file_url_atomically_and_checks_sha256(tsv, tmp_path):
    digest = hashlib.sha256(tsv.read_bytes()).hexdigest()
    dest = download(tsv.as_uri(), tmp_path / "out" / "copy.tsv", sha256=digest)
    assert dest.read_bytes() == tsv.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["copy.tsv"]  # no temporary left


def test_a_checksum_mismatch_saves_nothing(tsv, tmp_path):
    with pytest.raises(ChecksumError, match="sha256"):
        download(tsv.as_uri(), tmp_path / "out" / "copy.tsv", sha256="0" * 64)
    assert list((tmp_path / "out").iterdir()) == []


def test_fetch_downloads_once_into_the_cache(tsv, private_cache):
    path = fetch_tatoeba(url=tsv.as_uri())
    assert path == cache_dir() / FILENAME and path.parent == private_cache
    tsv.unlink()  # the second call must not download again
    assert fetch_tatoeba(url=tsv.as_uri()) == path
    assert len(load_tatoeba()) == 3


def test_fetch_unpacks_a_zip_like_manythings(tsv, tmp_path):
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("_about.txt", "about")
        z.write(tsv, "fra.txt")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    path = fetch_tatoeba(url=archive.as_uri(), sha256=digest)
    assert path.read_bytes() == tsv.read_bytes()


def test_fetch_with_a_wrong_checksum_raises_and_caches_nothing(tsv, private_cache):
    with pytest.raises(ChecksumError):
        fetch_tatoeba(url=tsv.as_uri(), sha256="f" * 64)
    assert not (private_cache / FILENAME).exists()


def test_without_network_or_copy_the_error_says_where_to_put_the_file(tmp_path, private_cache):
    missing = (tmp_path / "nowhere.zip").as_uri()
    with pytest.raises(DataUnavailableError) as error:
        tatoeba_data(url=missing)
    message = str(error.value)
    assert str(private_cache / FILENAME) in message and "translation_data" in message
    with pytest.raises(DataUnavailableError, match="switched off"):
        load_tatoeba(download=False)
