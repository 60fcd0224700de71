"""Rewrite an HTML email's links to tracked ones, and add the open pixel.

The document is read with ``html.parser`` (never a regular expression over HTML), which
finds each start tag and where it begins — once per template shape when the rendering's
chunks are given (``html_shape``); only the ``<a>``/``<area>`` tags whose ``href`` is
http(s) are replaced, everything else stays byte for byte: comments (and links inside
them), entities in text, other tags, mailto:, tel:, #anchors, relative links.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from shared.domain import html_shape
from shared.domain.html_shape import Shapes
from shared.domain.tracking_links import MAX_LINKS


@dataclass(frozen=True)
class Rewritten:
    html: str
    links: tuple[str, ...]  # the original URLs, by link index


_shapes = Shapes()  # bounded: see html_shape


def _http_href(attrs: list[tuple[str, str | None]]) -> str | None:
    href = next((v for k, v in attrs if k == "href"), None)
    if href is None or not href.strip().lower().startswith(("http://", "https://")):
        return None
    return href.strip()


def _tag(name: str, attrs: list[tuple[str, str | None]], href: str, closed: bool) -> str:
    parts = [name]
    for key, value in attrs:
        value = href if key == "href" else value
        parts.append(key if value is None else f'{key}="{escape(value, quote=True)}"')
    return "<" + " ".join(parts) + (" />" if closed else ">")


def pixel(url: str) -> str:
    return (f'<img src="{escape(url, quote=True)}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px" />')


def rewrite_links(html: str, click_url: Callable[[int], str], open_url: str,
                  rendered: html_shape.Rendered | None = None) -> Rewritten:
    """The HTML with every http(s) link going through ``click_url(index)`` (indices in
    document order) and the pixel before ``</body>`` (at the end without one).
    ``rendered``: the chunks ``html`` was rendered from, when it is that very text, so
    its links are found from its template's shape (``html_shape``) without a full parse."""
    found = (_shapes.locate(html, rendered.chunks) if rendered is not None
             and rendered.text is html else html_shape.parse(html))
    edits: list[tuple[int, int, str]] = []
    urls: list[str] = []
    for link in found.links:
        href = _http_href(link.attrs)
        if href is None:
            continue
        if len(urls) == MAX_LINKS:
            break
        closed = html[link.start:link.start + link.length].endswith("/>")
        edits.append((link.start, link.length,
                      _tag(link.tag, link.attrs, click_url(len(urls)), closed)))
        urls.append(href)
    end = found.body_end if found.body_end is not None else len(html)
    edits.append((end, 0, pixel(open_url)))
    pieces, at = [], 0
    for start, length, text in sorted(edits, key=lambda e: e[0]):
        pieces += [html[at:start], text]
        at = start + length
    pieces.append(html[at:])
    return Rewritten("".join(pieces), tuple(urls))
