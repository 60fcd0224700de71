"""Rewrite an HTML email's links to tracked ones, and add the open pixel.

The document is read with ``html.parser`` (never a regular expression over HTML), which
finds each start tag and where it begins; only the ``<a>``/``<area>`` tags whose ``href`` is
http(s) are replaced, everything else stays byte for byte: comments (and links inside
them), entities in text, other tags, mailto:, tel:, #anchors, relative links.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

from shared.domain.tracking_links import MAX_LINKS

_LINK_TAGS = frozenset({"a", "area"})


@dataclass(frozen=True)
class Rewritten:
    html: str
    links: tuple[str, ...]  # the original URLs, by link index


class _Locator(HTMLParser):
    """Finds the http(s) links' start tags and the closing ``</body>``, as offsets."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        # Where each line starts (getpos() counts lines and columns): found by str.find,
        # not a Python loop over every character.
        self._line_starts = [0]
        newline = text.find("\n")
        while newline != -1:
            self._line_starts.append(newline + 1)
            newline = text.find("\n", newline + 1)
        self.links: list[tuple[int, int, str, str, list[tuple[str, str | None]]]] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _LINK_TAGS or len(self.links) >= MAX_LINKS:
            return
        href = next((v for k, v in attrs if k == "href"), None)
        if href is None or not href.strip().lower().startswith(("http://", "https://")):
            return
        raw = self.get_starttag_text() or ""
        self.links.append((self._offset(), len(raw), tag, href.strip(), attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _tag(name: str, attrs: list[tuple[str, str | None]], href: str, closed: bool) -> str:
    parts = [name]
    for key, value in attrs:
        value = href if key == "href" else value
        parts.append(key if value is None else f'{key}="{escape(value, quote=True)}"')
    return "<" + " ".join(parts) + (" />" if closed else ">")


def pixel(url: str) -> str:
    return (f'<img src="{escape(url, quote=True)}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px" />')


def rewrite_links(html: str, click_url: Callable[[int], str], open_url: str) -> Rewritten:
    """The HTML with every http(s) link going through ``click_url(index)`` (indices in
    document order) and the pixel before ``</body>`` (at the end without one)."""
    locator = _Locator(html)
    locator.feed(html)
    locator.close()
    edits: list[tuple[int, int, str]] = []
    urls: list[str] = []
    for index, (start, length, name, href, attrs) in enumerate(locator.links):
        closed = html[start:start + length].endswith("/>")
        edits.append((start, length, _tag(name, attrs, click_url(index), closed)))
        urls.append(href)
    end = locator.body_end if locator.body_end is not None else len(html)
    edits.append((end, 0, pixel(open_url)))
    pieces, at = [], 0
    for start, length, text in sorted(edits, key=lambda e: e[0]):
        pieces += [html[at:start], text]
        at = start + length
    pieces.append(html[at:])
    return Rewritten("".join(pieces), tuple(urls))
