"""The pure part of the bulk import: CSV and NDJSON text cut into records with their line
numbers however it arrives, and rows turned into profile writes or rejects by the profile
API's rules."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.profile_import import (
    COLUMNS,
    CsvRecords,
    HeaderError,
    NdjsonLines,
    Reject,
    Row,
    RowReader,
    staging_record,
)
from shared.domain.profile_schema import ProfileSchema
from shared.domain.profiles import build_write_model, to_write

SCHEMA = ProfileSchema.model_validate({
    "attributes": [{"name": "tier", "type": "string"}, {"name": "orders", "type": "integer"},
                   {"name": "ltv", "type": "decimal"}, {"name": "vip", "type": "boolean"},
                   {"name": "tags", "type": "stringList"}, {"name": "joined", "type": "date"}],
    "topics": [{"id": "news"}]})

CSV_TEXT = ('profileId,email,firstName,orders,tags\r\n'
            'p1,a@example.com,Ada,3,x|y\r\n'
            '\r\n'
            'p2,b@example.com,"Two\nlines, and a ""quote""",,\r\n'
            'p3,c@example.com,Cee,4,z\r\n')


def reader() -> RowReader:
    return RowReader(SCHEMA, build_write_model(SCHEMA))


def records_of(text: str, piece: int) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    splitter = CsvRecords()
    records = []
    for start in range(0, len(text), piece):
        records += splitter.feed(text[start:start + piece])
    records += splitter.feed("", final=True)
    return splitter.header, records


@pytest.mark.parametrize("piece", [1, 2, 7, 1000])
def test_csv_records_and_their_lines_whatever_the_chunks(piece: int) -> None:
    header, records = records_of(CSV_TEXT, piece)
    assert header == ["profileId", "email", "firstName", "orders", "tags"]
    assert records == [
        (2, ["p1", "a@example.com", "Ada", "3", "x|y"]),
        (4, ["p2", "b@example.com", 'Two\nlines, and a "quote"', "", ""]),
        (6, ["p3", "c@example.com", "Cee", "4", "z"])]


def test_a_last_line_without_newline_is_a_record() -> None:
    assert records_of("profileId\np1\np2", 3)[1] == [(2, ["p1"]), (3, ["p2"])]


def test_an_unclosed_quote_refuses_the_file_rather_than_swallowing_it() -> None:
    splitter = CsvRecords()
    splitter.feed('profileId,city\np1,"Paris\n')
    with pytest.raises(HeaderError, match="line 2: a quoted cell"):
        splitter.feed("p2,Lyon\n" * 1001)


def test_csv_cells_become_the_values_the_api_takes() -> None:
    rows = reader()
    rows.csv_header(["profileId", "firstName", "orders", "vip", "tags", "ltv", "joined",
                     "tier", "topics.news", "consent.email.marketing"])
    row = rows.csv_row(2, ["p1", "Ada", "12", "TRUE", "a|b", "19.90", "2024-02-29", "",
                           "true", "opted-out"])
    assert isinstance(row, Row) and row.line == 2
    write = row.write
    assert write.profile_id == "p1" and not write.replace and write.source == "import"
    assert write.fields == {"first_name": "Ada"}  # only the header's columns are set
    assert write.attributes == {"orders": 12, "vip": True, "tags": ["a", "b"],
                                "ltv": Decimal("19.90"), "joined": date(2024, 2, 29)}
    assert write.removed == ("tier",)  # an empty cell removes the attribute
    assert {(c.kind.value, c.name, c.value) for c in write.consent} == {
        ("topic", "news", "subscribed"), ("marketing", "email", "opted-out")}


def test_an_empty_cell_clears_a_field_and_says_nothing_of_consent() -> None:
    rows = reader()
    rows.csv_header(["profileId", "city", "topics.news"])
    row = rows.csv_row(2, ["p1", "", ""])
    assert isinstance(row, Row)
    assert row.write.fields == {"city": None} and row.write.consent == ()


def test_a_bad_value_is_rejected_with_its_line_field_and_the_apis_reason() -> None:
    rows = reader()
    rows.csv_header(["profileId", "email", "orders"])
    reject = rows.csv_row(7, ["p1", "not-an-address", "3.5"])
    assert isinstance(reject, Reject)
    assert (reject.line, reject.profile_id, reject.field) == (7, "p1", "email")
    assert {e["field"] for e in reject.errors} == {"email", "attributes.orders"}
    assert "integer" in next(e["reason"] for e in reject.errors
                             if e["field"] == "attributes.orders")
    bad_id = rows.csv_row(8, ["no spaces", "a@example.com", "1"])
    assert isinstance(bad_id, Reject) and bad_id.field == "profileId"
    short = rows.csv_row(9, ["p2", "a@example.com"])
    assert isinstance(short, Reject) and "2 cells" in short.reason


@pytest.mark.parametrize(("header", "says"), [
    (["email"], "no profileId"),
    (["profileId", "nickname"], "'nickname'"),
    (["profileId", "email", "email"], "twice"),
    (["profileId", "topics.unknown"], "'topics.unknown'"),
    (["profileId", "consent.fax.marketing"], "'consent.fax.marketing'"),
])
def test_a_header_the_schema_does_not_know_refuses_the_file(header: list[str], says: str
                                                           ) -> None:
    with pytest.raises(HeaderError, match=says):
        reader().csv_header(header)


def test_ndjson_lines_are_batch_items() -> None:
    splitter = NdjsonLines()
    lines = splitter.feed('{"profileId": "p1", "ltv": 1}\n\n{"pro') + splitter.feed(
        'fileId": "p2", "attributes": {"ltv": 12.50}, "topics": {"news": false}}', final=True)
    assert [n for n, _ in lines] == [1, 2, 3]
    rows = reader()
    assert rows.ndjson_row(2, lines[1][1]) is None  # a blank line
    refused = rows.ndjson_row(1, lines[0][1])
    assert isinstance(refused, Reject) and refused.field == "ltv"  # not a built-in field
    row = rows.ndjson_row(3, lines[2][1])
    assert isinstance(row, Row)
    assert row.write.attributes == {"ltv": Decimal("12.50")} and row.write.fields == {}
    assert [(c.name, c.value) for c in row.write.consent] == [("news", "unsubscribed")]


@pytest.mark.parametrize(("text", "field", "says"), [
    ("[1]", None, "JSON object"),
    ("{nope", None, "not JSON"),
    ('{"email": "a@example.com"}', "profileId", "profile id"),
    ('{"profileId": "p1", "pushDevices": []}', "pushDevices", "profile API"),
    ('{"profileId": "p1", "attributes": {"shoeSize": 9}}', "attributes.shoeSize", ""),
])
def test_ndjson_rejects(text: str, field: str | None, says: str) -> None:
    reject = reader().ndjson_row(5, text)
    assert isinstance(reject, Reject) and reject.line == 5
    assert reject.field == field and says in reject.reason


def test_the_staging_record_carries_a_mask_of_the_columns_set() -> None:
    rows = reader()
    rows.csv_header(["profileId", "city", "email", "tier"])
    row = rows.csv_row(2, ["p1", "Paris", "", "gold"])
    assert isinstance(row, Row)
    record = staging_record(row)
    assert record[:2] == (2, "p1")
    values = dict(zip(COLUMNS, record[2:2 + len(COLUMNS)], strict=True))
    assert values["city"] == "Paris" and values["email"] is None
    mask = record[2 + len(COLUMNS)]
    assert mask == (1 << COLUMNS.index("city")) | (1 << COLUMNS.index("email"))
    assert record[-2:] == ('{"tier":"gold"}', ())


@pytest.mark.parametrize("cells", [
    ["p1", "a@example.com", "Ada", "", "3", "19.90", "a|b", "false", "2020-01-31"],
    ["p2", "", "", "gold", "", "", "", "", ""],
])
def test_the_short_way_of_plain_csv_rows_is_the_api_write(cells: list[str]) -> None:
    header = ["profileId", "email", "firstName", "tier", "orders", "ltv", "tags", "vip",
              "joined"]
    rows = reader()
    rows.csv_header(header)
    row = rows.csv_row(2, cells)
    assert isinstance(row, Row)
    body: dict[str, Any] = {"attributes": {}}
    for name, text in zip(header[1:], cells[1:], strict=True):
        target = body if name in ("email", "firstName") else body["attributes"]
        target[name] = None if text == "" else {
            "orders": int, "vip": lambda t: t == "true", "tags": lambda t: t.split("|")
        }.get(name, str)(text)
    expected = to_write("p" + cells[0][1:], rows.model.model_validate(body), replace=False,
                        source="import")
    assert row.write == expected


# --- the quick checks of plain CSV rows -----------------------------------------------

QUICK_SCHEMA = ProfileSchema.model_validate({"attributes": [
    {"name": "tier", "type": "string"}, {"name": "orders", "type": "integer"},
    {"name": "vip", "type": "boolean"}, {"name": "tags", "type": "stringList"},
    {"name": "ltv", "type": "decimal"}, {"name": "work", "type": "email"},
    {"name": "fax", "type": "phone"}]})
QUICK_HEADER = ["profileId", "email", "mobilePhone", "firstName", "lastName", "city",
                "locale", "birthDate", "timeZone", "tier", "orders", "vip", "tags", "ltv",
                "work", "fax"]
_EDGES = ["", " ", "a", "x" * 254, "x" * 255, "x" * 256, "\x00", "a\x00b", "\ud800", "é",
          "a@b.c", " a@b.c", "a@b.c ", "a@b.c\n", "A@B.CO", "a@b", "a@@b.c", "<a>@b.c",
          ("y" * 250) + "@b.c", ("y" * 252) + "@b.c", "+33 6 12 34 56", "0612345678",
          "+1-2", "12345", "+123456789012345678901", "fr", "fr-FR", "fr_FR", "f", "fr-",
          "3", "-3", "+3", "007", "3.0", "1e3", "9223372036854775807", "9223372036854775808",
          "-9223372036854775808", "-9223372036854775809", "1" * 41, "1" * 5000, "true",
          "TRUE", " yes ", "no", "0", "2", "maybe", "a|b", "|", "a||b", "|".join("x" * 101),
          "x" * 1001, "|".join(["x"] * 100), "|".join(["x"] * 101), "19.90", "NaN",
          "2020-01-31", "Europe/Paris", "Mars/Olympus", "Ada\tLovelace", "a\nb", "p1\n",
          "9" * 40, "ab\x00" + "|c", "\ud800|a", "x" * 9999, "x" * 10_001,
          "|".join(["x" * 1000] * 2), "|".join(["x" * 1001] * 2), "+" + "1" * 20]
_ODD = st.one_of(st.sampled_from(_EDGES), st.text(max_size=12),
                 st.text(alphabet="ab1@.+- |", max_size=12))
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=20)
_ADDRESS = st.from_regex(r"[a-z0-9.+-]{1,12}@[a-z0-9-]{1,8}\.[a-z]{2,4}", fullmatch=True)
_PHONE = st.from_regex(r"\+?[0-9][0-9 .\-]{5,19}", fullmatch=True)
_COLUMN = {  # a valid cell of each column of QUICK_HEADER (after profileId), or empty
    "email": _ADDRESS, "mobilePhone": _PHONE, "firstName": _TEXT, "lastName": _TEXT,
    "city": _TEXT, "locale": st.sampled_from(["fr", "fr-FR", "en_GB", "zh-Hant-TW"]),
    "birthDate": st.sampled_from(["", "1990-05-17"]),
    "timeZone": st.sampled_from(["", "Europe/Paris"]), "tier": _TEXT,
    "orders": st.integers(-(2**63), 2**63 - 1).map(str),
    "vip": st.sampled_from(["true", "false", "1", "0", "yes", "NO", " True "]),
    "tags": st.lists(_TEXT.filter(lambda s: "|" not in s), min_size=1, max_size=4).map(
        "|".join),
    "ltv": st.sampled_from(["", "19.90"]), "work": _ADDRESS, "fax": _PHONE}


@st.composite
def _cells(draw: st.DrawFn) -> list[str]:
    """Mostly valid rows (the quick way's case), some cells empty, a few odd."""
    cells = [draw(st.one_of(st.just(""), _COLUMN[name])) for name in QUICK_HEADER[1:]]
    for _ in range(draw(st.integers(0, 2))):
        cells[draw(st.integers(0, len(cells) - 1))] = draw(_ODD)
    return cells


def quick_reader() -> RowReader:
    rows = RowReader(QUICK_SCHEMA, build_write_model(QUICK_SCHEMA))
    rows.csv_header(QUICK_HEADER)
    return rows


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cells(), st.sampled_from(["p1", "p-2.x@y+z", "", "no spaces", "p1\n", "é"]))
def test_the_quick_checks_take_only_what_the_model_takes_with_the_same_values(
        cells: list[str], profile_id: str) -> None:
    rows = quick_reader()
    cells = [profile_id, *cells]
    quick, model = rows.csv_record(5, cells), rows.csv_row(5, cells)
    if isinstance(quick, tuple):
        assert isinstance(model, Row), (cells, model)
        assert quick == staging_record(model)
    else:
        assert quick == model  # the model's way: the same write or the same reasons


def test_each_odd_cell_in_each_column_of_a_valid_row_as_the_model_takes_it() -> None:
    rows = quick_reader()
    valid = ["p1", "a@example.com", "+33 6 12 34 56 78", "Ada", "Lovelace", "Paris", "fr-FR",
             "", "", "gold", "12", "true", "a|b", "", "w@example.com", "0612345678"]
    quick_ways = 0
    for column in range(1, len(QUICK_HEADER)):
        for odd in _EDGES:
            cells = [*valid[:column], odd, *valid[column + 1:]]
            quick, model = rows.csv_record(3, cells), rows.csv_row(3, cells)
            if isinstance(quick, tuple):
                quick_ways += 1
                assert isinstance(model, Row), (QUICK_HEADER[column], odd, model)
                assert quick == staging_record(model), (QUICK_HEADER[column], odd)
            else:
                assert quick == model, (QUICK_HEADER[column], odd)
    assert quick_ways > 100


def test_a_typical_row_takes_the_quick_way_and_an_unusual_cell_the_models() -> None:
    rows = quick_reader()
    cells = ["p1", "a@example.com", "+33 6 12 34 56 78", "Ada", "Lovelace", "Paris", "fr-FR",
             "", "", "gold", "12", "true", "a|b", "", "w@example.com", "0612345678"]
    quick = rows.csv_record(2, cells)
    assert isinstance(quick, tuple)
    model = rows.csv_row(2, cells)
    assert isinstance(model, Row) and quick == staging_record(model)
    assert quick[-1] == ("ltv",)  # removed, sorted
    dated_cells = [*cells[:7], "1990-05-17", *cells[8:]]
    dated = rows.csv_record(3, dated_cells)  # a plain ISO date: the quick way too
    dated_model = rows.csv_row(3, dated_cells)
    assert isinstance(dated, tuple) and isinstance(dated_model, Row)
    assert dated == staging_record(dated_model)
    assert dated_model.write.fields["birth_date"] == date(1990, 5, 17)
    for odd in ("1990-02-30", "19900517", "1990-05-17T00:00"):  # the model's way, its answer
        assert not isinstance(rows.csv_record(3, [*cells[:7], odd, *cells[8:]]), tuple)
    bad = rows.csv_record(4, [*cells[:10], "twelve", *cells[11:]])
    assert isinstance(bad, Reject) and bad.field == "attributes.orders"
    consent = RowReader(QUICK_SCHEMA, rows.model)
    consent.csv_header(["profileId", "city", "consent.email.marketing"])
    assert isinstance(consent.csv_record(2, ["p1", "Lyon", "opted-in"]), Row)  # not plain


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", ",", " ", "é", "\x00", "\n", "\r\n", "x,y", "\t"]),
                max_size=60), st.integers(1, 9))
def test_a_file_without_quotes_is_cut_as_the_csv_module_cuts_it(tokens: list[str],
                                                                 piece: int) -> None:
    text = "h1,h2\r\n" + "".join(tokens)
    expected = [(n, cells) for n, cells in enumerate(csv.reader(
        text.splitlines(keepends=True)), start=1) if cells]
    header, records = records_of(text, piece)
    assert header == expected[0][1] and records == expected[1:]
