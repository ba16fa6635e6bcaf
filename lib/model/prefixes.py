"""Key/value caches of finished runs, kept so that a run that begins like one of them
starts where that one ended instead of reading every token again.

"Next token" and autoplay ask for the run so far plus one token, a "what if" branch for
the run up to a step plus another token, and the Next token page for the distribution
after any step. Each would be one forward pass per token of the run; with the run's
key/value cache kept, it is one pass per new token, so a step costs the same at token 50
as at token 5.

An entry is a finished `Decoding` (its token ids and every step's attention row, top
candidates, probability and entropy) and the key/value cache of all its tokens but the
last (the last was written, never read). Entries are found by token ids, so sessions share
them: a session gets the numbers it would have computed itself (equal to 1e-5, tested).
An entry whose tokens are the start of a newer one's is dropped (the newer holds all it
held); the rest are bounded by bytes, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from lib.model.batching import Decoding


@dataclass(frozen=True, eq=False)
class Kept:
    """One finished run and its key/value cache.

    ids     (T,) int64     prompt and generated tokens
    keys    one per layer  (1, kv_heads, cached, head_dim); cached = T - 1
    values  one per layer  (1, kv_heads, cached, value_dim)
    """

    ids: np.ndarray
    seq: Decoding
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        cached = len(self.ids) - 1
        for k, v in zip(self.keys, self.values, strict=True):  # (values may be narrower)
            if k.shape[0] != 1 or k.shape[-2] != cached or v.shape[:-1] != k.shape[:-1]:
                raise ValueError(f"a kept cache holds (1, heads, {cached}, dim) per layer")

    @property
    def cached(self) -> int:
        return len(self.ids) - 1

    @property
    def prompt_len(self) -> int:
        return len(self.seq.prepared.ids)

    @property
    def nbytes(self) -> int:
        kv = sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))
        return kv + self.seq.attention.nbytes

    def cache_of(self, n: int, config):
        """A transformers cache of the first `n` tokens, for a model of this `config`.
        It holds views of the kept tensors: a pass appends by concatenating (new
        tensors), so the kept run is never changed."""
        from transformers import DynamicCache

        if not 0 < n <= self.cached:
            raise ValueError(f"0 < n <= {self.cached}")
        cache = DynamicCache(config=config)
        for layer, k, v in zip(cache.layers, self.keys, self.values, strict=True):
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k[:, :, :n], v[:, :, :n]
        return cache


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens two id arrays share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class PrefixCache:
    """Kept runs of one model, found by their token ids (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, Kept] = OrderedDict()  # oldest use first
        self._lock = threading.Lock()
        self.hits = 0  # runs and distributions that started from a kept cache

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def keep(self, seq: Decoding, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]):
        """Keep a finished run: `keys`/`values` per layer (1, kv_heads, T - 1, head_dim)."""
        ids = np.asarray([*seq.prepared.ids, *seq.chosen], dtype=np.int64)
        entry = Kept(ids, seq, tuple(keys), tuple(values))
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            for key, old in list(self._entries.items()):
                if _covers(entry, old):
                    del self._entries[key]
            self._entries[id(entry)] = entry
            total = sum(e.nbytes for e in self._entries.values())
            while total > self.max_bytes:
                _, gone = self._entries.popitem(last=False)
                total -= gone.nbytes

    def resume_point(self, prompt: Sequence[int], forced: Sequence[int]) -> tuple[Kept, int] | None:
        """The kept run with this prompt whose first generated tokens are the most of
        `forced`, and how many steps of it a run forcing `forced` can take as they are
        (their rows and probabilities depend only on the tokens before them); None when
        no kept run shares a step."""
        want = np.asarray([*prompt, *forced], dtype=np.int64)
        n_prompt = len(prompt)

        def steps(entry: Kept) -> int:
            if entry.prompt_len != n_prompt:
                return 0
            return common_prefix(entry.ids, want) - n_prompt

        return self._best(steps)

    def longest(self, ids: Sequence[int]) -> tuple[Kept, int] | None:
        """The kept cache covering the most leading tokens of `ids`, and how many it covers
        (at most all but the last: a pass must read at least one token); None if none."""
        want = np.asarray(ids, dtype=np.int64)
        return self._best(
            lambda entry: min(common_prefix(entry.ids, want), entry.cached, len(want) - 1)
        )

    def _best(self, score) -> tuple[Kept, int] | None:
        """The kept run scoring highest (above 0) and its score; it becomes the most
        recently used, and counts as a hit."""
        best: tuple[Kept, int] | None = None
        with self._lock:
            for entry in self._entries.values():
                n = score(entry)
                if n > 0 and (best is None or n > best[1]):
                    best = (entry, n)
            if best is not None:
                self._entries.move_to_end(id(best[0]))
                self.hits += 1
        return best


def _covers(new: Kept, old: Kept) -> bool:
    """Whether `new` holds everything `old` does: the same prompt, and old's tokens are
    the start of new's."""
    return (
        new.prompt_len == old.prompt_len
        and len(old.ids) <= len(new.ids)
        and common_prefix(new.ids, old.ids) == len(old.ids)
    )
