"""Render limits: each attack fails fast with a RenderError naming the part; ordinary
templates render as before. The 2 s bounds only guard against a hang, they time nothing."""

import functools
import json
import os
import pprint
import signal
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace

from shared.domain import render_limits
from shared.domain.events import Channel
from shared.domain.render_limits import LimitedEnvironment, LimitExceeded
from shared.domain.rendering import (
    RenderedMessage,
    RenderError,
    compile_message,
    render_message,
    template_context,
)
from shared.domain.text_size import MAX_DEPTH, TooDeep, text_size

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

# Text of a container holding many references to one long string: b is 1,000,000
# characters (at the limit), [b] * 1000 only 1,000 items, its text a gigabyte, made by one
# C call (str, a join, JSON) before any check of the output could run.
B = "{% set b = ctx.s * 1000 %}"
BIG_TEXT = [
    pytest.param(B + "{{ ([b] * 1000)|join }}", "|join would make 1,000,000,000", id="join"),
    pytest.param(B + "{{ ([b] * 1000)|join(', ') }}", "|join would make", id="join-sep"),
    pytest.param(B + "{{ [1, 2]|join([b] * 1000) }}", "|join of a list would make",
                 id="join-list-separator"),
    pytest.param(B + "{{ ([{'a': b}] * 1000)|join(attribute='a') }}", "|join would make",
                 id="join-attribute"),
    pytest.param(B + "{{ ([b] * 1000)|map('string')|join }}", "|join would make more",
                 id="map-string-join"),
    pytest.param(B + "{{ ([b] * 1000)|map('lower')|join }}", "|join would make more",
                 id="join-of-a-generator-making-copies"),
    pytest.param(B + "{{ ''.join([b] * 1000) }}", "join() would make", id="str-join"),
    pytest.param(B + "{{ (b|safe).join([b] * 1000) }}", "join() would make",
                 id="markup-join"),
    pytest.param(B + "{{ [b] * 1000 }}", "output of a list would make more than 1,000,000",
                 id="print-list"),
    pytest.param(B + "{{ [[b] * 10] * 100 }}", "output of a list", id="nested-lists"),
    pytest.param(B + "{{ dict(a=b, c=b, d=b) }}", "output of a dict", id="dict-values"),
    pytest.param(B + "{{ {'a': [b] * 1000}.values() }}", "output of a dict_values",
                 id="dict-view"),
    pytest.param(B + "{% set ns = namespace(l=[b] * 1000) %}{{ ns }}",
                 "output of a Namespace", id="namespace"),
    pytest.param(B + "{{ ([b] * 1000)|string }}", "|string of a list", id="string"),
    pytest.param(B + "{{ ([b] * 1000)|list|string }}", "|string of a list",
                 id="list-string"),
    pytest.param(B + "{{ (b|list)|string }}", "|string of a list", id="chars-string"),
    pytest.param(B + "{{ ([b] * 1000)|pprint }}", "|pprint of a list", id="pprint"),
    pytest.param(B + "{{ ([b] * 1000)|tojson }}", "|tojson of a list", id="tojson-list"),
    pytest.param(B + "{{ ([0] * 300000)|tojson(b) }}", "|tojson of a list",
                 id="tojson-indent-string"),
    pytest.param(B + "{{ ([b] * 1000)|e }}", "|e of a list", id="escape"),
    pytest.param(B + "{{ ([b] * 1000)|upper }}", "|upper of a list", id="upper"),
    pytest.param(B + "{{ ([b] * 1000)|safe }}", "|safe of a list", id="safe"),
    pytest.param(B + "{{ b|replace('x', [b] * 1000) }}", "|replace of a list",
                 id="replace-argument"),
    pytest.param(B + "{{ ctx.s|urlize(target=[b] * 1000) }}", "|urlize of a list",
                 id="urlize-target"),
    pytest.param(B + "{{ {'a': [b] * 1000}|xmlattr }}", "|xmlattr of a dict", id="xmlattr"),
    pytest.param(B + "{{ ([(b, b)] * 1000)|urlencode }}", "|urlencode would make",
                 id="urlencode"),
    pytest.param(B + "{{ ([b] * 1000) is lower }}", "is lower of a list", id="test-lower"),
    pytest.param(B + "{{ ([b] * 1000) ~ '' }}", "'~' of a list", id="tilde"),
    pytest.param(B + "{{ '%s'|format([b] * 1000) }}", "|format would make",
                 id="format-filter-list"),
    pytest.param(B + "{{ ('%s' * 1000)|format(*([b] * 1000)) }}", "|format would make",
                 id="format-filter-args"),
    pytest.param(B + "{{ '%s' % ([b] * 1000) }}", "'%' would make", id="percent-list"),
    pytest.param(B + "{{ ('%(a)s' * 1000) % {'a': b} }}", "'%' would make",
                 id="percent-repeated-key"),
    pytest.param(B + "{{ ('%s'|safe) % ([b] * 1000) }}", "'%' would make",
                 id="markup-percent"),
    pytest.param(B + "{{ '{}'.format([b] * 1000) }}", "format() of a list",
                 id="str-format-list"),
    pytest.param(B + "{{ ('{0}' * 1000).format(b) }}", "format() would make",
                 id="str-format-repeated-field"),
    pytest.param(B + "{{ '{x}'.format_map({'x': [b] * 1000}) }}", "format() of a list",
                 id="format-map"),
    pytest.param(B + "{{ ('{}'|safe).format([b] * 1000) }}", "format() of a list",
                 id="markup-format"),
    pytest.param(B + "{{ ([b] * 1000)|sum(start='') }}", "can't sum strings",
                 id="sum-strings"),
    # beside text: single C calls building a huge value from small arguments
    pytest.param(B + "{{ ([[0] * 99999] + [[]] * 999)|sum(start=[]) }}",
                 "|sum of these lists would copy", id="sum-lists-quadratic"),
    pytest.param(B + "{{ b.translate({120: b}) }}", "translate would make", id="translate"),
    pytest.param("{% set l = [ctx.s] %}{% for i in range(40) %}{{ l.extend(l) or '' }}"
                 "{% endfor %}", "extend() would make", id="list-doubling"),
    # error messages: an Undefined's name, list.index's (a C %R), a KeyError's key
    pytest.param(B + "{{ [].index([b] * 1000) }}", "index() of a list", id="index-message"),
    pytest.param(B + "{{ {}[[b] * 1000].x }}", "dict object has no element <a list>",
                 id="undefined-message"),
    pytest.param(B + "{{ {}.pop((b,) * 1000) }}", "KeyError, with a message too long",
                 id="key-error-message"),
]
ATTACKS += BIG_TEXT


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


@pytest.mark.parametrize(("source", "why"), BIG_TEXT)
def test_the_text_of_a_big_value_is_refused_before_it_is_made(source: str, why: str) -> None:
    tracemalloc.start()
    try:
        assert why in fails_fast("text", source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000  # b itself is a megabyte


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
    with pytest.raises(RenderError, match=r"^text: 'key'$"):
        render({"text": "{{ {}.pop('key') }}"})
    with pytest.raises(RenderError) as error:
        render({"text": "{{ {}.pop(ctx.s * 10) }}"})
    assert str(error.value) == f"text: '{'x' * 999}..."


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


def test_our_handler_stays_in_place_of_the_default_one_and_does_nothing_unarmed() -> None:
    """Installed once, not around every render; unarmed it ignores a stray SIGPROF (the
    default action would end the process), and the next render's alarm still fires."""
    previous = signal.signal(signal.SIGPROF, signal.SIG_DFL)
    try:
        render({"text": "{{ ctx.s }}"}, Channel.SMS)
        assert signal.getsignal(signal.SIGPROF) is render_limits._on_alarm
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
        os.kill(os.getpid(), signal.SIGPROF)
        # wordwrap is one filter call with its own Python loop: only SIGPROF cuts it short
        why = fails_fast("text", "{{ (ctx.s * 1000)|wordwrap(1)|length }}", time_limit=0.02)
        assert why == "text: rendering took longer than 20 ms (loops too large?)"
    finally:
        signal.signal(signal.SIGPROF, previous)


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


CONTAINERS = (
    "{{ ctx['items'] }} {{ ctx['items']|join(', ') }} {{ ctx|tojson }} {{ ctx|tojson(2) }}"
    " {{ ctx }} {{ [ctx.note, 1, none, 2.5, true, 2 ** 100, missing] }} {{ missing }}"
    " {{ {'a': [1, {'b': ctx.note}]} }} {{ {'a': 1}.items() }} {{ ctx['items']|string }}"
    " {{ ctx['items'][:40]|pprint }} {{ ctx['items']|map('string')|join('-') }}"
    " {{ [{'n': 'a'}, {'n': '<b>'}]|join(attribute='n') }} {{ ctx['items'][:5] ~ '!' }}"
    " {{ ctx['items'][:5]|e }} {{ [ctx.note]|upper }} {{ ([1] * 3) is lower }}"
    " {{ '%s and %s'|format(ctx['items'][:3], ctx.note) }} {{ '%s' % ([1, 2],) }}"
    " {{ '%(a)s %(a)r' % {'a': [ctx.note]} }} {{ '%s' % {'k': 1} }} {{ ctx.note|safe ~ [1] }}"
    " {{ '{} {x}'.format([1, 2], x={'k': ctx.note}) }} {{ '{a[0]}'.format_map({'a': 'xy'}) }}"
    " {{ ('{}'|safe).format([ctx.note]) }} {{ ', '.join(['a', ctx.note]) }}"
    " {{ (ctx.note|safe).join(['<i>', 'b']) }} {{ {'a': 1, 'b': ctx.note}|urlencode }}"
    " {{ [('a', 'b c')]|urlencode }} {{ {'class': 'x', 'data-n': [1]}|xmlattr }}"
    " {{ [[1], [2, 3]]|sum(start=[]) }} {{ 'abca'.translate({97: 'xy', 98: none}) }}"
    " {% set ns = namespace(a=[1]) %}{{ ns }} {{ [1, 2].index(2) }} {{ ctx['items']|sum }}"
    " {% set l = [1] %}{{ l.extend([2]) or l }} {{ [1, 2]|join([0]) }} {{ ''|join }}"
)


@pytest.mark.parametrize("part", ["html", "text"])
def test_printed_containers_render_as_with_the_stock_sandbox(part: str) -> None:
    context = template_context(CTX, {"first_name": "Ada"}, {})
    stock = SandboxedEnvironment(autoescape=part == "html").from_string(CONTAINERS)
    assert render({part: CONTAINERS}).parts[part] == stock.render(context)


def test_a_finalize_of_its_own_runs_first() -> None:
    env = LimitedEnvironment(autoescape=False, finalize=lambda v: "-" if v is None else v)
    assert env.from_string("{{ none }} {{ [1] }}").render() == "- [1]"
    with pytest.raises(LimitExceeded, match="output of a list"):
        env.from_string("{{ ['x' * 1000000] * 2 }}").render()


def test_a_value_nested_too_deep_is_not_printed() -> None:
    nest = ("{% set ns = namespace(l=[]) %}{% for i in range(200) %}{% set ns.l = [ns.l] %}"
            "{% endfor %}{{ ns.l }}")
    assert f"nested more than {MAX_DEPTH} levels deep" in fails_fast("text", nest)


def _cyclic() -> list[Any]:
    items: list[Any] = [1, "a"]
    items.append(items)
    return items


VALUES: list[Any] = [
    "", "ab", 0, 7, 8, -8, 99, 100, 2 ** 100, -(10 ** 40), 3.5, 1e300, True, None, [], [1],
    ["a", "b"], ("x",), (1, 2), {"a": [1, {"b": None}]}, {}, {1: "x"}, [[], [[]]],
    {"k": ("v", 1.0)}, set(), {1, 2}, frozenset({"a"}), b"ab", [b"x\x00"], {"a": 1}.items(),
    {"a": 1}.keys(), {"a": 1}.values(), Namespace(a=[1, "x"]), ["\x00" * 10], ["é\n"],
    [10 ** 50] * 3, [7] * 20, list(range(1000)), [["ab"] * 3] * 3, _cyclic(), [True, None],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_text_size_is_at_most_the_text(value: Any) -> None:
    assert text_size(value, 10 ** 9) <= min(len(str(value)), len(pprint.pformat(value)))
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return
    assert text_size(value, 10 ** 9) <= len(text)
    for indent in (1, 4):
        assert text_size(value, 10 ** 9, indent=indent) <= len(json.dumps(value, indent=indent))


def test_text_size_stops_early_and_counts_a_shared_value_once() -> None:
    big = ["x" * 1000] * 1000
    assert text_size(big, 10 ** 9) >= 1_000_000
    started = time.perf_counter()
    assert text_size([[big] * 1000] * 1000, 10 ** 15) >= 10 ** 12
    assert text_size(list(range(10 ** 6)), 1000) > 1000
    assert time.perf_counter() - started < 0.5
    nested: list[Any] = []
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    with pytest.raises(TooDeep):
        text_size(nested, 10 ** 9)


@pytest.mark.parametrize("source", ["{{ ctx.nope.x }}", "{{ nope.x }}", "{{ nope() }}",
                                    "{{ ctx['items'][5000].x }}", "{{ {}[none].x }}",
                                    "{{ {}[(1, 'a')].x }}", "{{ ctx[ctx.s[:150]].x }}"])
def test_undefined_errors_read_as_with_the_stock_sandbox(source: str) -> None:
    with pytest.raises(Exception) as stock:
        SandboxedEnvironment().from_string(source).render(ctx=CTX)
    with pytest.raises(RenderError) as error:
        render({"text": source})
    assert str(error.value) == f"text: {stock.value}"


def test_the_alarm_never_breaks_the_report_of_a_finaliser_s_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pytest's unraisable hook, interrupted by the alarm while it formatted a traceback,
    failed a test with 'Failed to process unraisable exception'."""
    from shared.domain import render_limits

    interrupted: list[Any] = []

    def hook(_unraisable: Any) -> None:  # stands in for pytest's, reached as a partial
        interrupted.append(sys._getframe())

    monkeypatch.setattr(sys, "unraisablehook", functools.partial(hook))
    sys.unraisablehook(None)
    monkeypatch.setattr(render_limits, "_armed", True)
    render_limits._on_alarm(signal.SIGPROF, interrupted[0])  # inside the hook: no raise
    with pytest.raises(render_limits.RenderTimeout):
        render_limits._on_alarm(signal.SIGPROF, sys._getframe())
