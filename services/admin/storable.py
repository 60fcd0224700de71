"""What the admin API would fail to store is refused where it arrives, naming the field
(422), instead of being found out by PostgreSQL or the jsonb codec (a 500):

- text and jsonb hold no NUL character (U+0000), and UTF-8 has no lone UTF-16 surrogate
  (U+D800 to U+DFFF), which Python's JSON parser lets through from ``"\\ud800"``;
- the jsonb codec (orjson) encodes integers of 64 bits at most and values nested 255
  levels at most;
- JSON has no NaN or Infinity, which Python's parser accepts and orjson would store as null.

Every path parameter and every value and key of a JSON body is checked, before the
transaction opens (``handlers.Db`` depends on ``storable``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

MIN_INT, MAX_INT = -(2**63), 2**64 - 1  # what orjson encodes
MAX_DEPTH = 64  # levels of arrays and objects in a body; orjson stops at 255
MAX_ERRORS = 10

Loc = tuple[str | int, ...]


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain a lone UTF-16 surrogate (U+D800 to U+DFFF)"
    return None


def _shown(key: str) -> str:
    """A key as a 422 can name it: the response is UTF-8 too."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class _BadKey:
    why: str


def value_problems(value: Any, loc: Loc) -> list[tuple[Loc, str]]:
    """Where ``value`` (parsed JSON) holds something that cannot be stored, and why;
    iterative, so a deep value cannot exhaust the stack."""
    found: list[tuple[Loc, str]] = []
    pending: list[tuple[Any, Loc, int]] = [(value, loc, 0)]  # a stack, in document order
    while pending and len(found) < MAX_ERRORS:
        item, where, depth = pending.pop()
        if isinstance(item, _BadKey):
            found.append((where, item.why))
        elif isinstance(item, str):
            why = text_problem(item)
            if why:
                found.append((where, why))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                found.append((where, "integer out of range: at most 64 bits"))
        elif isinstance(item, float):
            if not math.isfinite(item):
                found.append((where, "must be a finite number (JSON has no NaN or Infinity)"))
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                found.append((where, f"nested deeper than {MAX_DEPTH} levels"))
                continue
            if isinstance(item, list):
                pending.extend((v, (*where, i), depth + 1) for i, v in reversed(list(
                    enumerate(item))))
                continue
            for key, v in reversed(list(item.items())):
                why = text_problem(key)
                pending.append((_BadKey(f"key {why}"), (*where, _shown(key)), depth) if why
                               else (v, (*where, key), depth + 1))
    return found[:MAX_ERRORS]


async def storable(request: Request) -> None:
    """A FastAPI dependency: 422 naming each path parameter or body field that could not
    be stored. A body that is not JSON is left to FastAPI's own validation."""
    found: list[tuple[Loc, str]] = [
        (("path", name), why) for name, value in request.path_params.items()
        if isinstance(value, str) and (why := text_problem(value))
    ]
    body = await request.body()
    if body:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        found += value_problems(parsed, ("body",))
    if found:
        raise RequestValidationError([{"type": "value_error", "loc": list(loc), "msg": why}
                                      for loc, why in found[:MAX_ERRORS]])
