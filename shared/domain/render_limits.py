"""Limits on rendering a marketer's template: a deadline per message, an output cap per
part, and checks *before* the operations that can build a huge value in one step.

Making text of a value is one of those: ``str()`` of a list holding 1,000 references to one
1,000,000-character string is a gigabyte, made by one C call. So wherever a template's value
becomes text (every ``{{ }}``, through the environment's ``finalize``; ``~``; join, string,
pprint, tojson and the other filters that make text; ``%``, |format and str.format, field by
field; str.join) its size is estimated first (``text_size``) and refused past the limit.

A timer alone cannot do it: a signal is handled between Python bytecodes, so it cannot
stop one long C call (``'x' * 10**9``, ``10 ** (10 ** 9)``, ``'x'|center(10**9)``), and it
works on the main thread only. So those operations are refused before they run; loops,
calls and output chunks check the deadline on any thread; and on the main thread a
CPU-time timer (SIGPROF) is the backstop for Python-level work between checks (a filter's
own loop).

The deadline counts the rendering thread's CPU time, not wall time: a sender starved of
CPU (the bulk sender runs at a lower priority) or paused by the scheduler must not fail a
legitimate message, and no template gets more than its share of computation either.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.py's C module, no stub
import copy
import math
import re
import signal
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sized
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache, wraps
from string import Formatter
from typing import Any, TypeVar, cast

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, Undefined, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum, missing, object_type_repr
from markupsafe import Markup, soft_str

from shared.domain.text_size import TooDeep, ints_digits, text_size

RENDER_TIME_LIMIT = 0.1  # CPU seconds per message, all its parts together
MAX_OUTPUT = 1_000_000  # characters per part, and per string or list a template builds
MAX_RANGE = 10_000  # items per range() (Jinja's sandbox allows 100,000)
MAX_INT_BITS = 4_096  # bits per integer built by * or ** (about 1,200 digits)
MAX_WIDTH = 1_000  # padding and %/format widths and precisions, batch sizes
MAX_LIPSUM_WORDS = 10_000
_CHECK_EVERY = 256  # loop iterations between two deadline checks
_CHUNKS_PER_CHECK = 16  # a template's output chunks between two deadline checks
_ALARM_REPEAT = 0.01  # CPU seconds; the alarm repeats in case something swallowed it
_ALARM, _TIMER = signal.SIGPROF, signal.ITIMER_PROF  # the process's CPU time
_cpu_time = time.thread_time

T = TypeVar("T")


class LimitExceeded(SecurityError):
    """A template reached a render limit; the message says which."""


class RenderTimeout(LimitExceeded):
    """The message's render deadline passed."""


def _check_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT:
        raise LimitExceeded(f"{what} would make {size:,} characters or items"
                            f" (the limit is {MAX_OUTPUT:,})")


def _check_width(width: object, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise LimitExceeded(f"{what}: {width:,} is over the limit of {MAX_WIDTH:,}")


# -- the deadline: checked by loops, calls and output chunks; SIGPROF on the main thread

_deadline: ContextVar[float] = ContextVar("render_deadline", default=math.inf)
_armed = False  # main thread only: the SIGPROF handler raises only while this is set


def check_deadline() -> None:
    if _cpu_time() > _deadline.get():
        raise RenderTimeout()


def _reporting(frame: types.FrameType | None) -> bool:
    """Whether the interrupted code is the hook reporting an exception a finaliser or a
    garbage collector callback raised, when that hook is Python code (pytest's is): a
    raise there breaks the report itself. The alarm repeats and lands in the render."""
    hook = getattr(sys.unraisablehook, "func", sys.unraisablehook)  # a partial, or not
    code = getattr(hook, "__code__", None)
    while code is not None and frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def _on_alarm(signum: int, frame: types.FrameType | None) -> None:
    if _armed and not _reporting(frame):
        raise RenderTimeout()


def within_deadline(seconds: float, render: Callable[[], T]) -> T:
    """Runs ``render`` under a deadline; past it, the next check (or SIGPROF) raises
    RenderTimeout. No alarm if another one (or a C-level handler) is in place.

    Our handler, once in place of the default one, stays (it does nothing unarmed):
    installing and restoring it around every render went through ``signal.signal``'s
    Python wrapper twice, about 2 % of the email sender's CPU under P6. Another Python
    handler found in place is put back after the render, as before. The handler in place
    is read from ``_signal``, the C module: ``signal.getsignal`` turns its answer into an
    enum by trying and failing (an exception a render, 2 % more)."""
    global _armed
    token = _deadline.set(_cpu_time() + seconds)
    on_main = threading.current_thread() is threading.main_thread()
    previous = _signal.getsignal(_ALARM) if on_main and not _armed else None
    alarm = previous is not None and signal.getitimer(_TIMER) == (0.0, 0.0)
    try:
        if alarm:  # armed inside the try: an early alarm still reaches the finally
            if previous is not _on_alarm:
                signal.signal(_ALARM, _on_alarm)
            _armed = True
            signal.setitimer(_TIMER, seconds, _ALARM_REPEAT)
        return render()
    finally:
        if alarm:
            # First, before any call (where a pending signal is handled): from here on
            # an alarm is ignored, so none can raise outside the render.
            _armed = False
            signal.setitimer(_TIMER, 0)
            if previous not in (_on_alarm, signal.SIG_DFL, signal.SIG_IGN):
                signal.signal(_ALARM, previous)
        _deadline.reset(token)


def collect(chunks: Iterable[str]) -> str:
    """A template's output, checking its size between chunks and the deadline every
    ``_CHUNKS_PER_CHECK`` chunks: reading the thread's CPU clock is a system call, and
    once per chunk it was a third of rendering an order mail's few dozen chunks. A chunk
    that takes long on its own is the alarm's (``within_deadline``)."""
    return "".join(collect_chunks(chunks))


def collect_chunks(chunks: Iterable[str]) -> list[str]:
    """``collect``'s chunks, as the template yielded them (``html_shape`` reads them)."""
    out: list[str] = []
    size, deadline, now = 0, _deadline.get(), _cpu_time
    for i, chunk in enumerate(chunks):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise LimitExceeded(f"output longer than {MAX_OUTPUT:,} characters")
        if not i % _CHUNKS_PER_CHECK and now() > deadline:
            raise RenderTimeout()
        out.append(chunk)
    if now() > deadline:
        raise RenderTimeout()
    return out


def _guarded_iter(iterable: Iterable[T]) -> Iterator[T]:
    for i, item in enumerate(iterable):
        if not i % _CHECK_EVERY:
            check_deadline()
        yield item


# -- checks before a value becomes text: str() of a container is one C call that makes all
# of its text at once, however many references to one long string the container holds

# values whose text is no longer than they are, or short (ints are capped)
_PLAIN = (str, int, float, Undefined)
_STR_TYPES = {str, Markup}


def _too_long(what: str) -> LimitExceeded:
    return LimitExceeded(f"{what} would make more than {MAX_OUTPUT:,} characters")


def _text_len(value: Any, what: str, indent: int = 0) -> int:
    """At most len(str(value)), or some number over MAX_OUTPUT (see text_size)."""
    if isinstance(value, str):
        return len(value)
    try:
        return text_size(value, MAX_OUTPUT, indent=indent, tick=check_deadline)
    except TooDeep as error:
        raise LimitExceeded(f"{what}: {error}") from None


def _check_text(value: Any, what: str, indent: int = 0) -> None:
    if not isinstance(value, _PLAIN) and _text_len(value, what, indent) > MAX_OUTPUT:
        raise _too_long(f"{what} of a {type(value).__name__}")


def _check_texts(what: str, *values: Any) -> None:
    for value in values:
        _check_text(value, what)


def _join_items(items: Any, sep: Any, what: str) -> Any:
    """A join's items, refused if they and the separators would pass MAX_OUTPUT. Anything
    but a list or tuple is read here, one item at a time (a generator may make each one
    anew), and handed on as a list."""
    _check_text(sep, what)
    step = _text_len(sep, what)
    if isinstance(items, (list, tuple)):  # most are all strings or all numbers
        kinds = set(map(type, items))
        if kinds <= _STR_TYPES or kinds == {int}:
            size = sum(map(len, items)) if kinds <= _STR_TYPES else ints_digits(items)
            _check_size(size + step * (len(items) - 1), what)
            return items
    texts: list[Any] = []
    size = -step
    for item in items:
        size += step + _text_len(item, what)
        if size > MAX_OUTPUT:
            raise _too_long(what)
        texts.append(item)
        if not len(texts) % _CHECK_EVERY:
            check_deadline()
    return texts


# -- checks before an operation builds its result

def _check_mul(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS:
            raise LimitExceeded(f"'*' would make a {bits:,}-bit number"
                                f" (the limit is {MAX_INT_BITS:,} bits)")
        return
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(times, int) and isinstance(seq, (str, list, tuple)):
        _check_size(len(seq) * times, "'*'")


def _check_pow(base: Any, exp: Any) -> None:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        # |base| >= 2, so an exponent over the cap is over it in bits too (and too big
        # to multiply as a float)
        if exp > MAX_INT_BITS or exp * math.log2(abs(base)) > MAX_INT_BITS:
            raise LimitExceeded(f"'**' would make a number over {MAX_INT_BITS:,} bits")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _check_size(len(left) + len(right), "'+'")


# One printf conversion: %[(key)][flags][width][.precision][length]type, or %%.
_PRINTF = re.compile(r"%(?:%|(?:\(([^()]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z])")


def _printf_widths(fmt: str) -> tuple[str | None, ...]:
    """Checks the widths of a '%' format; returns its conversions' keys (None: no key)."""
    keys: list[str | None] = []
    pos = fmt.find("%")
    while pos >= 0:
        match = _PRINTF.match(fmt, pos)
        if match is None:
            raise LimitExceeded(f"'%' format not supported here: {fmt[pos:pos + 20]!r}")
        key, *numbers = match.groups()
        for number in numbers:
            if number == "*":
                raise LimitExceeded("'%' format: a width or precision of * is not allowed")
            _check_width(int(number) if number else 0, "'%' format width or precision")
        if match.group() != "%%":
            keys.append(key)
        pos = fmt.find("%", match.end())
    return tuple(keys)


def _format_widths(fmt: str) -> None:
    for _, _, spec, _ in Formatter().parse(fmt):
        if spec and "{" in spec:
            raise LimitExceeded("format(): a width from an argument is not allowed")
        for number in re.findall(r"\d+", spec or ""):
            _check_width(int(number), "format() width or precision")


# Formats are mostly short literals, checked once; a long one is not kept in the cache.
_printf_cached, _format_cached = lru_cache(256)(_printf_widths), lru_cache(256)(_format_widths)


def _check_printf(fmt: str) -> tuple[str | None, ...]:
    return (_printf_cached if len(fmt) <= 200 else _printf_widths)(fmt)


def _check_percent(fmt: str, args: Any, what: str) -> None:
    """``fmt % args`` (and |format): the format's widths, then its arguments' text."""
    keys = _check_printf(fmt)
    values: Iterable[Any] = (args,)
    if isinstance(args, tuple):
        values = args
    elif isinstance(args, dict) and any(key is not None for key in keys):
        values = [args[key] for key in keys if key is not None and key in args]
    size = len(fmt)
    for value in values:  # each one used once, or once per key naming it
        size += _text_len(value, what)
        if size > MAX_OUTPUT:
            raise _too_long(what)


def _check_format(fmt: str) -> None:
    (_format_cached if len(fmt) <= 200 else _format_widths)(fmt)


def _check_replace(s: str, old: Any, new: Any, count: Any = -1) -> None:
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        matches = s.count(old)
        if isinstance(count, int) and count >= 0:
            matches = min(matches, count)
        _check_size(len(s) + matches * (len(new) - len(old)), "replace")


def _pad(s: str, width: Any = 0, *rest: Any, **kwargs: Any) -> None:
    _check_width(width, "padding width")


def _expandtabs(s: str, tabsize: Any = 8, **kwargs: Any) -> None:
    if isinstance(tabsize, int):
        _check_size(len(s) + s.count("\t") * tabsize, "expandtabs")


def _indent(s: Any, width: Any = 4, *rest: Any, **kwargs: Any) -> None:
    _check_width(width, "indent width")
    text, unit = str(s), len(width) if isinstance(width, str) else width
    if isinstance(unit, int):
        _check_size(len(text) + text.count("\n") * unit, "indent")


def _translate(s: str, table: Any = None, *rest: Any, **kwargs: Any) -> None:
    if isinstance(table, dict):
        items: Iterable[tuple[Any, Any]] = table.items()
    elif isinstance(table, (list, tuple)):
        items = enumerate(table)
    else:
        return
    longer = {code: len(new) - 1 for code, new in items  # characters each one adds
              if isinstance(new, str) and len(new) > 1 and isinstance(code, int)
              and 0 <= code < 0x110000}
    if len(s) * (1 + max(longer.values(), default=0)) > MAX_OUTPUT:  # then count them
        counts = (Counter(s) if len(longer) > 64
                  else {chr(code): s.count(chr(code)) for code in longer})
        _check_size(len(s) + sum(n * longer.get(ord(char), 0) for char, n in counts.items()),
                    "translate")


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_text(value, "|format")
    _check_percent(soft_str(value), kwargs or args, "|format")


def _tojson(value: Any, indent: Any = None) -> None:
    _check_width(indent, "tojson indent")
    spaces = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    _check_text(value, "|tojson", spaces)


def _text_args(what: str) -> Callable[..., None]:
    """A check for a filter or test that makes text of its value and arguments."""
    return lambda *values, **kwargs: _check_texts(what, *values, *kwargs.values())


# str and list methods a template may call, and filters, that size their result from
# their arguments (join() is sized in call)
_STR_METHODS: dict[str, Callable[..., None]] = {
    "center": _pad, "ljust": _pad, "rjust": _pad, "zfill": _pad,
    "expandtabs": _expandtabs, "replace": _check_replace, "translate": _translate,
}
_LIST_METHODS: dict[str, Callable[..., None]] = {
    "extend": lambda items, more=(), *rest, **kwargs: _check_size(
        len(items) + len(more), "extend()") if isinstance(more, Sized) else None,
    "index": lambda items, value=None, *rest, **kwargs: _check_text(  # %R in its error
        value, "index()"),
}
# filters that make text of their value and arguments (join, urlencode and sum: below)
_TEXT_FILTERS = ("capitalize", "center", "e", "escape", "forceescape", "indent", "lower",
                 "replace", "safe", "string", "striptags", "title", "trim", "upper",
                 "urlize", "wordcount", "xmlattr")
_FILTERS: dict[str, Callable[..., None]] = {  # each called without Jinja's pass_* argument
    "center": lambda value, width=80, **kwargs: _check_width(width, "center width"),
    "indent": _indent,
    "batch": lambda value, linecount=1, *rest, **kwargs: _check_width(linecount, "batch size"),
    "slice": lambda value, slices=1, *rest, **kwargs: _check_width(slices, "slice count"),
    "tojson": _tojson,
    "pprint": lambda value, *rest, **kwargs: _check_text(value, "|pprint"),
    "format": _format_filter,
    "replace": lambda s, old="", new="", count=None, **kwargs: _check_replace(
        str(s), str(old), str(new), -1 if count is None else count),
}
_TESTS: dict[str, Callable[..., None]] = {"lower": _text_args("is lower"),
                                          "upper": _text_args("is upper")}
_BINOPS: dict[str, Callable[[Any, Any], None]] = {
    "*": _check_mul, "**": _check_pow, "+": _check_add,
    "%": lambda left, right: _check_percent(left, right, "'%'") if isinstance(
        left, str) else None,
}


def _checked_filter(filter_: Callable[..., Any], *checks: Callable[..., None]) -> Any:
    """The filter (or test), after the checks: given its arguments but Jinja's pass_*."""
    if getattr(filter_, "jinja_pass_arg", None) is None:
        def checked(*args: Any, **kwargs: Any) -> Any:
            for check in checks:
                check(*args, **kwargs)
            return filter_(*args, **kwargs)
    else:
        def checked(*args: Any, **kwargs: Any) -> Any:
            for check in checks:
                check(*args[1:], **kwargs)
            return filter_(*args, **kwargs)

    return wraps(filter_)(checked)  # keeps Jinja's pass_* mark too


def _join_filter(join: Callable[..., Any]) -> Any:
    @wraps(join)
    def checked(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
        if attribute is not None:
            value = map(make_attrgetter(eval_ctx.environment, attribute), value)
        return join(eval_ctx, _join_items(value, d, "|join"), d)

    return checked


def _urlencode_filter(urlencode: Callable[..., Any]) -> Any:
    @wraps(urlencode)
    def checked(value: Any) -> Any:
        if isinstance(value, dict) or not isinstance(value, Iterable):
            _check_text(value, "|urlencode")
        elif not isinstance(value, str):  # (key, value) pairs
            value = _join_items(value, "&", "|urlencode")
        return urlencode(value)

    return checked


def _sum_filter(sum_: Callable[..., Any]) -> Any:
    """sum(start=[]) adds lists one by one, in one C call: each step copies the total."""
    @wraps(sum_)
    def checked(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if isinstance(start, (list, tuple)):
            if attribute is not None:
                iterable = map(make_attrgetter(environment, attribute), iterable)
                attribute = None
            iterable = list(iterable)
            size = copies = len(start)
            for item in iterable:
                size += len(item) if isinstance(item, (list, tuple)) else 0
                copies += size
                if copies > 10 * MAX_OUTPUT:
                    raise LimitExceeded(f"|sum of these lists would copy more than"
                                        f" {10 * MAX_OUTPUT:,} items, adding one at a time")
            _check_size(size, "|sum")
        return sum_(environment, iterable, attribute=attribute, start=start)

    return checked


def _range(*args: int) -> range:
    items = range(*args)
    try:
        size = len(items)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise LimitExceeded(f"range() of more than {MAX_RANGE:,} items")
    return items


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not (isinstance(n, int) and isinstance(max, int)) or n * max > MAX_LIPSUM_WORDS:
        raise LimitExceeded(f"lipsum() of more than {MAX_LIPSUM_WORDS:,} words")
    return generate_lorem_ipsum(n, html, min, max)


class _SizedFormatter(SandboxedFormatter):
    """The sandbox's str.format, sizing each field before it becomes text, and the total."""

    _size = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._size = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_text(value, "format()")
        text = super().format_field(value, format_spec)
        self._size += len(text)
        _check_size(self._size, "format()")
        return text


class _SizedEscapeFormatter(_SizedFormatter, SandboxedEscapeFormatter):
    """Markup's format (which escapes each field), sized."""


class _Undefined(Undefined):
    """Jinja's Undefined, whose error shows a long name shortly (Jinja's has its whole
    repr: ``{}[[s] * 1000].x``)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name = self._undefined_name
        try:
            short = text_size(name, 200) <= 200
        except TooDeep:
            short = False
        if self._undefined_hint or short:
            return str(super()._undefined_message)
        shown = f"{name[:100]!r}..." if isinstance(name, str) else f"<a {type(name).__name__}>"
        if self._undefined_obj is missing:
            return f"{shown} is undefined"
        return f"{object_type_repr(self._undefined_obj)} has no element {shown}"


def _finalize(value: Any) -> Any:
    """Every {{ }} value, before str() or escape() makes its text."""
    if not isinstance(value, _PLAIN):
        _check_text(value, "output")
    return value


def _chain_finalize(first: Callable[..., Any] | None) -> Callable[..., Any]:
    """_finalize after an environment's own finalize (with its pass_* argument, if any)."""
    if first is None:
        return _finalize
    if getattr(first, "jinja_pass_arg", None) is None:
        def finalize(value: Any) -> Any:
            return _finalize(first(value))
    else:
        def finalize(arg: Any, value: Any) -> Any:  # type: ignore[misc]
            return _finalize(first(arg, value))
    return wraps(first)(finalize)


# -- compiled templates: every loop through guard_loop, every '~' through join_checked

class _LimitedCodeGenerator(CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Jinja allows no custom nodes, so the loop's iterable goes into a call of an
        # environment attribute, which a template itself cannot write ...
        guarded = copy.copy(node)
        guarded.iter = nodes.Call(nodes.EnvironmentAttribute("guard_loop"), [node.iter],
                                  [], None, None, lineno=node.lineno)
        super().visit_For(guarded, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        # ... compiled as a plain call, not through the sandbox's environment.call
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == "guard_loop":
            self.write("environment.guard_loop(")
            self.visit(node.args[0], frame)
            self.write(")")
        else:
            super().visit_Call(node, frame, forward_caller=forward_caller)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # as the stock one (markup_join or str_join), through a size check first
        markup = ("context.eval_ctx.volatile" if frame.eval_ctx.volatile
                  else str(bool(frame.eval_ctx.autoescape)))
        self.write(f"environment.join_checked({markup}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_ARITHMETIC = frozenset({"+", "-", "*", "/", "//", "%", "**"})


def _exact_operands(left: Any, right: Any) -> tuple[Any, Any]:
    """A float beside a Decimal becomes the Decimal its literal was: a marketer's
    ``ctx.total * 1.2`` means 1.2 exactly, and Python refuses to mix the two types."""
    if isinstance(left, Decimal) and isinstance(right, float):
        return left, Decimal(repr(right))
    if isinstance(right, Decimal) and isinstance(left, float):
        return Decimal(repr(left)), right
    return left, right


class LimitedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the limits above."""

    intercepted_binops = frozenset(_BINOPS) | _ARITHMETIC
    code_generator_class = _LimitedCodeGenerator

    def __init__(self, *, autoescape: bool, finalize: Callable[..., Any] | None = None) -> None:
        super().__init__(autoescape=autoescape, undefined=_Undefined,
                         finalize=_chain_finalize(finalize))
        self.globals.update(range=_range, lipsum=_lipsum)
        for name in {*_FILTERS, *_TEXT_FILTERS}:
            checks = [_text_args(f"|{name}")] if name in _TEXT_FILTERS else []
            checks += [_FILTERS[name]] if name in _FILTERS else []
            self.filters[name] = _checked_filter(self.filters[name], *checks)
        self.filters.update(join=_join_filter(self.filters["join"]),
                            urlencode=_urlencode_filter(self.filters["urlencode"]),
                            sum=_sum_filter(self.filters["sum"]))
        tests = cast("dict[str, Callable[..., Any]]", self.tests)  # typeshed: "function"
        for name, check in _TESTS.items():
            tests[name] = _checked_filter(tests[name], check)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        left, right = _exact_operands(left, right)
        check = _BINOPS.get(operator)
        if check is not None:
            check(left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_deadline()  # macros, caller() and recursive loops all come through here
        owner = getattr(obj, "__self__", None)  # str's, Markup's and list's methods
        if isinstance(owner, (str, list)):
            name = obj.__name__
            if name == "join" and isinstance(owner, str) and len(args) == 1:
                args = (_join_items(args[0], owner, "join()"),)  # a generator read once
            else:
                check = (_STR_METHODS if isinstance(owner, str) else _LIST_METHODS).get(name)
                if check is not None:
                    check(owner, *args, **{k: v for k, v in kwargs.items()
                                           if k not in ("_loop_vars", "_block_vars")})
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """As the sandbox's, with widths checked and every field sized (_SizedFormatter)."""
        # called on every attribute a template reads: the cheap test first
        if not isinstance(value, (types.BuiltinMethodType, types.MethodType)) or (
                value.__name__ not in ("format", "format_map")):
            return None
        fmt = value.__self__
        if not isinstance(fmt, str):
            return None
        _check_format(str(fmt))
        formatter = (_SizedEscapeFormatter(self, escape=fmt.escape) if isinstance(fmt, Markup)
                     else _SizedFormatter(self))
        str_type, is_format_map = type(fmt), value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(
                        f"format_map() takes exactly one argument ({len(args)} given)")
                return str_type(formatter.vformat(fmt, (), args[0]))
            return str_type(formatter.vformat(fmt, args, kwargs))

        return wrapper

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Joins a block's buffer (macros, caller(), {% set %} and filter blocks)."""
        texts = list(parts)
        _check_size(sum(map(len, texts)), "a block")
        return "".join(texts)

    @staticmethod
    def guard_loop(iterable: Any) -> Any:
        check_deadline()
        try:
            if len(iterable) <= _CHECK_EVERY:
                return iterable  # nothing to add: its loop ends before the next check
        except TypeError:
            pass
        return _guarded_iter(iterable)

    @staticmethod
    def join_checked(markup: bool, parts: tuple[Any, ...]) -> str:
        for part in parts:
            if not isinstance(part, _PLAIN):
                _check_text(part, "'~'")
        texts = [soft_str(part) for part in parts]
        _check_size(sum(map(len, texts)), "'~'")
        return markup_join(texts) if markup else str_join(texts)
