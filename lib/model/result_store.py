"""Finished runs, one copy each, shared by every session that asks, bounded by bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict

from lib.model.result import GenerationResult


class ResultStore:
    """A least-recently-used map of run key -> result whose arrays stay within `max_bytes`.

    Results are immutable, so one object serves every session. A single result larger than
    the whole budget is kept until the next one arrives: a run is never lost as it finishes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, GenerationResult] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> GenerationResult | None:
        with self._lock:
            result = self._items.get(key)
            if result is not None:
                self._items.move_to_end(key)
            return result

    def put(self, key: str, result: GenerationResult) -> None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return
            self._items[key] = result
            self._bytes += result.nbytes()
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items
