"""Limits on rendering a marketer's template: a deadline per message, an output cap per
part, and checks *before* the operations that can build a huge value in one step.

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

import copy
import math
import re
import signal
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import lru_cache, wraps
from string import Formatter
from typing import Any, TypeVar

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from markupsafe import soft_str

RENDER_TIME_LIMIT = 0.1  # CPU seconds per message, all its parts together
MAX_OUTPUT = 1_000_000  # characters per part, and per string or list a template builds
MAX_RANGE = 10_000  # items per range() (Jinja's sandbox allows 100,000)
MAX_INT_BITS = 4_096  # bits per integer built by * or ** (about 1,200 digits)
MAX_WIDTH = 1_000  # padding and %/format widths and precisions, batch sizes
MAX_LIPSUM_WORDS = 10_000
_CHECK_EVERY = 256  # loop iterations between two deadline checks
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


def _on_alarm(signum: int, frame: object) -> None:
    if _armed:
        raise RenderTimeout()


def within_deadline(seconds: float, render: Callable[[], T]) -> T:
    """Runs ``render`` under a deadline; past it, the next check (or SIGPROF) raises
    RenderTimeout. No alarm if another one (or a C-level handler) is in place."""
    global _armed
    token = _deadline.set(_cpu_time() + seconds)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(_ALARM) if on_main and not _armed else None
    alarm = previous is not None and signal.getitimer(_TIMER) == (0.0, 0.0)
    try:
        if alarm:  # armed inside the try: an early alarm still reaches the finally
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
            signal.signal(_ALARM, previous)
        _deadline.reset(token)


def collect(chunks: Iterable[str]) -> str:
    """A template's output, checking its size and the deadline between chunks."""
    out: list[str] = []
    size, deadline, now = 0, _deadline.get(), _cpu_time
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise LimitExceeded(f"output longer than {MAX_OUTPUT:,} characters")
        if now() > deadline:
            raise RenderTimeout()
        out.append(chunk)
    return "".join(out)


def _guarded_iter(iterable: Iterable[T]) -> Iterator[T]:
    for i, item in enumerate(iterable):
        if not i % _CHECK_EVERY:
            check_deadline()
        yield item


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
_PRINTF = re.compile(r"%(?:%|(?:\([^()]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z])")


def _printf_widths(fmt: str) -> None:
    pos = fmt.find("%")
    while pos >= 0:
        match = _PRINTF.match(fmt, pos)
        if match is None:
            raise LimitExceeded(f"'%' format not supported here: {fmt[pos:pos + 20]!r}")
        for number in match.groups():
            if number == "*":
                raise LimitExceeded("'%' format: a width or precision of * is not allowed")
            _check_width(int(number) if number else 0, "'%' format width or precision")
        pos = fmt.find("%", match.end())


def _format_widths(fmt: str) -> None:
    for _, _, spec, _ in Formatter().parse(fmt):
        if spec and "{" in spec:
            raise LimitExceeded("format(): a width from an argument is not allowed")
        for number in re.findall(r"\d+", spec or ""):
            _check_width(int(number), "format() width or precision")


# Formats are mostly short literals, checked once; a long one is not kept in the cache.
_printf_cached, _format_cached = lru_cache(256)(_printf_widths), lru_cache(256)(_format_widths)


def _check_printf(fmt: str) -> None:
    (_printf_cached if len(fmt) <= 200 else _printf_widths)(fmt)


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


# str methods a template may call, and filters, that size their result from arguments
_STR_METHODS: dict[str, Callable[..., None]] = {
    "center": _pad, "ljust": _pad, "rjust": _pad, "zfill": _pad,
    "expandtabs": _expandtabs, "replace": _check_replace,
}
_FILTERS: dict[str, Callable[..., None]] = {
    "center": lambda value, width=80, **kwargs: _check_width(width, "center width"),
    "indent": _indent,
    "batch": lambda value, linecount=1, *rest, **kwargs: _check_width(linecount, "batch size"),
    "slice": lambda eval_ctx, value, slices=1, *rest, **kwargs: _check_width(  # (async-able)
        slices, "slice count"),
    "tojson": lambda eval_ctx, value, indent=None: _check_width(indent, "tojson indent"),
    "format": lambda value, *args, **kwargs: _check_printf(str(value)),
    "replace": lambda eval_ctx, s, old="", new="", count=None, **kwargs: _check_replace(
        str(s), str(old), str(new), -1 if count is None else count),
}
_BINOPS: dict[str, Callable[[Any, Any], None]] = {
    "*": _check_mul, "**": _check_pow, "+": _check_add,
    "%": lambda left, right: _check_printf(left) if isinstance(left, str) else None,
}


def _checked_filter(filter_: Callable[..., Any], check: Callable[..., None]) -> Any:
    @wraps(filter_)  # keeps Jinja's pass_eval_context mark too
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return filter_(*args, **kwargs)

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


class LimitedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the limits above."""

    intercepted_binops = frozenset(_BINOPS)
    code_generator_class = _LimitedCodeGenerator

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape)
        self.globals.update(range=_range, lipsum=_lipsum)
        for name, check in _FILTERS.items():
            self.filters[name] = _checked_filter(self.filters[name], check)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _BINOPS[operator](left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_deadline()  # macros, caller() and recursive loops all come through here
        owner = getattr(obj, "__self__", None)  # str's methods, and Markup's wrappers
        if isinstance(owner, str) and obj.__name__ in _STR_METHODS:
            _STR_METHODS[obj.__name__](owner, *args, **{
                k: v for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")})
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # called on every attribute a template reads: the cheap test first
        if not isinstance(value, (types.BuiltinMethodType, types.MethodType)):
            return None
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # value is a string's format or format_map
            _check_format(str(value.__self__))
        return wrapped

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
        texts = [soft_str(part) for part in parts]
        _check_size(sum(map(len, texts)), "'~'")
        return markup_join(texts) if markup else str_join(texts)
