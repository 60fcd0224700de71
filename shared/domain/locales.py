"""Locale variants of a message: one message, a default content and alternatives per
language, the variant chosen per recipient by a fallback chain.

A message's template keeps its default parts at the top and its variants under
``variants``: a locale tag (BCP-47-like: ``fr``, ``fr-CA``, ``zh-Hant-TW``) for each, mapped
to a full content of the channel's shape. Tags are matched without regard to case and
stored normalised (``fr_ca`` → ``fr-CA``). The wanted locale is the request's when it names
one, else the profile's; ``fr-CA`` falls back to ``fr``, then to the default content
(RFC 4647 "lookup"; a wanted ``fr`` does not take an ``fr-CA`` variant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain.events import Channel
from shared.domain.locale_tags import fallback_chain
from shared.domain.rendering import CompiledMessage, RenderError, compile_message

VARIANTS = "variants"  # the template's key holding them
MAX_VARIANTS = 50


@dataclass(frozen=True)
class LocaleChoice:
    """``locale``: the variant used (None: the default content); ``chosen_from``: the
    locale wanted, normalised (None when none was, or it is not a tag)."""

    locale: str | None
    chosen_from: str | None


def choose_locale(wanted: str | None, available: Iterable[str]) -> LocaleChoice:
    """The first tag of ``wanted``'s fallback chain that is a variant, else the default."""
    if not wanted:
        return LocaleChoice(None, None)
    try:
        chain = fallback_chain(wanted)
    except ValueError:  # not a tag (a profile's written before tags were checked): default
        return LocaleChoice(None, None)
    by_key = {tag.lower(): tag for tag in available}
    found = next((by_key[t.lower()] for t in chain if t.lower() in by_key), None)
    return LocaleChoice(found, chain[0])


def wanted_locale(request_locale: str | None, profile: Mapping[str, Any] | None) -> str | None:
    """The request's locale wins (the caller knows this message's context: the language
    the order was placed in); else the profile's ``locale``."""
    if request_locale:
        return request_locale
    value = (profile or {}).get("locale")
    return value if isinstance(value, str) and value else None


def split_template(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the default parts, the variants as stored) of a message's template."""
    default = {k: v for k, v in template.items() if k != VARIANTS}
    variants = template.get(VARIANTS) or {}
    return default, dict(variants) if isinstance(variants, Mapping) else {}


@dataclass(frozen=True)
class LocalisedMessage:
    default: CompiledMessage
    variants: dict[str, CompiledMessage]

    def choose(self, wanted: str | None) -> tuple[CompiledMessage, LocaleChoice]:
        choice = choose_locale(wanted, self.variants)
        chosen = self.default if choice.locale is None else self.variants[choice.locale]
        return chosen, choice


def compile_localised(channel: Channel, template: Mapping[str, Any]) -> LocalisedMessage:
    """The default and every variant compiled; a RenderError names a variant's part as
    ``variants.<tag>.<part>``."""
    default, variants = split_template(template)
    compiled = {}
    for tag, content in variants.items():
        try:
            compiled[tag] = compile_message(channel, content)
        except RenderError as error:
            raise RenderError(f"{VARIANTS}.{tag}.{error}") from error
    return LocalisedMessage(compile_message(channel, default), compiled)
