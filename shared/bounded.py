"""In-process caches with a bound: whatever callers send, a cache never holds more than
``maxsize`` entries. Oldest first out: every cached value here can be rebuilt (one query,
one compilation), so keeping the recently used ones is not worth a cost on every hit."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(OrderedDict[K, V]):
    """A dict of at most ``maxsize`` entries; a new key past it evicts the oldest. Reads are
    OrderedDict's own (C), so a hit costs what a dict lookup costs; only a new key runs the
    eviction, in O(1)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self and len(self) >= self.maxsize:
            self.popitem(last=False)
        super().__setitem__(key, value)
