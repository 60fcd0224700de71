"""Bulk import of profiles (``POST /v1/profiles/import``): a CSV file with a header, or
NDJSON, read as it arrives, each row turned into the same ``ProfileWrite`` the profile API
makes (validated by the tenant's write model, ``profiles.build_write_model``), or into a
``Reject`` naming its line, field and reason.

Every row is a merge (PATCH): a CSV file sets the columns of its header, an empty cell
clears a field or removes an attribute; an NDJSON line is a batch item
(``{"profileId": …, …}``, a key left out stays). CSV columns are the API's names:
``profileId`` (required), ``email``, ``mobilePhone``, ``firstName``, …, custom attributes
by name (a ``stringList`` as ``a|b|c``, a boolean as ``true``/``false``), ``consentSource``,
``topics.<topic>`` (``true``/``false``) and ``consent.<email|sms|push>.<marketing|blocked>``.
``pushDevices`` are written through the profile API only.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.domain.fields import INT64, EmailAddress, PhoneNumber
from shared.domain.profile_schema import BUILT_INS, AttributeType, ProfileSchema, attributes_json
from shared.domain.profiles import (
    MAX_LIST_ITEMS,
    MAX_TEXT,
    PROFILE_ID,
    Locale,
    ProfileWrite,
    parse_body,
    to_write,
)

SOURCE = "import"
COLUMNS = tuple(BUILT_INS.values())  # the profiles columns a row may set, in mask order
_BITS = {column: 1 << n for n, column in enumerate(COLUMNS)}
_PROFILE_ID = re.compile(PROFILE_ID)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_CHANNELS = ("email", "sms", "push")
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})
_NOT_IMPORTED = ("pushDevices",)
MAX_RECORD_LINES = 1000  # a record (quoted newlines) spans at most this many lines


class HeaderError(ValueError):
    """The file cannot be read at all (a CSV header naming an unknown column…)."""


@dataclass(frozen=True)
class Reject:
    line: int
    profile_id: str | None
    field: str | None
    reason: str
    errors: tuple[dict[str, str], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "profileId": self.profile_id, "field": self.field,
                "reason": self.reason, "errors": list(self.errors)}


@dataclass
class Row:
    """A valid row: its line (of its first physical line) and its write."""

    line: int
    write: ProfileWrite


def staging_record(row: Row) -> tuple[Any, ...]:
    """The row as the staging table holds it: (line, profile id, the built-in columns,
    a mask of the columns it sets, attributes as JSON text, attributes it removes)."""
    write = row.write
    mask = 0
    for column in write.fields:
        mask |= _BITS[column]
    return (row.line, write.profile_id, *(write.fields.get(c) for c in COLUMNS), mask,
            attributes_json(write.attributes), tuple(write.removed))


# --- the quick checks of plain CSV cells ------------------------------------------------
# Each takes a non-empty cell and answers the value the write model would make of it, or
# _SLOW when it cannot be sure: the row then goes through the model, whose reasons are the
# API's. They only ever accept a subset of what the model accepts, with the same value
# (a unit test holds them to the model on generated rows).
_SLOW: Any = object()
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # storable_text refuses these


def _pattern(annotation: Any) -> re.Pattern[str]:
    """The pattern of an ``Annotated[str, StringConstraints(pattern=…)]``, for fullmatch
    (a ``$`` then cannot match before a final newline, as in pydantic's regex)."""
    pattern = next(m.pattern for m in annotation.__metadata__ if getattr(m, "pattern", None))
    if pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[1:-1]  # fullmatch anchors it, a little faster
    return re.compile(pattern)


_EMAIL, _PHONE, _LOCALE = (_pattern(a) for a in (EmailAddress, PhoneNumber, Locale))
_NAME_LENGTH, _EMAIL_LENGTH, _LIST_ITEM_LENGTH = 255, 254, 1000


def _storable(text: str) -> bool:
    return "\x00" not in text if text.isascii() else not _UNSTORABLE.search(text)


@dataclass(frozen=True)
class _Text:
    """Text of at most ``limit`` characters, storable; with a ``pattern`` (printable ASCII
    only: no NUL), matching it. Checked inline by ``RowReader.csv_record``."""

    limit: int
    pattern: re.Pattern[str] | None = None


def _text_check(limit: int) -> _Text:
    return _Text(limit)


def _pattern_check(pattern: re.Pattern[str], limit: int = 1 << 30) -> _Text:
    return _Text(limit, pattern)


def _integer(text: str) -> Any:
    if len(text) <= 40 and ((text.isascii() and text.isdigit())
                            or _INTEGER.fullmatch(text)):
        value = int(text)
        if INT64[0] <= value <= INT64[1]:
            return value
    return _SLOW


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date(text: str) -> Any:
    """A plain ISO date (``1985-04-12``), as pydantic reads it; anything else the model's
    way (other forms pydantic takes, and its reasons for the rest)."""
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    return _SLOW


def _boolean(text: str) -> Any:
    value = _cell(text, AttributeType.BOOLEAN)
    return value if isinstance(value, bool) else _SLOW


def _string_list(text: str) -> Any:
    items = text.split("|")
    if len(items) <= MAX_LIST_ITEMS and all(
            len(item) <= _LIST_ITEM_LENGTH for item in items) and _storable(text):
        return items
    return _SLOW


_NAME = _text_check(_NAME_LENGTH)
_FIELD_CHECKS: dict[str, Any] = {
    "email": _pattern_check(_EMAIL, _EMAIL_LENGTH), "mobile_phone": _pattern_check(_PHONE),
    "first_name": _NAME, "last_name": _NAME, "city": _NAME,
    "locale": _pattern_check(_LOCALE), "birth_date": _date}  # time zones: the model's way
_ATTRIBUTE_CHECKS: dict[AttributeType, Any] = {
    AttributeType.STRING: _text_check(MAX_TEXT), AttributeType.INTEGER: _integer,
    AttributeType.BOOLEAN: _boolean, AttributeType.STRING_LIST: _string_list,
    AttributeType.EMAIL: _pattern_check(_EMAIL, _EMAIL_LENGTH),
    AttributeType.PHONE: _pattern_check(_PHONE),
    AttributeType.DATE: _date}  # decimals, date-times: the model's way


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


class RowReader:
    """Rows of one file checked against one tenant's schema and write model."""

    def __init__(self, schema: ProfileSchema, model: type[BaseModel]) -> None:
        self.schema = schema
        self.model = model
        self.types = schema.attribute_types()
        self.topics = {t.id for t in schema.topics}
        self._columns: list[tuple[str, tuple[str, ...], Any]] = []
        self._id_index = -1

    # --- CSV ------------------------------------------------------------------------

    def csv_header(self, header: list[str]) -> None:
        """Map each column to where its value goes; an unknown or repeated column, or no
        profileId, refuses the whole file."""
        seen: set[str] = set()
        columns: list[tuple[str, tuple[str, ...], Any]] = []
        for index, raw in enumerate(header):
            name = raw.strip()
            if name in seen:
                raise HeaderError(f"column {name!r} appears twice in the header")
            seen.add(name)
            if name == "profileId":
                self._id_index = index
                columns.append((name, (), None))
            elif name in BUILT_INS or name == "consentSource":
                columns.append((name, (name,), None))
            elif name in self.types:
                columns.append((name, ("attributes", name), self.types[name]))
            elif name.startswith("topics.") and name[7:] in self.topics:
                columns.append((name, ("topics", name[7:]), AttributeType.BOOLEAN))
            elif (parts := name.split(".")) and len(parts) == 3 and parts[0] == "consent" \
                    and parts[1] in _CHANNELS and parts[2] in ("marketing", "blocked"):
                kind = AttributeType.BOOLEAN if parts[2] == "blocked" else None
                columns.append((name, tuple(parts), kind))
            else:
                raise HeaderError(
                    f"column {name!r} is not a profile field, an attribute of this tenant's"
                    " schema, topics.<topic> or consent.<channel>.<marketing|blocked>")
        if self._id_index < 0:
            raise HeaderError("the header has no profileId column")
        self._columns = columns
        # Most files set fields and attributes only: their rows take a shorter way to the
        # same ProfileWrite (``_plain_write``; a unit test holds it equal to ``to_write``).
        self._plain = all(len(path) < 2 or path[0] == "attributes"
                          for _name, path, _kind in columns) and "consentSource" not in seen
        self._plan = [(index, kind, path[-1], len(path) == 2)
                      for index, (_name, path, kind) in enumerate(columns) if path]
        self._set_columns = tuple(BUILT_INS[n] for n in seen if n in BUILT_INS)
        self._attribute_names = [path[1] for _n, path, _k in columns if path[:1] == (
            "attributes",)]
        self._attribute_fields: list[tuple[str, str]] | None = None
        # The quick way of a plain row: (cell index, check or None for the model's way,
        # position among COLUMNS or -1 for an attribute, the attribute's name).
        self._mask = sum(_BITS[c] for c in self._set_columns)
        # (cell index, check function or None for text, text's limit (-1: the model's
        # way), text's pattern, position among COLUMNS or -1 for an attribute, name)
        self._quick: list[tuple[int, Any, int, re.Pattern[str] | None, int, str]] = []
        for index, (_name, path, kind) in enumerate(columns):
            if len(path) == 1 and path[0] in BUILT_INS:
                column = BUILT_INS[path[0]]
                check, position, name = _FIELD_CHECKS.get(column), COLUMNS.index(column), column
            elif len(path) == 2:
                check, position, name = _ATTRIBUTE_CHECKS.get(kind), -1, path[1]
            else:
                continue
            if isinstance(check, _Text):
                self._quick.append((index, None, check.limit, check.pattern, position, name))
            else:  # a function, or None: the model's way for a non-empty cell
                self._quick.append((index, check, -1 if check is None else 0, None,
                                    position, name))

    def csv_record(self, line: int, cells: list[str]) -> tuple[Any, ...] | Row | Reject:
        """``staging_record(csv_row(…))`` straight from the cells when the row is plain
        and every cell passes its quick check (most rows of most files); else
        ``csv_row``: the model's validation, with its reasons."""
        if not self._plain or len(cells) != len(self._columns):
            return self.csv_row(line, cells)
        profile_id = cells[self._id_index]
        if not _PROFILE_ID.match(profile_id):
            return self.csv_row(line, cells)
        values: list[Any] = [None] * len(COLUMNS)
        attributes: dict[str, Any] = {}
        removed: list[str] = []
        for index, check, limit, pattern, position, name in self._quick:
            text = cells[index]
            if text == "":
                if position < 0:
                    removed.append(name)
                continue
            if check is None:  # text, inline (most cells)
                if len(text) > limit or (
                        not pattern.fullmatch(text) if pattern is not None
                        else "\x00" in text if text.isascii()
                        else _UNSTORABLE.search(text) is not None):
                    return self.csv_row(line, cells)  # (limit -1: never the quick way)
                value = text
            elif (value := check(text)) is _SLOW:
                return self.csv_row(line, cells)
            if position < 0:
                attributes[name] = value
            else:
                values[position] = value
        # a tuple, not a list: a record of atomic values only leaves the garbage
        # collector's watch, which matters with a slice of them held in memory
        return (line, profile_id, *values, self._mask, attributes_json(attributes),
                tuple(sorted(removed)) if removed else ())

    def csv_row(self, line: int, cells: list[str]) -> Row | Reject:
        if len(cells) != len(self._columns):
            profile_id = cells[self._id_index] if len(cells) > self._id_index else None
            return Reject(line, profile_id, None, f"{len(cells)} cells; the header has"
                                                  f" {len(self._columns)} columns")
        if self._plain:
            body: dict[str, Any] = {}
            attributes: dict[str, Any] = {}
            for index, kind, key, is_attribute in self._plan:
                text = cells[index]
                value: Any = (None if text == "" else text if kind is None
                              else _cell(text, kind))
                if is_attribute:
                    attributes[key] = value
                else:
                    body[key] = value
            if attributes:
                body["attributes"] = attributes
            return self._write(line, cells[self._id_index], body, plain=True)
        body = {}
        for (name, path, kind), text in zip(self._columns, cells, strict=True):
            if not path:
                continue
            if text == "":
                if path[0] in ("topics", "consent") or name == "consentSource":
                    continue  # nothing said
                value = None
            else:
                value = _cell(text, kind)
            target = body
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
        return self._write(line, cells[self._id_index], body)

    # --- NDJSON ---------------------------------------------------------------------

    def ndjson_row(self, line: int, text: str) -> Row | Reject | None:
        """A line of NDJSON (None for a blank line)."""
        if not text.strip():
            return None
        try:
            item = parse_body(text.encode())
        except (ValueError, RecursionError) as error:
            return Reject(line, None, None, f"not JSON: {error}")
        if not isinstance(item, dict):
            return Reject(line, None, None, "a line is a JSON object: {\"profileId\": …}")
        profile_id = item.pop("profileId", None)
        for key in _NOT_IMPORTED:
            if key in item:
                return Reject(line, profile_id if isinstance(profile_id, str) else None, key,
                              f"{key} are written through the profile API, not imported")
        return self._write(line, profile_id, item)

    # --- both -----------------------------------------------------------------------

    def _write(self, line: int, profile_id: Any, body: dict[str, Any], plain: bool = False
               ) -> Row | Reject:
        if not isinstance(profile_id, str) or not _PROFILE_ID.match(profile_id):
            return Reject(line, profile_id if isinstance(profile_id, str) else None,
                          "profileId", "a profile id: 1 to 128 of A-Z a-z 0-9 _ . @ + -")
        try:
            parsed = self.model.model_validate(body)
        except ValidationError as error:
            errors = tuple({"field": _location(e["loc"]), "reason": e["msg"]}
                           for e in error.errors())
            return Reject(line, profile_id, errors[0]["field"], errors[0]["reason"], errors)
        if plain:
            return Row(line, self._plain_write(profile_id, parsed))
        return Row(line, to_write(profile_id, parsed, replace=False, source=SOURCE))

    def _plain_write(self, profile_id: str, parsed: BaseModel) -> ProfileWrite:
        """``to_write(…, replace=False)`` of a CSV row that sets every column of its
        header, none of them consent: the same write, without looking for what is absent."""
        fields = {column: getattr(parsed, column) for column in self._set_columns}
        attributes: dict[str, Any] = {}
        removed = []
        given = getattr(parsed, "attributes", None)
        if given is not None:
            if self._attribute_fields is None:
                by_alias = {info.alias: name
                            for name, info in type(given).model_fields.items()}
                self._attribute_fields = [(a, by_alias[a]) for a in self._attribute_names]
            for alias, name in self._attribute_fields:
                value = getattr(given, name)
                if value is None:
                    removed.append(alias)
                else:
                    attributes[alias] = value
        return ProfileWrite(profile_id, False, fields, attributes, tuple(sorted(removed)),
                            None, (), SOURCE)


def _cell(text: str, kind: AttributeType | None) -> Any:
    """A CSV cell as the JSON value the API would take; what does not convert is left as
    text, for validation to refuse with the API's message."""
    if kind is AttributeType.INTEGER and len(text) <= 40 and _INTEGER.fullmatch(text):
        return int(text)
    if kind is AttributeType.BOOLEAN:
        lowered = text.strip().lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    if kind is AttributeType.STRING_LIST:
        return text.split("|")
    return text


@dataclass
class CsvRecords:
    """CSV text as it arrives, cut into whole records (a quoted cell may hold newlines)
    with the line each starts on; the first record is the header."""

    _pending: str = ""
    _lines: int = 0  # physical lines handed to the csv module so far
    header: list[str] | None = None
    _ready: list[str] = field(default_factory=list)

    def feed(self, text: str, final: bool = False) -> list[tuple[int, list[str]]]:
        data = self._pending + text
        if not self._ready and '"' not in data and (
                "\r" not in data or data.count("\r") == data.count("\r\n")):
            return self._unquoted(data, final)
        parts = data.split("\n")
        self._pending = parts.pop()
        complete: list[str] = []
        start = 0  # first line of the record being gathered, in ``lines``
        lines = self._ready + [p + "\n" for p in parts]
        if self._ready or '"' in data:
            quotes = 0
            for index, line in enumerate(lines):
                quotes += line.count('"')
                if quotes % 2 == 0:
                    complete.extend(lines[start:index + 1])
                    start = index + 1
                    quotes = 0
        else:  # no quote: every line is a record
            complete, start = lines, len(lines)
        self._ready = lines[start:]  # the lines of a record still open (a quoted newline)
        if len(self._ready) > MAX_RECORD_LINES:
            raise HeaderError(f"line {self._lines + start + 1}: a quoted cell runs over"
                              f" {MAX_RECORD_LINES} lines: a quote is not closed")
        if final:
            tail = self._ready + ([self._pending] if self._pending else [])
            complete.extend(tail)
            self._ready, self._pending = [], ""
        records = []
        reader = csv.reader(complete)
        previous = 0
        try:
            for cells in reader:
                first = self._lines + previous + 1
                previous = reader.line_num
                if cells:  # a blank line is no record
                    records.append((first, cells))
        except csv.Error as error:
            raise HeaderError(f"line {self._lines + reader.line_num}: not CSV: {error}"
                              ) from None
        self._lines += len(complete)
        if self.header is None and records:
            self.header = records.pop(0)[1]
        return records


    def _unquoted(self, data: str, final: bool) -> list[tuple[int, list[str]]]:
        """``feed`` of text without a quote (nor a lone CR): a record a line, its cells
        between commas, as the csv module would cut them."""
        parts = data.split("\n")
        self._pending = "" if final else parts.pop()
        first = self._lines + 1
        if "\r" in data:
            parts = [p[:-1] if p.endswith("\r") else p for p in parts]
        records = [(first + n, part.split(",")) for n, part in enumerate(parts) if part]
        self._lines += len(parts)
        if self.header is None and records:
            self.header = records.pop(0)[1]
        return records


@dataclass
class NdjsonLines:
    """NDJSON text as it arrives, cut into lines with their numbers."""

    _pending: str = ""
    _lines: int = 0

    def feed(self, text: str, final: bool = False) -> list[tuple[int, str]]:
        parts = (self._pending + text).split("\n")
        self._pending = "" if final else parts.pop()
        numbered = [(self._lines + n + 1, part) for n, part in enumerate(parts)]
        self._lines += len(parts)
        return numbered
