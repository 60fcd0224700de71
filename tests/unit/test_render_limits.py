"""Render limits: each attack fails fast with a RenderError naming the part; ordinary
templates render as before. The 2 s bounds only guard against a hang, they time nothing."""

import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jinja2.sandbox import SandboxedEnvironment

from shared.domain.events import Channel
from shared.domain.rendering import (
    RenderedMessage,
    RenderError,
    compile_message,
    render_message,
    template_context,
)

CTX = {"items": list(range(1000)), "s": "x" * 1000, "note": "<b>&</b>"}


def render(template: dict[str, Any], channel: Channel = Channel.EMAIL,
           time_limit: float = 0.1) -> RenderedMessage:
    compiled = compile_message(channel, template)
    return render_message(compiled, template_context(CTX, {"first_name": "Ada"}, {}),
                          time_limit=time_limit)


def fails_fast(part: str, source: str, **kwargs: Any) -> str:
    started = time.perf_counter()
    with pytest.raises(RenderError) as error:
        render({"subject": "s", "html": "h", "text": "t", part: source}, **kwargs)
    assert time.perf_counter() - started < 2
    assert str(error.value).startswith(f"{part}: ")
    return str(error.value)


SLOW = "rendering took longer than 100 ms (loops too large?)"
ATTACKS = [
    pytest.param("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
                 "{% endfor %}", SLOW, id="nested-range-loops"),
    pytest.param("{% for a in ctx['items'] %}{% for b in ctx['items'] %}"
                 "{% for c in ctx['items'] %}{% endfor %}{% endfor %}{% endfor %}",
                 SLOW, id="loops-over-a-collection-with-no-output"),
    pytest.param("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                 "{% endmacro %}{{ f(40) }}", SLOW, id="macro-fan-out"),
    pytest.param("{% for i in range(10000) %}{% for j in range(10000) %}{{ ctx.s }}"
                 "{% endfor %}{% endfor %}", "output longer than 1,000,000 characters",
                 id="output-flood"),
    pytest.param("{{ 'x' * 10**9 }}", "'*' would make 1,000,000,000 characters",
                 id="string-repetition"),
    pytest.param("{{ [0] * 10**9 }}", "'*' would make 1,000,000,000", id="list-repetition"),
    pytest.param("{{ 10 ** (10 ** 10) }}", "'**' would make a number over 4,096 bits",
                 id="power"),
    pytest.param("{% set ns = namespace(n=3) %}{% for i in range(40) %}"
                 "{% set ns.n = ns.n * ns.n %}{% endfor %}", "'*' would make a",
                 id="repeated-squaring"),
    pytest.param("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "'~' would make",
                 id="doubling-with-tilde"),
    pytest.param("{{ range(10**9)|length }}", "range() of more than 10,000 items",
                 id="big-range"),
    pytest.param("{{ 'x'|center(10**9) }}", "center width", id="center-filter"),
    pytest.param("{{ 'x'.ljust(1000000000) }}", "padding width", id="ljust-method"),
    pytest.param("{{ '%1000000000s' % 'x' }}", "'%' format width", id="printf-width"),
    pytest.param("{{ '%.1000000000f'|format(1) }}", "'%' format width", id="format-filter"),
    pytest.param("{{ '{:1000000000}'.format('x') }}", "format() width", id="str-format"),
    pytest.param("{{ ctx.s.replace('', ctx.s) }}", "replace would make", id="replace"),
    pytest.param("{{ ctx.s|replace('x', ctx.s ~ ctx.s) }}", "replace would make",
                 id="replace-filter"),
    pytest.param("{{ ('\n' * 10000)|indent(ctx.s) }}", "indent would make", id="indent"),
    pytest.param("{{ [1]|batch(10**9, 0)|list }}", "batch size", id="batch"),
    # a literal argument: Jinja would run this one while compiling, hanging the compile
    pytest.param("{{ [1]|slice(1000000000)|list }}", "slice count", id="slice"),
    pytest.param("{{ {}|tojson(1000000000) }}", "tojson indent", id="tojson"),
]


@pytest.mark.parametrize(("source", "why"), ATTACKS)
@pytest.mark.parametrize("part", ["html", "text"])
def test_an_attack_fails_fast_naming_the_part(part: str, source: str, why: str) -> None:
    assert why in fails_fast(part, source)


@pytest.mark.parametrize(("source", "why"), ATTACKS)
def test_a_worker_thread_is_limited_too(source: str, why: str) -> None:
    # No SIGPROF off the main thread: the loop, call and output checks must do it alone.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fails_fast("text", source)
        except BaseException as error:  # reported to the test's thread below
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(5)
    assert not worker.is_alive()
    assert errors == []


def test_the_alarm_stops_work_between_checks_on_the_main_thread() -> None:
    # wordwrap is one filter call with its own Python loop: only SIGPROF can cut it short
    why = fails_fast("text", "{{ (ctx.s * 1000)|wordwrap(1)|length }}", time_limit=0.02)
    assert why == "text: rendering took longer than 20 ms (loops too large?)"


def test_a_push_data_value_is_limited_and_named() -> None:
    slow = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderError) as error:
        render({"title": "t", "body": "b", "data": {"link": slow}}, Channel.PUSH)
    assert str(error.value) == f"data.link: {SLOW}"


def test_a_huge_literal_neither_compiles_slowly_nor_renders() -> None:
    started = time.perf_counter()
    compiled = compile_message(Channel.SMS, {"text": "{{ 'x'|center(1000000000) }}"})
    assert time.perf_counter() - started < 2  # the constant is not folded at compile time
    with pytest.raises(RenderError, match=r"^text: center width"):
        render_message(compiled, {})


def test_any_exception_while_rendering_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"^text: division by zero"):
        render({"text": "{{ 1 / 0 }}"})


@pytest.fixture
def own_alarm_handler() -> Iterator[Callable[[int, Any], None]]:
    def handler(signum: int, frame: Any) -> None:
        raise AssertionError("a render left an alarm behind")

    previous = signal.signal(signal.SIGPROF, handler)
    yield handler
    signal.signal(signal.SIGPROF, previous)


@pytest.mark.parametrize("source", ["{{ ctx.s }}", ATTACKS[0].values[0], "{{ 1 / 0 }}"])
def test_the_alarm_is_disarmed_and_the_handler_restored(
    own_alarm_handler: Callable[[int, Any], None], source: str
) -> None:
    try:
        render({"text": source}, Channel.SMS)
    except RenderError:
        pass
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) is own_alarm_handler


ORDINARY = {
    "subject": "{{ profile.first_name }}, {{ ctx['items']|length }} items",
    "html": (
        "<p>{{ ctx.note }}</p>{% for i in ctx['items'] %}{{ i }}"
        "{% if loop.last %} of {{ loop.length }}{% endif %},{% else %}none{% endfor %}"
        "{% for i in ctx.missing %}{{ i }}{% else %}<i>none</i>{% endfor %}"
        "{% macro row(x) %}<td>{{ x ~ caller() }}</td>{% endmacro %}"
        "{% call row(ctx.note) %}!{% endcall %}{% set block %}{{ ctx.note }}{% endset %}"
        "{{ block }}{{ ctx.note ~ ('<br>'|safe) }}"
    ),
    "text": (
        "{{ '%.2f'|format(3.14159) }} {{ '%5d|%-4s|' % (42, 'ab') }} {{ '{:,}'.format(10**9) }}"
        " {{ 'ab'|center(6) }}|{{ 'a\nb'|indent(2, true) }} {{ 'aXbX'|replace('X', '--') }}"
        " {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 7 % 3 }}"
        " {{ range(3)|list }} {{ range(600)|sum }} {{ [1, 2, 3]|batch(2)|list }}"
        "{% for x in [[1, [2]], [3]] recursive %}({{ x if x is number else loop(x) }}){% endfor %}"
        "{{ 'x'.zfill(4) }} {{ 'a\tb'.expandtabs(4) }} {{ [1, 2, 3]|slice(2)|list }}"
        " {{ {'a': [1]}|tojson(2) }} {{ 'x-y'.replace('-', '+') }} {{ 'ab'.rjust(4, '.') }}"
    ),
}


def test_ordinary_templates_render_as_with_the_stock_sandbox() -> None:
    context = template_context(CTX, {"first_name": "Ada"}, {})
    expected = {
        part: SandboxedEnvironment(autoescape=part == "html").from_string(source).render(context)
        for part, source in ORDINARY.items()
    }
    assert render(ORDINARY).parts == expected
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in expected["html"] and "<br>" in expected["html"]
