"""The course's datasets: one call draws the splits, builds the vocabularies, gives loaders.

    data = translation_data(num_train=5000, seed=0)
    for batch in data.loader("train", batch_size=64): ...   # batch.src, batch.tgt_in, ...

Every task comes from the synthetic world (`grammar`, `sentiment`) and follows the same
rules:

- splits "train", "valid", "test" never share a source text; "test" is drawn first and
  "valid" second, from streams of their own, so they do not change with `num_train`;
- vocabularies are built from the training split only: a word never seen in training
  encodes to `<unk>` in validation and test, as it would for real data;
- `draw_test(num, min_len=..., max_len=...)` draws a fresh test set from another range
  (say, longer sentences), still disjoint from "train" and "valid".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from torch.utils.data import DataLoader

from utils.data.batching import (
    BucketBatchSampler,
    ClassificationBatch,
    LanguageModelBatch,
    Seq2SeqBatch,
    collate_classification,
    collate_language_model,
    collate_seq2seq,
)
from utils.data.grammar import GrammarConfig, SentenceSampler
from utils.data.sentiment import LABELS, Review, ReviewConfig, ReviewSampler
from utils.data.vocab import Vocab, build_vocab

SPLITS = ("train", "valid", "test")
SEP = "<sep>"  # separates source and answer in decoder-only (text-to-text) sequences
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Pair:
    """A source text and its target (translation or summary), tokens separated by spaces."""

    src: str
    tgt: str
    alignment: tuple[tuple[int, int], ...] | None = None  # (src index, tgt index) pairs
    attribution: str | None = None  # for real data: who wrote it (Tatoeba's licence)

    @property
    def src_tokens(self) -> list[str]:
        """The source tokens."""
        return self.src.split()

    @property
    def tgt_tokens(self) -> list[str]:
        """The target tokens."""
        return self.tgt.split()


# ----------------------------------------------------------------------- splits
def draw_disjoint(
    sampler: Callable[[random.Random], Callable[[int], E]],
    key: Callable[[E], Hashable],
    sizes: Mapping[str, int],
    seed: int | str,
    stream: str,
    exclude: Iterable[Hashable] = (),
    max_misses: int = 1000,
) -> dict[str, list[E]]:
    """Draw splits of the given sizes, in the given order, with no key drawn twice.

    Each split gets its own `random.Random(f"{stream}/{split}/{seed}")`; `sampler(rng)`
    returns `draw(k)`, which makes the k-th accepted example. Raises after `max_misses`
    repeats in a row: the space is too small to hold that many distinct examples.
    """
    seen = set(exclude)
    splits: dict[str, list[E]] = {}
    for split, size in sizes.items():
        if size < 0:
            raise ValueError(f"split {split!r} needs a size >= 0, got {size}")
        draw = sampler(random.Random(f"{stream}/{split}/{seed}"))
        items: list[E] = []
        misses = 0  # in a row: many means the space of distinct examples is used up
        while len(items) < size:
            item = draw(len(items))
            k = key(item)
            if k in seen:
                misses += 1
                if misses > max_misses:
                    raise ValueError(
                        f"{stream}: found only {len(items)} new examples for split {split!r} "
                        f"(wanted {size}); the sentences this length range allows are used up. "
                        "Widen the range (min_len/max_len) or ask for fewer examples."
                    )
                continue
            seen.add(k)
            items.append(item)
            misses = 0
        splits[split] = items
    return splits


def _split_sizes(num_train: int, num_valid: int, num_test: int) -> dict[str, int]:
    return {"test": num_test, "valid": num_valid, "train": num_train}  # drawing order


# ----------------------------------------------------------------------- base class
class TaskData:
    """Splits of one task, with loaders; subclasses say how examples become tensors."""

    task: str

    def __init__(self, task: str, splits: Mapping[str, list], seed: int,
                 drawer: Callable[..., list] | None = None) -> None:
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"splits {missing} are missing")
        self.task = task
        self.splits = {s: list(splits[s]) for s in SPLITS}
        self.seed = seed
        self._drawer = drawer
        self._encoded: dict[str, list] = {}

    @property
    def train(self) -> list:
        """The training examples."""
        return self.splits["train"]

    @property
    def valid(self) -> list:
        """The validation examples."""
        return self.splits["valid"]

    @property
    def test(self) -> list:
        """The test examples."""
        return self.splits["test"]

    def examples(self, split: str | Sequence) -> list:
        """The examples of a split name ("train", "valid", "test"), or the list given."""
        if isinstance(split, str):
            if split not in self.splits:
                raise KeyError(f"unknown split {split!r}: choose one of {SPLITS}")
            return self.splits[split]
        return list(split)

    def draw_test(self, num: int, *, min_len: int | None = None, max_len: int | None = None,
                  **changes: Any) -> list:
        """`num` new test examples (lengths in tokens of the source), none in train or valid."""
        if self._drawer is None:
            raise NotImplementedError(f"{self.task} data cannot draw new examples")
        return self._drawer(num, min_len=min_len, max_len=max_len, **changes)

    def _exclude(self) -> set:
        return {self._key(e) for s in ("train", "valid") for e in self.splits[s]}

    # ------------------------------------------------------------ subclass hooks
    def _key(self, example: Any) -> Hashable:
        raise NotImplementedError

    def _encode(self, example: Any) -> tuple:
        raise NotImplementedError

    def _length(self, encoded: tuple) -> int:
        raise NotImplementedError

    def _collate(self, **options: Any) -> Callable[[list], Any]:
        raise NotImplementedError

    # ------------------------------------------------------------ tensors
    def encoded(self, split: str | Sequence) -> list:
        """The examples of `split` as id sequences (cached for split names)."""
        if isinstance(split, str):
            if split not in self._encoded:
                self._encoded[split] = [self._encode(e) for e in self.examples(split)]
            return self._encoded[split]
        return [self._encode(e) for e in split]

    def batch(self, examples: Sequence, **options: Any) -> Any:
        """One batch of tensors from a list of examples, in their order."""
        return self._collate(**options)([self._encode(e) for e in examples])

    def loader(
        self,
        split: str | Sequence = "train",
        batch_size: int = 64,
        *,
        shuffle: bool | None = None,
        bucket: bool | None = None,
        drop_last: bool = False,
        seed: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        **options: Any,
    ) -> DataLoader:
        """A `DataLoader` of batches; train shuffles and buckets by length, others keep order."""
        encoded = self.encoded(split)
        training = split == "train"
        sampler = BucketBatchSampler(
            [self._length(e) for e in encoded],
            batch_size,
            shuffle=training if shuffle is None else shuffle,
            bucket_size=None if (training if bucket is None else bucket) else 0,
            drop_last=drop_last,
            seed=self.seed if seed is None else seed,
        )
        return DataLoader(encoded, batch_sampler=sampler, collate_fn=self._collate(**options),
                          num_workers=num_workers, pin_memory=pin_memory)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.splits[s])}" for s in SPLITS)
        return f"{type(self).__name__}(task={self.task!r}, {sizes}, {self._describe()})"

    def _describe(self) -> str:
        return ""


# ----------------------------------------------------------------------- seq2seq
class Seq2SeqData(TaskData):
    """Pairs (translation, summaries, text-to-text) with a source and a target vocabulary.

    `loader(...)` yields `Seq2SeqBatch(src, src_mask, tgt_in, tgt_out, tgt_mask)`;
    `loader(..., decoder_only=True)` yields `LanguageModelBatch(tokens, targets, mask,
    loss_mask)` of `<bos> src <sep> tgt <eos>` (needs one shared vocabulary).
    """

    def __init__(self, task: str, splits: Mapping[str, list[Pair]], seed: int, *,
                 level: str = "word", min_freq: int = 1, shared_vocab: bool = False,
                 drawer: Callable[..., list] | None = None) -> None:
        super().__init__(task, splits, seed, drawer)
        train = self.splits["train"]
        if shared_vocab:
            self.src_vocab = build_vocab([t for p in train for t in (p.src, p.tgt)], level,
                                         min_freq, extra_specials=(SEP,))
            self.tgt_vocab = self.src_vocab
        else:
            self.src_vocab = build_vocab([p.src for p in train], level, min_freq)
            self.tgt_vocab = build_vocab([p.tgt for p in train], level, min_freq)
        self.level = level

    @property
    def shared_vocab(self) -> bool:
        """True if source and target share one vocabulary."""
        return self.src_vocab is self.tgt_vocab

    @property
    def vocab(self) -> Vocab:
        """The shared vocabulary (text-to-text, decoder-only models)."""
        if not self.shared_vocab:
            raise AttributeError("source and target have their own vocabularies: "
                                 "use src_vocab and tgt_vocab (or build with shared_vocab=True)")
        return self.src_vocab

    def _key(self, example: Pair) -> Hashable:
        return example.src

    def _encode(self, example: Pair) -> tuple[list[int], list[int]]:
        return self.src_vocab.encode(example.src), self.tgt_vocab.encode(example.tgt)

    def _length(self, encoded: tuple[list[int], list[int]]) -> int:
        return max(len(encoded[0]), len(encoded[1]))

    def _collate(self, decoder_only: bool = False) -> Callable[[list], Any]:
        if not decoder_only:
            return collate_seq2seq
        if not self.shared_vocab:
            raise ValueError("decoder-only batches put source and target in one sequence, "
                             "so they need one vocabulary: build the data with shared_vocab=True")
        return partial(collate_language_model, sep_id=self.src_vocab.stoi[SEP])

    def batch(self, examples: Sequence[Pair], decoder_only: bool = False
              ) -> Seq2SeqBatch | LanguageModelBatch:
        """One batch from a list of pairs: `Seq2SeqBatch` (B, S)/(B, T), or decoder-only."""
        return super().batch(examples, decoder_only=decoder_only)

    def decode(self, ids: Any) -> str:
        """Target-side text of a 1-D id sequence (cut at <eos>, specials dropped)."""
        return self.tgt_vocab.decode(ids)

    def _describe(self) -> str:
        if self.shared_vocab:
            return f"vocab={len(self.src_vocab)}"
        return f"src_vocab={len(self.src_vocab)}, tgt_vocab={len(self.tgt_vocab)}"


# ----------------------------------------------------------------------- classification
class ClassificationData(TaskData):
    """Labelled texts; `loader(...)` yields `ClassificationBatch(tokens, mask, label)`."""

    def __init__(self, task: str, splits: Mapping[str, list[Review]], seed: int, *,
                 labels: Sequence[str] = LABELS, level: str = "word", min_freq: int = 1,
                 drawer: Callable[..., list] | None = None) -> None:
        super().__init__(task, splits, seed, drawer)
        self.labels = tuple(labels)
        self.vocab = build_vocab([r.text for r in self.splits["train"]], level, min_freq)
        self.level = level

    @property
    def num_classes(self) -> int:
        """How many labels (2 for sentiment)."""
        return len(self.labels)

    def _key(self, example: Review) -> Hashable:
        return example.text

    def _encode(self, example: Review) -> tuple[list[int], int]:
        return self.vocab.encode(example.text), example.label

    def _length(self, encoded: tuple[list[int], int]) -> int:
        return len(encoded[0])

    def _collate(self) -> Callable[[list], Any]:
        return collate_classification

    def batch(self, examples: Sequence[Review]) -> ClassificationBatch:
        """One batch from a list of reviews: tokens (B, T), mask (B, T), label (B,)."""
        return super().batch(examples)

    def _describe(self) -> str:
        return f"vocab={len(self.vocab)}, labels={self.labels}"


# ----------------------------------------------------------------------- constructors
def _grammar_config(config: GrammarConfig | None, **changes: Any) -> GrammarConfig:
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(config or GrammarConfig(), **changes)


def _sentence_pairs(seed: int, config: GrammarConfig, stream: str, make: Callable,
                    sizes: Mapping[str, int], exclude: Iterable[Hashable] = ()
                    ) -> dict[str, list[Pair]]:
    def sampler(rng: random.Random) -> Callable[[int], Pair]:
        sentences = SentenceSampler(config, rng)
        return lambda k: make(sentences.sample())

    return draw_disjoint(sampler, lambda p: p.src, sizes, seed, stream, exclude)


def _sentence_task(task: str, cfg: GrammarConfig, make: Callable[[Any], Pair], seed: int,
                   sizes: Mapping[str, int], **data_options: Any) -> Seq2SeqData:
    """`Seq2SeqData` of pairs `make(sentence)` drawn from the grammar: the disjoint splits, and
    `draw_test` for fresh test pairs (of other lengths or grammar settings) outside them."""
    splits = _sentence_pairs(seed, cfg, task, make, sizes)
    data: Seq2SeqData

    def drawer(num: int, min_len: int | None = None, max_len: int | None = None,
               **changes: Any) -> list[Pair]:
        new = _grammar_config(cfg, min_len=min_len, max_len=max_len, **changes)
        tag = f"{task}/draw_test/{new.min_len}-{new.max_len}"
        return _sentence_pairs(seed, new, tag, make, {"test": num}, data._exclude())["test"]

    data = Seq2SeqData(task, splits, seed, drawer=drawer, **data_options)
    return data


def _translation_pair(direction: str, s: Any) -> Pair:
    if direction == "en-fr":
        return Pair(s.en, s.fr, s.alignment)
    return Pair(s.fr, s.en, tuple(sorted((j, i) for i, j in s.alignment)))


def translation_data(
    num_train: int = 5000,
    num_valid: int = 500,
    num_test: int = 500,
    *,
    min_len: int | None = None,
    max_len: int | None = None,
    seed: int = 0,
    direction: str = "en-fr",
    level: str = "word",
    min_freq: int = 1,
    shared_vocab: bool = False,
    config: GrammarConfig | None = None,
) -> Seq2SeqData:
    """English->French pairs of the synthetic world (lengths: English tokens, "." included)."""
    if direction not in ("en-fr", "fr-en"):
        raise ValueError(f"direction must be 'en-fr' or 'fr-en', got {direction!r}")
    cfg = _grammar_config(config, min_len=min_len, max_len=max_len)
    # Both directions draw the same sentences (the stream is "translation" for both).
    return _sentence_task("translation", cfg, partial(_translation_pair, direction), seed,
                          _split_sizes(num_train, num_valid, num_test), level=level, min_freq=min_freq,
                          shared_vocab=shared_vocab)


def _summary_pair(s: Any) -> Pair:
    return Pair(s.en, s.summary)


def summary_data(
    num_train: int = 5000,
    num_valid: int = 500,
    num_test: int = 500,
    *,
    min_len: int | None = None,
    max_len: int | None = None,
    seed: int = 0,
    level: str = "word",
    min_freq: int = 1,
    shared_vocab: bool = True,
    config: GrammarConfig | None = None,
) -> Seq2SeqData:
    """English sentence -> its compression (no adjectives, adverbs, relative clauses).

    Lengths default to 8-24 English tokens, so that most sentences have something to drop.
    """
    cfg = _grammar_config(config or GrammarConfig(min_len=8, max_len=24), min_len=min_len,
                          max_len=max_len)
    return _sentence_task("summary", cfg, _summary_pair, seed,
                          _split_sizes(num_train, num_valid, num_test), level=level, min_freq=min_freq,
                          shared_vocab=shared_vocab)


def _reviews(seed: int, config: ReviewConfig, stream: str, sizes: Mapping[str, int],
             exclude: Iterable[Hashable] = ()) -> dict[str, list[Review]]:
    def sampler(rng: random.Random) -> Callable[[int], Review]:
        reviews = ReviewSampler(config, rng)
        return lambda k: reviews.sample(label=k % 2)  # alternate labels: balanced classes

    splits = draw_disjoint(sampler, lambda r: r.text, sizes, seed, stream, exclude)
    for split, items in splits.items():  # alternating labels -> shuffled order
        random.Random(f"{stream}/{split}/{seed}/order").shuffle(items)
    return splits


def sentiment_data(
    num_train: int = 4000,
    num_valid: int = 500,
    num_test: int = 500,
    *,
    min_len: int | None = None,
    max_len: int | None = None,
    cue_distance: int | tuple[int, int] | None = None,
    seed: int = 0,
    level: str = "word",
    min_freq: int = 1,
    config: ReviewConfig | None = None,
) -> ClassificationData:
    """Film reviews labelled positive (1) / negative (0), cue at `cue_distance` from the end."""
    changes = {"min_len": min_len, "max_len": max_len, "cue_distance": cue_distance}
    cfg = replace(config or ReviewConfig(), **{k: v for k, v in changes.items() if v is not None})
    splits = _reviews(seed, cfg, "sentiment", _split_sizes(num_train, num_valid, num_test))
    data: ClassificationData

    def drawer(num: int, min_len: int | None = None, max_len: int | None = None,
               **changes: Any) -> list[Review]:
        changes.update(min_len=min_len, max_len=max_len)
        new = replace(cfg, **{k: v for k, v in changes.items() if v is not None})
        tag = f"sentiment/draw_test/{new.min_len}-{new.max_len}/{new.cue_range}"
        return _reviews(seed, new, tag, {"test": num}, data._exclude())["test"]

    data = ClassificationData("sentiment", splits, seed, level=level, min_freq=min_freq,
                              drawer=drawer)
    return data


TASK_PREFIXES = {"translate": "translate :", "summarize": "summarize :", "sentiment": "sentiment :"}


def text_to_text_data(
    num_train: int = 3000,
    num_valid: int = 300,
    num_test: int = 300,
    *,
    tasks: Sequence[str] = ("translate", "summarize", "sentiment"),
    seed: int = 0,
    min_freq: int = 1,
) -> Seq2SeqData:
    """The three tasks as text-to-text pairs with a task prefix, one shared vocabulary.

    "translate : the red car is fast ." -> "la voiture rouge est rapide ."
    "summarize : the red car that the dog sees is fast ." -> "the car is fast ."
    "sentiment : the acting was not good ." -> "negative"
    Sizes are per task; a split mixes its tasks in a seeded order.
    """
    unknown = [t for t in tasks if t not in TASK_PREFIXES]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}: choose from {sorted(TASK_PREFIXES)}")
    parts: dict[str, Seq2SeqData | ClassificationData] = {}
    if "translate" in tasks:
        parts["translate"] = translation_data(num_train, num_valid, num_test, seed=seed)
    if "summarize" in tasks:
        parts["summarize"] = summary_data(num_train, num_valid, num_test, seed=seed)
    if "sentiment" in tasks:
        parts["sentiment"] = sentiment_data(num_train, num_valid, num_test, seed=seed)
    splits: dict[str, list[Pair]] = {}
    for split in SPLITS:
        items: list[Pair] = []
        for task, data in parts.items():
            prefix = TASK_PREFIXES[task]
            for e in data.splits[split]:
                if isinstance(e, Review):
                    items.append(Pair(f"{prefix} {e.text}", LABELS[e.label]))
                else:
                    items.append(Pair(f"{prefix} {e.src}", e.tgt, None))
        random.Random(f"text2text/{split}/{seed}").shuffle(items)
        splits[split] = items
    return Seq2SeqData("text2text", splits, seed, min_freq=min_freq, shared_vocab=True)
