"""Real English–French pairs from Tatoeba (tatoeba.org), when a network or a copy exists.

The file is tab-separated, one pair a line: `English<TAB>French`, or with a third
column of attribution (`English<TAB>French<TAB>CC-BY 2.0 (France) Attribution: ...`),
as in the Tatoeba-derived downloads of manythings.org. Licence: CC-BY 2.0 (France);
every pair keeps its attribution (`Pair.attribution`).

    data = tatoeba_data(max_len=12)      # downloads once into the cache, then reads it
    loader = data.loader("train", batch_size=64)

Without a network and without a copy in the cache, `DataUnavailableError` says where to
put the file, and that the synthetic world (`translation_data`) needs no download.
"""

from __future__ import annotations

import http.client
import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.data.download import ChecksumError, cache_dir, download, sha256_file
from utils.data.tasks import Pair, Seq2SeqData
from utils.data.text import tokenize

# manythings.org repackages Tatoeba's pairs as a zip holding "fra.txt" (three columns).
# The checksum of that file changes whenever it is regenerated upstream, so none is pinned
# by default: pass `sha256=` (or set COURSE_TATOEBA_SHA256) to pin the copy a term uses.
TATOEBA_URL = "https://www.manythings.org/anki/fra-eng.zip"
FILENAME = "tatoeba-eng-fra.tsv"


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and the line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str) -> None:
        self.path, self.line = Path(path), line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")


class DataUnavailableError(FileNotFoundError):
    """The real data is neither in the cache nor downloadable; the message says what to do."""


@dataclass(frozen=True, slots=True)
class TatoebaLine:
    """One raw line of a Tatoeba file, as written (not normalised)."""

    en: str
    fr: str
    attribution: str | None
    line: int


def read_tatoeba(path: str | os.PathLike) -> list[TatoebaLine]:
    """Parse a Tatoeba TSV (2 or 3 columns); errors name the file and the line."""
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise DataFormatError(path, None, "the file is empty; expected lines of "
                                          "English<TAB>French[<TAB>attribution]")
    lines: list[TatoebaLine] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(
                path, number,
                f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); the file "
                "looks like latin-1 or cp1252: re-save it as UTF-8 "
                "(for example `iconv -f latin1 -t utf-8 in.tsv > out.tsv`)",
            ) from None
        text = text.removeprefix("\ufeff").rstrip("\r")
        if not text.strip():
            continue
        columns = text.split("\t")
        if len(columns) == 1:
            raise DataFormatError(path, number, "expected English<TAB>French[<TAB>attribution], "
                                                f"found no tab in {text[:60]!r}")
        if len(columns) > 3:
            raise DataFormatError(path, number, "expected 2 or 3 tab-separated columns, "
                                                f"found {len(columns)}")
        en, fr = columns[0].strip(), columns[1].strip()
        if not en or not fr:
            side = "English" if not en else "French"
            raise DataFormatError(path, number, f"the {side} column is empty")
        attribution = columns[2].strip() if len(columns) == 3 else None
        lines.append(TatoebaLine(en, fr, attribution or None, number))
    return lines


def load_tatoeba(path: str | os.PathLike | None = None, *, min_len: int = 1,
                 max_len: int | None = None, download: bool = True, url: str | None = None,
                 sha256: str | None = None) -> list[Pair]:
    """Tokenised pairs (English source, French target), filtered by English length."""
    path = Path(path) if path is not None else fetch_tatoeba(url, sha256, download=download)
    pairs = []
    for line in read_tatoeba(path):
        src = tokenize(line.en, "en")
        if len(src) < min_len or (max_len is not None and len(src) > max_len):
            continue
        pairs.append(Pair(" ".join(src), " ".join(tokenize(line.fr, "fr")),
                          attribution=line.attribution))
    return pairs


def fetch_tatoeba(url: str | None = None, sha256: str | None = None, *,
                  download: bool = True, cache: str | os.PathLike | None = None) -> Path:
    """The cached Tatoeba TSV, downloaded (and unzipped) on first use; see module docs."""
    url = url or os.environ.get("COURSE_TATOEBA_URL") or TATOEBA_URL
    sha256 = sha256 or os.environ.get("COURSE_TATOEBA_SHA256") or None
    target = Path(cache) if cache is not None else cache_dir()
    target = target / FILENAME
    if target.exists():
        return target
    if not download:
        raise DataUnavailableError(_advice(target, url, "downloading is switched off"))
    fetched = target.with_name(target.name + ".download")
    try:
        _download(url, fetched, sha256)
    except ChecksumError:
        raise
    except (OSError, http.client.HTTPException) as e:  # no network, HTTP error, timeout ...
        raise DataUnavailableError(_advice(target, url, f"{type(e).__name__}: {e}")) from e
    try:
        _install(fetched, target)
    finally:
        fetched.unlink(missing_ok=True)
    return target


def _download(url: str, dest: Path, sha256: str | None) -> None:
    download(url, dest, sha256)
    (dest.parent / f"{FILENAME}.sha256").write_text(f"{sha256_file(dest)}  {url}\n")


def _install(fetched: Path, target: Path) -> None:
    """Move a downloaded TSV into place, or extract it from a zip (atomically)."""
    if not zipfile.is_zipfile(fetched):
        os.replace(fetched, target)
        return
    with zipfile.ZipFile(fetched) as archive:
        members = [m for m in archive.namelist()
                   if m.endswith((".txt", ".tsv")) and not Path(m).name.startswith("_")]
        if not members:
            raise DataFormatError(fetched, None, "the zip holds no .txt or .tsv file of pairs")
        partial = target.with_name(target.name + ".part")
        with archive.open(members[0]) as src, open(partial, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    os.replace(partial, target)


def _advice(target: Path, url: str, reason: str) -> str:
    return (
        f"the Tatoeba English-French pairs are not in the cache ({target}) and could not be "
        f"downloaded from {url} ({reason}).\n"
        f"To use them offline: on a machine with a network, download {url}, unzip it, and "
        f"copy its tab-separated file of pairs (English<TAB>French<TAB>attribution) to "
        f"{target}; or set COURSE_CACHE to a folder holding {FILENAME}; or pass path=... .\n"
        "Everything in the course also runs on the synthetic English-French world, which "
        "needs no download: utils.data.translation_data(...)."
    )


def tatoeba_data(
    num_train: int | None = None,
    num_valid: int = 1000,
    num_test: int = 1000,
    *,
    min_len: int = 1,
    max_len: int | None = None,
    seed: int = 0,
    path: str | os.PathLike | None = None,
    download: bool = True,
    url: str | None = None,
    sha256: str | None = None,
    level: str = "word",
    min_freq: int = 1,
    shared_vocab: bool = False,
) -> Seq2SeqData:
    """Tatoeba pairs in splits that never share an English sentence (sizes in pairs).

    All the translations of one English sentence fall into the same split. `num_train`
    None takes every remaining pair. `draw_test(num, min_len=..., max_len=...)` picks
    test pairs in a length range (at most `num`: real data is finite).
    """
    pairs = load_tatoeba(path, min_len=min_len, max_len=max_len, download=download, url=url,
                         sha256=sha256)
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.src, []).append(pair)
    sources = sorted(groups)
    random.Random(f"tatoeba/{seed}").shuffle(sources)
    splits: dict[str, list[Pair]] = {"test": [], "valid": [], "train": []}
    wanted = {"test": num_test, "valid": num_valid, "train": num_train}
    order = iter(("test", "valid", "train"))
    split = next(order)
    for source in sources:
        while split != "train" and len(splits[split]) >= wanted[split]:
            split = next(order)
        if split == "train" and num_train is not None and len(splits["train"]) >= num_train:
            break
        splits[split].extend(groups[source])
    if num_train is not None:
        del splits["train"][num_train:]
    if not splits["train"]:
        raise ValueError(f"no training pairs left: {len(pairs)} pairs in range, "
                         f"{num_valid} + {num_test} asked for validation and test")

    data: Seq2SeqData

    def drawer(num: int, min_len: int | None = None, max_len: int | None = None,
               **changes: Any) -> list[Pair]:
        if changes:
            raise TypeError(f"real data has no knobs to change: {sorted(changes)}")
        low, high = min_len or 1, max_len or 10**9
        return [p for p in data.test if low <= len(p.src_tokens) <= high][:num]

    data = Seq2SeqData("tatoeba", splits, seed, level=level, min_freq=min_freq,
                       shared_vocab=shared_vocab, drawer=drawer)
    return data
