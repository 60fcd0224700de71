"""Message templates: compiled once per message version, rendered per recipient.

Jinja2's ``SandboxedEnvironment`` keeps templates from reaching Python internals (a
template is authored by marketers, not trusted code); HTML parts autoescape event data
so a ``ctx`` value cannot inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

_HTML_ENV = SandboxedEnvironment(autoescape=True)
_TEXT_ENV = SandboxedEnvironment(autoescape=False)


class RenderError(Exception):
    """A template failed to compile or render; the message says which part and why."""


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledEmail:
    subject: Template
    html: Template
    text: Template


def _compile(env: SandboxedEnvironment, part: str, source: str) -> Template:
    try:
        return env.from_string(source)
    except TemplateError as error:
        raise RenderError(f"{part}: {error}") from error


def compile_email(template: EmailTemplate) -> CompiledEmail:
    return CompiledEmail(
        subject=_compile(_TEXT_ENV, "subject", template.subject),
        html=_compile(_HTML_ENV, "html", template.html),
        text=_compile(_TEXT_ENV, "text", template.text),
    )


def _render(part: str, template: Template, context: dict[str, Any]) -> str:
    try:
        return template.render(context)
    except TemplateError as error:
        raise RenderError(f"{part}: {error}") from error


def render_email(compiled: CompiledEmail, context: dict[str, Any]) -> RenderedEmail:
    # A subject is one header line: a newline from data must not start another header.
    subject = " ".join(_render("subject", compiled.subject, context).split())
    return RenderedEmail(
        subject=subject,
        html=_render("html", compiled.html, context),
        text=_render("text", compiled.text, context),
    )


def template_context(
    ctx: dict[str, Any], profile: dict[str, Any] | None, event: dict[str, Any]
) -> dict[str, Any]:
    """What a template sees: ``ctx`` (event fields), ``profile`` (or empty), ``event`` meta."""
    return {"ctx": ctx, "profile": profile or {}, "event": event}
