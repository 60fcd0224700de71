"""How long a value's text would be, estimated before it is made.

``str()`` of a container, a join, JSON or ``pprint`` is one C call that allocates the
whole text at once: a list of 1,000 references to one 1,000,000-character string is small,
its text is a gigabyte. ``text_size`` walks the value instead, cheaply, and stops as soon
as the total passes the limit.

The estimate is a lower bound (as ``repr`` would write it: quotes and ``, `` separators,
at least one character per number), so no value whose text is within the limit is refused
(unless nested too deep), and one it lets through makes text within a small factor of the
limit (escapes are not counted: ``repr`` writes ``\\x00`` for one character). Its own
work is bounded too: a sequence whose items alone would pass the limit is not walked; a
container met again is counted from memory, one on the current path as ``[...]`` (as
``repr`` does); ``tick`` is called every few thousand values; and nesting deeper than
``MAX_DEPTH`` raises ``TooDeep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

MAX_DEPTH = 100
_TICK_EVERY = 4096
_SEQUENCES: tuple[type, ...] = (list, tuple, set, frozenset, type({}.keys()),
                                type({}.values()), type({}.items()))
_CONTAINERS = (dict, Namespace, *_SEQUENCES)
_OTHER = 9  # any other object: "Undefined", "<... object at 0x...>"


def int_digits(value: int) -> int:
    """At most the number of digits of an int: over 3 per 10 bits past the first."""
    return max(1, (value.bit_length() - 1) * 3 // 10)


def ints_digits(values: list[int] | tuple[int, ...]) -> int:
    """At most the number of digits of all of them."""
    return max(len(values), (sum(map(int.bit_length, values)) - len(values)) * 3 // 10)


class TooDeep(Exception):
    """A value is nested more than MAX_DEPTH levels deep."""


class _Over(Exception):
    """The running total passed the limit: nothing more to count."""


class _Estimate:
    __slots__ = ("active", "indent", "limit", "memo", "tick", "total", "visits")

    def __init__(self, limit: int, indent: int, tick: Callable[[], None] | None) -> None:
        self.limit, self.indent, self.tick = limit, indent, tick
        self.total = self.visits = 0
        # id of a container counted whole -> it (kept alive: a dict view's items are
        # made as they are read, and a freed one's id can come again) and its size
        self.memo: dict[int, tuple[Any, int]] = {}
        self.active: set[int] = set()  # ids of the containers being counted

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.limit:
            raise _Over()

    def value(self, value: Any, depth: int) -> None:
        """Adds ``repr(value)``'s size (an item of a container)."""
        self.visits += 1
        if not self.visits % _TICK_EVERY and self.tick is not None:
            self.tick()
        if isinstance(value, str):
            self.add(len(value) + 2)
        elif isinstance(value, int):  # bool too: "True", at least one digit
            self.add(int_digits(value))
        elif isinstance(value, float):
            self.add(3)
        elif value is None:
            self.add(4)
        elif isinstance(value, (bytes, bytearray)):
            self.add(len(value) + 3)
        elif isinstance(value, _CONTAINERS):
            self.container(value, depth + 1)
        else:
            self.add(_OTHER)

    def container(self, value: Any, depth: int) -> None:
        key = id(value)
        if key in self.active:
            self.add(5)  # [...]
            return
        if key in self.memo:
            self.add(self.memo[key][1])
            return
        if depth > MAX_DEPTH:
            raise TooDeep(f"a value nested more than {MAX_DEPTH} levels deep")
        start, items = self.total, value
        self.active.add(key)
        if isinstance(value, Namespace):
            self.add(12)  # <Namespace ...>
            items = object.__getattribute__(value, "_Namespace__attrs")
        self.add(2)  # brackets
        if items:
            # each item: ", " (but the last); or with an indent (JSON) "," (but the last),
            # a new line and the indent (the closing bracket has its own new line)
            per_item = 2 + self.indent * depth
            if not self.indent:
                self.total -= 2
            if isinstance(items, dict):
                self.mapping(items, depth, per_item)
            else:
                self.sequence(items, depth, per_item)
        self.active.discard(key)
        self.memo[key] = (value, self.total - start)

    def mapping(self, value: dict[Any, Any], depth: int, per_item: int) -> None:
        self.add(len(value) * (per_item + 2))  # and ": "
        for key, item in value.items():
            self.value(key, depth)
            self.value(item, depth)

    def sequence(self, value: Any, depth: int, per_item: int) -> None:
        # every item has at least one character: a long one is over without a look
        self.add(len(value) * (per_item + 1))
        self.total -= len(value)
        if isinstance(value, (list, tuple)):  # most are all strings or all numbers
            kinds = set(map(type, value))
            if kinds == {str}:
                self.add(sum(map(len, value)) + 2 * len(value))
                return
            if kinds == {int}:
                self.add(ints_digits(value))
                return
        for item in value:
            self.value(item, depth)


def text_size(value: Any, limit: int, *, indent: int = 0,
              tick: Callable[[], None] | None = None) -> int:
    """A lower bound on ``len(str(value))`` (and on its JSON and pprint's text), or some
    number over ``limit`` once it is clear the text would be longer than that.
    ``indent``: the spaces per level of JSON output. Raises TooDeep."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return int_digits(value)
    if isinstance(value, Undefined):
        return 0
    estimate = _Estimate(limit, indent, tick)
    try:
        estimate.value(value, 0)
    except _Over:
        pass
    return estimate.total
