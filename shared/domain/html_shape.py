"""Where an HTML email's links are, found once per template shape instead of once per
recipient.

Finding the links means parsing the whole document with ``html.parser`` — about 4 µs a
tag in pure Python: 55 µs for a short order mail, milliseconds for a marketing mail of a
thousand tags — while only the values substituted into the template change from one
recipient to the next. Jinja yields a template's own text as plain ``str`` chunks and
every substituted value as ``Markup`` (autoescaped, or marked safe). So the *shape* of a
rendering — its static chunks, with a hole for each value — is the same for every
recipient who took the same path through the template's loops and conditions, and so is
the parse of its *skeleton* (the shape with each hole filled by one letter), provided
each hole sits where no value can change the parse:

- in text outside any markup (a text run holds no ``<``: the parser reads it up to the
  next ``<``, and a value that holds no ``<`` cannot move that);
- inside a quoted attribute value of a start tag (a value that holds no quote cannot end
  it, nor ``>`` the tag).

Anywhere else (a tag or attribute name, an unquoted value, a comment, a declaration, an
end tag, after a ``<`` the parser kept as text, anywhere after a construct whose end the
parser looked for in vain) the shape is *unsafe* and every rendering
of it is parsed in full. A rendering whose values hold ``<``, ``>`` or a quote (a value
marked safe) is parsed in full as well. Otherwise each tag's offset is the skeleton's
shifted by the lengths of the values before it, and only the link tags holding a value
have their attributes read again. The property test in
``tests/unit/test_html_shape.py`` holds both paths to the same answer.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser, attrfind_tolerant, tagfind_tolerant  # type: ignore[attr-defined]
from itertools import accumulate

Attrs = list[tuple[str, str | None]]
Key = tuple[str | None, ...]  # the static chunks, None for each substituted value

_HOLE = "x"  # a letter: after '<' it makes a tag, so a hole there is never taken as text
_UNSAFE_IN_VALUE = ("<", ">", '"', "'")
LINK_TAGS = frozenset({"a", "area"})
MAX_SHAPES = 256  # shapes remembered (least recently used go first) ...
MAX_SHAPE_CHARS = 8_000_000  # ... and their skeletons' characters in all


@dataclass(frozen=True)
class Rendered:
    """An HTML part as rendered, with the chunks it was joined from: ``text`` is the
    very object handed on, so a later step that changes the HTML (a new string) is seen
    and the chunks are not used."""
    text: str
    chunks: tuple[str, ...]


@dataclass(frozen=True)
class LinkTag:
    """A start tag found in the document: where, its name and attributes."""
    start: int
    length: int
    tag: str
    attrs: Attrs


@dataclass(frozen=True)
class Found:
    links: list[LinkTag]  # every <a>/<area> start tag that has an href, in order
    body_end: int | None  # where the last </body> starts


class _Links(HTMLParser):
    """The link tags with an href and the last </body>: the full parse."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        # Where each line starts (getpos() counts lines and columns): found by str.find,
        # not a Python loop over every character.
        self._line_starts = [0]
        newline = text.find("\n")
        while newline != -1:
            self._line_starts.append(newline + 1)
            newline = text.find("\n", newline + 1)
        self.links: list[LinkTag] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: Attrs) -> None:
        if tag in LINK_TAGS and any(k == "href" for k, _ in attrs):
            self.links.append(LinkTag(self._offset(), len(self.get_starttag_text() or ""),
                                      tag, attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _fed(parser: _Links, text: str) -> _Links:
    parser.feed(text)
    parser.close()
    return parser


def parse(text: str) -> Found:
    """The full parse: what ``locate`` answers when it cannot use a shape."""
    links = _fed(_Links(text), text)
    return Found(links.links, links.body_end)


class _Events(_Links):
    """The full parse of a skeleton, with every event's offset and kind besides."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.offsets: list[int] = []
        self.kinds: list[str] = []
        self.tag_ends: dict[int, int] = {}  # a start tag's event index: where it ends
        # Where the first construct the parser could not see the end of begins: looking
        # for its end (a comment's "-->", a section's "]]>") it read the rest of the text,
        # holes included, and a value there could have ended it ("--" before a ">").
        self.unended: float = math.inf

    # Each construct's parse answers -1 when the text holds no end for it.
    def _ended(self, start: int, end: int) -> int:
        if end < 0:
            self.unended = min(self.unended, start)
        return end

    def parse_starttag(self, i: int) -> int:
        return self._ended(i, super().parse_starttag(i))

    def parse_endtag(self, i: int) -> int:
        return self._ended(i, super().parse_endtag(i))

    def parse_comment(self, i: int, report: bool = True) -> int:
        return self._ended(i, super().parse_comment(i, report))

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        return self._ended(i, super().parse_marked_section(i, report))

    def parse_bogus_comment(self, i: int, report: bool = True) -> int:
        return self._ended(i, super().parse_bogus_comment(i, report))

    def parse_html_declaration(self, i: int) -> int:
        return self._ended(i, super().parse_html_declaration(i))

    def parse_pi(self, i: int) -> int:
        return self._ended(i, super().parse_pi(i))

    def _event(self, kind: str) -> int:
        offset = self._offset()
        self.offsets.append(offset)
        self.kinds.append(kind)
        return offset

    def handle_starttag(self, tag: str, attrs: Attrs) -> None:
        start = self._event("starttag")
        self.tag_ends[len(self.offsets) - 1] = start + len(self.get_starttag_text() or "")
        super().handle_starttag(tag, attrs)

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        self._event("endtag")
        super().handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        self._event("data")

    def handle_comment(self, data: str) -> None:
        self._event("markup")

    def handle_decl(self, decl: str) -> None:
        self._event("markup")

    def handle_pi(self, data: str) -> None:
        self._event("markup")

    def unknown_decl(self, data: str) -> None:
        self._event("markup")


def _read_tag(tag_text: str) -> tuple[Attrs, list[tuple[int, int]]]:
    """A start tag's attributes and the spans of its quoted values (quotes excluded),
    read as ``HTMLParser.parse_starttag`` reads them, with its own expressions."""
    attrs: Attrs = []
    quoted: list[tuple[int, int]] = []
    match = tagfind_tolerant.match(tag_text, 1)
    at = match.end() if match else len(tag_text)
    while at < len(tag_text):
        found = attrfind_tolerant.match(tag_text, at)
        if not found:
            break
        name, rest, value = found.group(1, 2, 3)
        if not rest:
            value = None
        elif value[:1] == "'" == value[-1:] or value[:1] == '"' == value[-1:]:
            quoted.append((found.start(3) + 1, found.end(3) - 1))
            value = value[1:-1]
        attrs.append((name.lower(), unescape(value) if value else value))
        at = found.end()
    return attrs, quoted


@dataclass(frozen=True)
class _Plan:
    """A safe shape's parse: its link tags and </body>, each with the number of holes
    before it (and, for a tag, inside it)."""
    links: tuple[tuple[LinkTag, int, int], ...]
    body_end: tuple[int, int] | None


def _hole_is_safe(skeleton: str, events: _Events, hole: int) -> bool:
    index = bisect_right(events.offsets, hole) - 1
    if index < 0:
        return False
    start, kind = events.offsets[index], events.kinds[index]
    if kind == "data":  # a text run: no '<' before the hole, else the parser kept one
        return skeleton.rfind("<", start, hole) == -1
    if kind != "starttag":
        return False
    # (an unclosed <script>'s text makes no event: a hole there lands after its tag)
    tag_text = skeleton[start:events.tag_ends[index]]
    at = hole - start
    return any(first <= at < last for first, last in _read_tag(tag_text)[1])


def _plan(key: Key) -> _Plan | None:
    """The shape's plan, or None when a hole sits where a value could change the parse."""
    pieces = [_HOLE if chunk is None else chunk for chunk in key]
    skeleton = "".join(pieces)
    starts = accumulate((len(p) for p in pieces), initial=0)  # one more than the pieces
    holes = [offset for offset, chunk in zip(starts, key, strict=False) if chunk is None]
    events = _Events(skeleton)
    _fed(events, skeleton)
    if (holes and holes[-1] > events.unended) or not all(
            _hole_is_safe(skeleton, events, hole) for hole in holes):
        return None
    links = tuple((tag, before, bisect_right(holes, tag.start + tag.length - 1) - before)
                  for tag in events.links for before in [bisect_right(holes, tag.start)])
    body = None if events.body_end is None else (events.body_end,
                                                 bisect_right(holes, events.body_end))
    return _Plan(links, body)


class Shapes:
    """The plans of the shapes seen last, bounded in count and in characters."""

    def __init__(self, max_shapes: int = MAX_SHAPES, max_chars: int = MAX_SHAPE_CHARS) -> None:
        self._plans: OrderedDict[Key, tuple[_Plan | None, int]] = OrderedDict()
        self._chars = 0
        self._max_shapes, self._max_chars = max_shapes, max_chars
        self.hits = self.misses = 0

    def _plan_of(self, key: Key) -> _Plan | None:
        known = self._plans.get(key)
        if known is not None:
            self._plans.move_to_end(key)
            self.hits += 1
            return known[0]
        self.misses += 1
        plan = _plan(key)
        size = sum(len(chunk) for chunk in key if chunk is not None)
        if size <= self._max_chars // 4:
            self._plans[key] = (plan, size)
            self._chars += size
            while len(self._plans) > self._max_shapes or self._chars > self._max_chars:
                self._chars -= self._plans.popitem(last=False)[1][1]
        return plan

    def locate(self, text: str, chunks: Sequence[str]) -> Found:
        """The link tags and </body> of ``text``, which ``chunks`` joined make."""
        values = [chunk for chunk in chunks if type(chunk) is not str]
        joined = "".join(values)  # four scans in C, not four a value
        if any(mark in joined for mark in _UNSAFE_IN_VALUE):
            return parse(text)
        plan = self._plan_of(tuple(chunk if type(chunk) is str else None for chunk in chunks))
        if plan is None:
            return parse(text)
        # shift[n]: how much longer the text is than the skeleton after n holes
        shift = list(accumulate((len(value) - len(_HOLE) for value in values), initial=0))
        links = []
        for tag, before, inside in plan.links:
            start = tag.start + shift[before]
            length = tag.length + shift[before + inside] - shift[before]
            attrs = tag.attrs if not inside else _read_tag(text[start:start + length])[0]
            links.append(LinkTag(start, length, tag.tag, attrs))
        body_end = None if plan.body_end is None else plan.body_end[0] + shift[plan.body_end[1]]
        return Found(links, body_end)
