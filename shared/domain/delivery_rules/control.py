"""Control rules: checks on the rendered message, run by the sender before hand-over.

A typology's control rules run in their order; the first one that fails ends the message
(``excluded``, its reason naming the rule and the first failure). Each check:

- ``subjectPresent``: the email's subject, the push notification's title, the SMS's text
  is not blank;
- ``noUnrenderedTags``: no part holds template syntax the rendering left behind
  (``{{``, ``{%``, ``{#``, ``}}``, ``%}``), the sign of a tag written wrong;
- ``maxBytes``: the rendered parts together, in UTF-8, are at most ``maxBytes`` bytes (the
  content as written, before MIME encoding or provider framing);
- ``absoluteLinks``: every link carries a scheme (``https:``, ``mailto:``, ``tel:``,
  ``cid:``…); an in-page anchor (``#top``) is allowed;
- ``httpsLinks``: no link uses plain ``http:`` (allowed only where local development
  says so: ``allow_http``).

Links are the ``href`` and ``src`` attributes of the HTML part (read with the standard
library's HTML parser, entities decoded) and the http(s) URLs written in text parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from shared.domain.delivery_rules.model import ControlCheck, ControlRule
from shared.domain.rendering import RenderedMessage

_TAGS = ("{{", "{%", "{#", "}}", "%}")
_TEXT_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_LINK_ATTRIBUTES = frozenset({"href", "src"})
_SHOWN = 80  # characters of a link quoted in a reason


@dataclass(frozen=True)
class ControlFailure:
    check: ControlCheck
    reason: str


_PART_NAMES = {"subject": "the subject", "html": "the HTML body", "title": "the title",
               "body": "the body"}


def _part_name(channel: str, part: str) -> str:
    if part == "text":
        return "the text body" if channel == "email" else "the text"
    return _PART_NAMES.get(part, f"part {part!r}")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links.extend(value.strip() for name, value in attrs
                          if name in _LINK_ATTRIBUTES and value is not None)

    handle_startendtag = handle_starttag


def links(message: RenderedMessage) -> list[str]:
    """Every link of the message, in order: the HTML's href/src, then URLs in text parts."""
    found: list[str] = []
    for part, content in message.parts.items():
        if part == "html":
            parser = _Links()
            parser.feed(content)
            parser.close()
            found.extend(parser.links)
        else:
            found.extend(match.group(0) for match in _TEXT_URL.finditer(content))
    for value in message.data.values():
        found.extend(match.group(0) for match in _TEXT_URL.finditer(value))
    return found


def _shown(link: str) -> str:
    return link if len(link) <= _SHOWN else link[:_SHOWN - 1] + "…"


def _first_of(offenders: list[str], describe: str) -> str:
    reason = f"link '{_shown(offenders[0])}' {describe}"
    return reason + (f" (and {len(offenders) - 1} more)" if len(offenders) > 1 else "")


def _is_absolute(link: str) -> bool:
    if link.startswith("#"):
        return True  # an anchor in the message itself
    try:
        split = urlsplit(link)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    if not split.scheme:
        return False
    return bool(split.netloc) if split.scheme.lower() in ("http", "https") else True


def _subject(message: RenderedMessage) -> ControlFailure | None:
    part = {"email": "subject", "push": "title"}.get(message.channel.value, "text")
    if message.parts.get(part, "").strip():
        return None
    return ControlFailure("subjectPresent", f"{_part_name(message.channel.value, part)} is empty")


def _unrendered(message: RenderedMessage) -> ControlFailure | None:
    contents = [(_part_name(message.channel.value, p), c) for p, c in message.parts.items()]
    contents += [(f"data {key!r}", value) for key, value in message.data.items()]
    for name, content in contents:
        for tag in _TAGS:
            if tag in content:
                return ControlFailure("noUnrenderedTags",
                                      f"unrendered template tag '{tag}' in {name}")
    return None


def message_bytes(message: RenderedMessage) -> int:
    return (sum(len(c.encode()) for c in message.parts.values())
            + sum(len(k.encode()) + len(v.encode()) for k, v in message.data.items()))


def control_failures(
    message: RenderedMessage, rule: ControlRule, allow_http: bool = False
) -> list[ControlFailure]:
    """The rule's failed checks, in the rule's order (empty: the message passes)."""
    failures: list[ControlFailure] = []
    found_links: list[str] | None = None
    for check in rule.checks:
        failure: ControlFailure | None = None
        if check == "subjectPresent":
            failure = _subject(message)
        elif check == "noUnrenderedTags":
            failure = _unrendered(message)
        elif check == "maxBytes":
            size, limit = message_bytes(message), rule.maxBytes
            if limit is not None and size > limit:
                failure = ControlFailure(check, f"{size:,} bytes, over the {limit:,} allowed")
        else:
            found_links = links(message) if found_links is None else found_links
            if check == "absoluteLinks":
                relative = [link for link in found_links if not _is_absolute(link)]
                if relative:
                    failure = ControlFailure(check, _first_of(relative, "is not absolute"))
            elif not allow_http:  # httpsLinks
                plain = [link for link in found_links if link.lower().startswith("http:")]
                if plain:
                    failure = ControlFailure(check, _first_of(plain, "is not https"))
        if failure is not None:
            failures.append(failure)
    return failures
