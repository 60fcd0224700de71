"""Message templates for every channel: compiled once per message version, rendered per
recipient.

Jinja2's ``SandboxedEnvironment`` keeps templates from reaching Python internals (a
template is authored by marketers, not trusted code); HTML parts autoescape event data
so a ``ctx`` value cannot inject markup; one-line parts (a subject, a push title) cannot
carry a newline from data. Rendering is limited in time and size (``render_limits``): a
template that loops too long or builds too much fails with a RenderError naming the part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, DivisionByZero, InvalidOperation, Overflow, localcontext
from enum import Enum
from typing import Any

from jinja2 import Template, nodes

from shared.domain.events import Channel
from shared.domain.fields import DECIMAL_DIGITS
from shared.domain.html_shape import Rendered
from shared.domain.render_limits import (
    MAX_OUTPUT,
    RENDER_TIME_LIMIT,
    LimitedEnvironment,
    RenderTimeout,
    collect_chunks,
    within_deadline,
)
from shared.domain.text_size import TooDeep, text_size


class _Environment(LimitedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        """``ctx.items``, ``p.copy``: a key the event's configuration named wins over the
        dict's own method of that name (Jinja prefers the attribute), as the id's owner
        means it; ``ctx.items()`` still works where no field is called ``items``."""
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


class _HtmlTemplate(Template):
    """An HTML part's template. ``values_marked``: every value it substitutes comes out
    as ``Markup`` — no ``{% autoescape %}`` block turns escaping off, where a value would
    come out as plain ``str`` like the template's own text — so ``html_shape`` can tell
    the two apart."""
    values_marked = False


_HTML_ENV = _Environment(autoescape=True)
_HTML_ENV.template_class = _HtmlTemplate
_TEXT_ENV = _Environment(autoescape=False)


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


# Template arithmetic on ctx's exact decimals: enough digits that the sum or product of two
# of them (38 digits each) is exact, not Python's default 28; exponents bounded so that
# no '{:f}' of a result writes more than a thousand digits.
_DECIMALS = Context(prec=2 * DECIMAL_DIGITS, Emax=999, Emin=-999,
                    traps=[InvalidOperation, DivisionByZero, Overflow])


class RenderError(Exception):
    """A template failed to compile or render; the message says which part and why."""


_MAX_REASON = 1_000  # characters of an error's message a RenderError repeats


def _too_long_to_make(error: Exception) -> bool:
    """A KeyError's message is its key's repr, and others hold a value's: a template can
    make one of a gigabyte from a small value (``{}.pop((s,) * 1000)``)."""
    try:
        return text_size(error.args, MAX_OUTPUT) > MAX_OUTPUT
    except TooDeep:
        return True


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
    # the HTML part's chunks, for link rewriting (html_shape): only while parts["html"] is
    # still that very text
    html: Rendered | None = field(default=None, compare=False, repr=False)


def _compile(kind: PartKind, part: str, source: str) -> Template:
    try:
        template = (_HTML_ENV if kind is PartKind.HTML else _TEXT_ENV).from_string(source)
        # Jinja keeps a template's globals as a ChainMap over the environment's, which every
        # render copies key by key in Python (new_context): flattened once (the globals are
        # fixed at import), rendering P6's three parts went from 48 to 35 µs.
        template.globals = dict(template.globals)
        if isinstance(template, _HtmlTemplate):
            template.values_marked = _HTML_ENV.parse(source).find(
                nodes.EvalContextModifier) is None
        return template
    except Exception as error:  # a syntax error, or a template nested too deep
        raise RenderError(f"{part}: {str(error) or type(error).__name__}") from error


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


def _render(template: Template, context: dict[str, Any], kind: PartKind) -> str | Rendered:
    """The part's text; an HTML part's with its chunks when its values are marked."""
    chunks = collect_chunks(template.generate(context))
    text = "".join(chunks)
    if kind is PartKind.LINE:
        return " ".join(text.split())
    if isinstance(template, _HtmlTemplate) and template.values_marked:
        return Rendered(text, tuple(chunks))
    return text


def render_message(
    compiled: CompiledMessage, context: dict[str, Any], *,
    time_limit: float = RENDER_TIME_LIMIT,
) -> RenderedMessage:
    """Renders every part within ``time_limit`` seconds in all."""
    jobs = [(p, k, t) for p, (k, t) in compiled.parts.items()]
    jobs += [(f"data.{key}", PartKind.LINE, t) for key, t in compiled.data.items()]
    done: dict[str, str | Rendered] = {}

    def render_all() -> None:
        with localcontext(_DECIMALS):
            for part, kind, template in jobs:
                done[part] = _render(template, context, kind)

    try:
        within_deadline(time_limit, render_all)
    except Exception as error:  # the sandbox lets any exception through (1/0, a bad type)
        part = next((p for p, _, _ in jobs if p not in done), jobs[-1][0] if jobs else "")
        if isinstance(error, RenderTimeout):
            why = f"rendering took longer than {time_limit * 1000:g} ms (loops too large?)"
        elif _too_long_to_make(error):  # and not as a cause either: a traceback shows it
            raise RenderError(f"{part}: {type(error).__name__}, with a message too long"
                              " to show") from None
        else:
            why = str(error) or type(error).__name__
            if len(why) > _MAX_REASON:
                why = f"{why[:_MAX_REASON]}..."
        raise RenderError(f"{part}: {why}") from error
    html = next((r for r in done.values() if isinstance(r, Rendered)), None)
    return RenderedMessage(
        channel=compiled.channel,
        parts={p: _text(done[p]) for p in compiled.parts},
        data={key: _text(done[f"data.{key}"]) for key in compiled.data},
        html=html,
    )


def _text(rendered: str | Rendered) -> str:
    return rendered.text if isinstance(rendered, Rendered) else rendered


def template_context(
    ctx: dict[str, Any], profile: dict[str, Any] | None, event: dict[str, Any]
) -> dict[str, Any]:
    """What a template sees: ``ctx`` (event fields), ``profile`` (or empty), ``event`` meta."""
    return {"ctx": ctx, "profile": profile or {}, "event": event}
