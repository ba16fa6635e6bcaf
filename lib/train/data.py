"""The tiny model's data: a handful of short sentences, a word-level vocabulary, padded batches.

Each sentence becomes <START> words <END>; the model reads tokens[:-1] and must predict
tokens[1:] (the next word at every position). Padding fills short sentences to the longest
one and is ignored by the loss and never attended to.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where a dataset is built: the app's first screen needs SENTENCES
    import torch

PAD, START, END = "<PAD>", "<START>", "<END>"
SPECIALS = (PAD, START, END)

# Eight sentences over a dozen words, written for this app (public domain). Some next words
# are certain ("the cat" -> "sat"/"sleeps"/...), others are a genuine choice, so a model that
# memorises the set still has a floor under its loss: see `ambiguity_floor`.
SENTENCES = (
    "the cat sat on the mat",
    "the dog sat on the rug",
    "the cat ate the fish",
    "the dog ate the bone",
    "a cat sleeps on the mat",
    "a dog sleeps on the rug",
    "the bird sat on the tree",
    "the bird ate the seed",
)

LIMITS = {"sentences": 200, "words": 20, "vocabulary": 500}
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)


class DataError(ValueError):
    """The sentences cannot be used; str(error) is a message for the user."""


def words(sentence: str) -> list[str]:
    """Lower-case words: letters and digits, with inner apostrophes or hyphens kept."""
    return [w.lower() for w in _WORD.findall(sentence)]


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id; ids 0, 1, 2 are <PAD>, <START>, <END>, then words in first-seen order."""

    itos: tuple[str, ...]

    @classmethod
    def build(cls, sentences: list[list[str]]) -> Vocabulary:
        seen = dict.fromkeys(w for s in sentences for w in s)
        return cls(SPECIALS + tuple(seen))

    @property
    def stoi(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, ws: list[str]) -> list[int]:
        stoi = self.stoi
        unknown = [w for w in ws if w not in stoi]
        if unknown:
            raise DataError(f"Not in the vocabulary: {', '.join(unknown[:5])}.")
        return [stoi[w] for w in ws]

    def decode(self, ids) -> list[str]:
        return [self.itos[int(i)] for i in ids]


@dataclass(frozen=True, eq=False)
class Dataset:
    """S sentences as next-word pairs, padded to the longest: T = longest + 1 (START or END).

    inputs   (S, T) int64  <START> w1 .. wn, then <PAD>
    targets  (S, T) int64  w1 .. wn <END>, then <PAD>
    pad      (S, T) bool   True where the input is padding
    """

    sentences: tuple[tuple[str, ...], ...]
    vocab: Vocabulary
    inputs: torch.Tensor
    targets: torch.Tensor
    pad: torch.Tensor

    def __post_init__(self) -> None:
        S = len(self.sentences)
        if self.inputs.ndim != 2 or self.inputs.shape[0] != S:
            raise ValueError(f"inputs must be ({S}, T)")
        if self.targets.shape != self.inputs.shape or self.pad.shape != self.inputs.shape:
            raise ValueError("targets and pad must match inputs")

    @property
    def pad_id(self) -> int:
        return 0


def parse(text: str) -> list[list[str]]:
    """Sentences from text, one a line, checked against the lab's limits."""
    lines = [words(line) for line in str(text).splitlines()]
    sentences = [s for s in lines if s]
    if not sentences:
        raise DataError("There are no sentences. Write one sentence a line.")
    short = [" ".join(s) for s in sentences if len(s) < 2]
    if short:
        raise DataError(
            f"Every sentence needs at least two words (there is nothing to predict after "
            f"one): {', '.join(short[:3])}."
        )
    if len(sentences) > LIMITS["sentences"]:
        raise DataError(
            f"There are {len(sentences):,} sentences; the lab takes at most "
            f"{LIMITS['sentences']} (training runs in your browser session)."
        )
    long = [i + 1 for i, s in enumerate(sentences) if len(s) > LIMITS["words"]]
    if long:
        raise DataError(
            f"Sentence {long[0]} has more than {LIMITS['words']} words; keep sentences short."
        )
    n_words = len({w for s in sentences for w in s})
    if n_words > LIMITS["vocabulary"]:
        raise DataError(
            f"The sentences use {n_words:,} different words; the lab takes at most "
            f"{LIMITS['vocabulary']}."
        )
    return sentences


def build_dataset(text: str) -> Dataset:
    """The dataset the text describes (one sentence a line), checked against the limits."""
    return make_dataset(parse(text))


def make_dataset(sentences: Sequence[Sequence[str]], vocab: Vocabulary | None = None) -> Dataset:
    """Padded next-word pairs for word lists (with the vocabulary a saved model came with)."""
    import torch

    sentences = [list(s) for s in sentences]
    vocab = vocab or Vocabulary.build(sentences)
    T = max(len(s) for s in sentences) + 1
    inputs = torch.zeros(len(sentences), T, dtype=torch.int64)
    targets = torch.zeros(len(sentences), T, dtype=torch.int64)
    start, end = vocab.stoi[START], vocab.stoi[END]
    for i, s in enumerate(sentences):
        ids = vocab.encode(s)
        inputs[i, : len(ids) + 1] = torch.tensor([start, *ids])
        targets[i, : len(ids) + 1] = torch.tensor([*ids, end])
    pad = inputs == 0
    pad[:, 0] = False  # <START> is never padding
    return Dataset(tuple(tuple(s) for s in sentences), vocab, inputs, targets, pad)


def ambiguity_floor(sentences: Sequence[Sequence[str]]) -> float:
    """The lowest mean loss (nats per predicted word) any model can reach on this set.

    A position's target is determined by the words before it; where the same prefix goes
    on in different ways across sentences, even a perfect model must spread its bet. The
    floor is the mean, over every predicted position, of -log(count of this continuation /
    count of this prefix): the entropy the data itself holds.
    """
    prefixes: Counter = Counter()
    continuations: Counter = Counter()
    n = 0
    for s in sentences:
        seq = (START, *s, END)
        for t in range(1, len(seq)):
            prefixes[seq[:t]] += 1
            continuations[seq[: t + 1]] += 1
    total = 0.0
    for s in sentences:
        seq = (START, *s, END)
        for t in range(1, len(seq)):
            total -= math.log(continuations[seq[: t + 1]] / prefixes[seq[:t]])
            n += 1
    return total / n
