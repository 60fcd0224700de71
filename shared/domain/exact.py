"""Exact decimals from JSON text, and back.

pydantic reads a JSON number as a binary float before a Decimal field sees it:
``12345678901234567890.123456789`` became ``12345678901234567000``, ``1e-400`` became
``0`` and ``19.90`` became ``19.9``. Validation stays pydantic's JSON mode, the one set of
rules for the gateway, the processor, the preview, the proof and the sender. When the text
holds a number with a fraction or an exponent, the decimal fields that got such a number
are read again from the text exactly (jiter, pydantic's own parser, in its decimal mode)
and held to the same bounds, or refused naming the field. Most bodies with a decimal
take this path; it costs about a third of a JSON parse more (see the commit message).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, TypeVar, get_args

import jiter
import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails

from shared.domain.fields import within_digits  # FLOAT_SEEN is set by its field type

M = TypeVar("M", bound=BaseModel)


def validate_exact(model: type[M], text: bytes) -> M:
    """``model.model_validate_json(text)``, with every decimal exactly as the text wrote it."""
    seen: dict[str, bool] = {}
    parsed = model.model_validate_json(text, context=seen)
    if seen:  # a decimal field got a float (FLOAT_SEEN): read the text again, exactly
        errors: list[InitErrorDetails] = []
        _restore(parsed, jiter.from_json(text, float_mode="decimal"), (), errors)
        if errors:
            raise ValidationError.from_exception_data(model.__name__, errors)
    return parsed


# (Python name, JSON key, the model of a nested object or of a list's items; None: a decimal)
Plan = tuple[tuple[str, str, type[BaseModel] | None], ...]


def _found(annotation: Any) -> type[BaseModel] | type[Decimal] | None:
    """The model or Decimal a field's type holds, through Optional, Annotated and list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if annotation is Decimal:
        return Decimal
    for arg in get_args(annotation):
        if (found := _found(arg)) is not None:
            return found
    return None


def _plan(model: type[BaseModel]) -> Plan:
    """The fields of ``model`` that may hold a decimal, found once per model and kept on the
    model itself (with the model's identity: a subclass has its own plan), so it goes with the
    model. A cache beside it (it was ``functools.cache``) kept alive every model ever
    validated: each event configuration's ctx models, about 50 kB each, in every process
    that rebuilds them (P10: admin grows)."""
    kept = getattr(model, _PLAN, None)  # (the model, its plan): a subclass reads its base's
    if kept is not None and kept[0] is model:
        return kept[1]  # type: ignore[no-any-return]
    found_fields: list[tuple[str, str, type[BaseModel] | None]] = []
    for name, field in model.model_fields.items():
        found = _found(field.annotation)
        if found is Decimal:
            found_fields.append((name, field.alias or name, None))
        elif found is not None and issubclass(found, BaseModel) and _plan(found):
            found_fields.append((name, field.alias or name, found))
    plan = tuple(found_fields)
    setattr(model, _PLAN, (model, plan))
    return plan

_PLAN = "__exact_plan__"


def _restore(
    instance: BaseModel, raw: Any, loc: tuple[str | int, ...], errors: list[InitErrorDetails]
) -> None:
    """Puts the text's Decimal in place of each float-made one, through nested objects and
    lists of them. ``raw`` is the same object as jiter read it: only a number written with
    a fraction or an exponent is a Decimal there; integers and strings were read exactly.
    On the gateway's hot path for most events with a decimal: kept to plain loops."""
    if type(raw) is not dict:
        return
    values = instance.__dict__
    for name, key, nested in _plan(type(instance)):
        given = raw.get(key)
        if given is None or values[name] is None:
            continue
        if nested is None:
            if type(given) is Decimal:
                try:
                    values[name] = within_digits(given)
                except ValueError as error:
                    errors.append(InitErrorDetails(type="value_error", loc=(*loc, key),
                                                   input=given, ctx={"error": str(error)}))
        elif type(given) is list:
            for i, item in enumerate(values[name][:len(given)]):
                _restore(item, given[i], (*loc, key, i), errors)
        else:
            _restore(values[name], given, (*loc, key), errors)


def read_exact(text: bytes) -> Any:
    """JSON text as Python values, numbers with a fraction or an exponent as Decimals."""
    return jiter.from_json(text, float_mode="decimal")


_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1  # what orjson writes


_TWENTY_DIGITS = re.compile(rb"\d{20}")  # no integer outside orjson's range is shorter


def read_stored(text: bytes) -> Any:
    """``read_exact`` for jsonb's text: PostgreSQL writes a number as its numeric's digits,
    so ``1e25`` stored comes back ``10000000000000000000000000``, an integer orjson cannot
    write; such integers are read as Decimals (exact_json writes their digits). Only a
    text with a run of 20 digits is walked: a profile's attributes are read this way on
    the processor's path, per event."""
    value = read_exact(text)
    return _wide_ints_as_decimals(value) if _TWENTY_DIGITS.search(text) else value


def _wide_ints_as_decimals(value: Any) -> Any:
    if type(value) is int:
        return value if _MIN_INT <= value <= _MAX_INT else Decimal(value)
    if type(value) is dict:
        return {key: _wide_ints_as_decimals(item) for key, item in value.items()}
    if type(value) is list:
        return [_wide_ints_as_decimals(item) for item in value]
    return value


def _as_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))  # its exact text, as a JSON number
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def exact_json(value: Any, indent: bool = False) -> bytes:
    """JSON text of ``value``, Decimals as numbers written with their exact digits;
    indented by two spaces with ``indent`` (JSON shown to a person)."""
    return orjson.dumps(value, default=_as_number,
                        option=orjson.OPT_INDENT_2 if indent else None)
