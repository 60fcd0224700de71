"""Locale tags, BCP-47-like (``fr``, ``fr-CA``, ``zh-Hant-TW``): checked, normalised, and
walked back to less specific ones. Imports no other domain module: event requests and
messages both use them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

TAG_PATTERN = r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$"  # a profile's locale's too
_TAG = re.compile(TAG_PATTERN)


def normalise_tag(tag: str) -> str:
    """``fr_ca`` → ``fr-CA``, ``ZH-hant-tw`` → ``zh-Hant-TW``; ValueError if not a tag."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise ValueError(f"{tag!r} is not a locale tag (a language such as fr, then"
                         " subtags such as CA: fr-CA)")
    language, *rest = re.split(r"[_-]", tag)
    subtags = [language.lower()]
    for subtag in rest:
        if len(subtag) == 4 and subtag.isalpha():
            subtags.append(subtag.title())  # a script: Hant
        elif (len(subtag) == 2 and subtag.isalpha()) or (len(subtag) == 3 and subtag.isdigit()):
            subtags.append(subtag.upper())  # a region: CA, 419
        else:
            subtags.append(subtag.lower())
    return "-".join(subtags)


def fallback_chain(tag: str) -> list[str]:
    """The tags tried in turn, most specific first: ``fr-CA`` → ``[fr-CA, fr]``."""
    subtags = normalise_tag(tag).split("-")
    return ["-".join(subtags[:n]) for n in range(len(subtags), 0, -1)]


LOCALE_HELP = ("The message's language variant to send (fr-CA falls back to fr, then to"
               " the default content); for a profile-based event it wins over the"
               " profile's locale.")
LocaleTag = Annotated[str, StringConstraints(pattern=TAG_PATTERN),
                      AfterValidator(normalise_tag), Field(examples=["fr-CA"])]
