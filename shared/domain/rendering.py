"""Message templates for every channel: compiled once per message version, rendered per
recipient.

Jinja2's ``SandboxedEnvironment`` keeps templates from reaching Python internals (a
template is authored by marketers, not trusted code); HTML parts autoescape event data
so a ``ctx`` value cannot inject markup; one-line parts (a subject, a push title) cannot
carry a newline from data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from shared.domain.events import Channel

_HTML_ENV = SandboxedEnvironment(autoescape=True)
_TEXT_ENV = SandboxedEnvironment(autoescape=False)


class PartKind(Enum):
    LINE = "line"  # one header-like line: whitespace from data collapses to spaces
    TEXT = "text"
    HTML = "html"


# The parts of each channel's message; push also has ``data``: string values, each a
# one-line template, handed to the app as is.
CHANNEL_PARTS: dict[Channel, dict[str, PartKind]] = {
    Channel.EMAIL: {"subject": PartKind.LINE, "html": PartKind.HTML, "text": PartKind.TEXT},
    Channel.SMS: {"text": PartKind.TEXT},
    Channel.PUSH: {"title": PartKind.LINE, "body": PartKind.TEXT},
}


class RenderError(Exception):
    """A template failed to compile or render; the message says which part and why."""


@dataclass(frozen=True)
class CompiledMessage:
    channel: Channel
    parts: dict[str, tuple[PartKind, Template]]
    data: dict[str, Template]


@dataclass(frozen=True)
class RenderedMessage:
    channel: Channel
    parts: dict[str, str]
    data: dict[str, str]


def _compile(kind: PartKind, part: str, source: str) -> Template:
    try:
        return (_HTML_ENV if kind is PartKind.HTML else _TEXT_ENV).from_string(source)
    except TemplateError as error:
        raise RenderError(f"{part}: {error}") from error


def compile_message(channel: Channel, template: Mapping[str, Any]) -> CompiledMessage:
    """Missing parts compile as empty; unknown parts are refused."""
    allowed = CHANNEL_PARTS[channel]
    unknown = set(template) - set(allowed) - ({"data"} if channel is Channel.PUSH else set())
    if unknown:
        raise RenderError(f"{', '.join(sorted(unknown))}: not a part of a {channel} message")
    data = template.get("data") or {}
    return CompiledMessage(
        channel=channel,
        parts={p: (k, _compile(k, p, str(template.get(p, "")))) for p, k in allowed.items()},
        data={key: _compile(PartKind.LINE, f"data.{key}", str(v)) for key, v in data.items()},
    )


def _render(part: str, template: Template, context: dict[str, Any], kind: PartKind) -> str:
    try:
        text = template.render(context)
    except TemplateError as error:
        raise RenderError(f"{part}: {error}") from error
    return " ".join(text.split()) if kind is PartKind.LINE else text


def render_message(compiled: CompiledMessage, context: dict[str, Any]) -> RenderedMessage:
    return RenderedMessage(
        channel=compiled.channel,
        parts={p: _render(p, t, context, k) for p, (k, t) in compiled.parts.items()},
        data={key: _render(f"data.{key}", t, context, PartKind.LINE)
              for key, t in compiled.data.items()},
    )


def template_context(
    ctx: dict[str, Any], profile: dict[str, Any] | None, event: dict[str, Any]
) -> dict[str, Any]:
    """What a template sees: ``ctx`` (event fields), ``profile`` (or empty), ``event`` meta."""
    return {"ctx": ctx, "profile": profile or {}, "event": event}
