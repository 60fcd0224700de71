import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.domain.exact import validate_exact
from shared.domain.fields import CollectionSpec, FieldSpec, FieldType, build_ctx_model

FIELDS = (
    FieldSpec(id="name", type=FieldType.STRING, required=True),
    FieldSpec(id="count", type=FieldType.INTEGER),
    FieldSpec(id="total", type=FieldType.DECIMAL),
    FieldSpec(id="vip", type=FieldType.BOOLEAN),
    FieldSpec(id="birthday", type=FieldType.DATE),
    FieldSpec(id="at", type=FieldType.DATETIME),
    FieldSpec(id="contact", type=FieldType.EMAIL),
    FieldSpec(id="phone", type=FieldType.PHONE),
)
PRODUCTS = CollectionSpec(
    id="products", fields=(FieldSpec(id="sku", type=FieldType.STRING, required=True),), max_items=2
)
Ctx = build_ctx_model("EVTt", FIELDS, (PRODUCTS,))


def first_error_loc(body: str) -> tuple[object, ...]:
    with pytest.raises(ValidationError) as caught:
        Ctx.model_validate_json(body)
    return tuple(caught.value.errors()[0]["loc"])


def test_accepts_every_type_from_json() -> None:
    ctx = Ctx.model_validate_json(
        '{"name": "a", "count": 3, "total": 12.5, "vip": true, "birthday": "1990-02-01",'
        ' "at": "2026-01-01T10:00:00Z", "contact": "a@b.co", "phone": "+33 6 12 34 56 78",'
        ' "products": [{"sku": "X1"}]}'
    )
    assert ctx.model_dump()["total"] == Decimal("12.5")


def test_optional_fields_may_be_absent() -> None:
    assert Ctx.model_validate_json('{"name": "a"}').model_dump()["count"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"count": 1}', ("name",)),
        ('{"name": "a", "count": "3"}', ("count",)),
        ('{"name": "a", "vip": "yes"}', ("vip",)),
        ('{"name": 5}', ("name",)),
        ('{"name": "a", "contact": "not-an-email"}', ("contact",)),
        ('{"name": "a", "at": "2026-01-01T10:00:00"}', ("at",)),  # no time zone
        ('{"name": "a", "total": "NaN"}', ("total",)),
        ('{"name": "a", "unknown": 1}', ("unknown",)),
        ('{"name": "a", "products": [{"sku": "X", "extra": 1}]}', ("products", 0, "extra")),
        ('{"name": "a", "products": [{"sku": "1"}, {"sku": "2"}, {"sku": "3"}]}', ("products",)),
    ],
)
def test_rejects_with_the_field_at_fault(body: str, loc: tuple[object, ...]) -> None:
    assert first_error_loc(body) == loc


def test_field_ids_are_at_most_30_characters() -> None:
    FieldSpec(id="a" * 30, type=FieldType.STRING)
    with pytest.raises(ValidationError):
        FieldSpec(id="a" * 31, type=FieldType.STRING)


# Each was accepted at create and publish; then the event's schema and every POST were a
# 500 (model_dump shadowed pydantic's method), or the field was silently missing from the
# model (model_config), so every event sending it was a 422.
PYDANTIC_NAMES = ("model_dump", "model_config", "model_fields", "json", "dict", "copy",
                  "schema", "validate", "construct", "f_0", "f_1")


def test_any_id_the_pattern_allows_is_a_field_even_pydantic_s_own_names() -> None:
    fields = tuple(FieldSpec(id=name, type=FieldType.INTEGER) for name in PYDANTIC_NAMES)
    items = CollectionSpec(id="model_copy", fields=(FieldSpec(id="model_dump",
                                                              type=FieldType.STRING),))
    model = build_ctx_model("EVTp", fields, (items,))
    body = {name: n for n, name in enumerate(PYDANTIC_NAMES)}
    body["model_copy"] = [{"model_dump": "x"}]
    parsed = model.model_validate_json(json.dumps(body))
    assert parsed.model_dump() == body
    assert set(model.model_json_schema()["properties"]) == set(body)


def test_the_internal_names_of_fields_are_not_keys() -> None:
    model = build_ctx_model("EVTp", (FieldSpec(id="total", type=FieldType.INTEGER),))
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json('{"f_0": 1}')  # total's internal name
    assert caught.value.errors()[0]["loc"] == ("f_0",)
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_two_fields_of_a_collection_with_one_id_are_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="'sku' is used twice") as caught:
        CollectionSpec(id="products", fields=(FieldSpec(id="sku", type=FieldType.STRING),
                                              FieldSpec(id="sku", type=FieldType.INTEGER)))
    assert caught.value.errors()[0]["loc"] == ("fields",)


TOTAL = build_ctx_model("EVTd", (FieldSpec(id="total", type=FieldType.DECIMAL),),
                        (CollectionSpec(id="lines", fields=(
                            FieldSpec(id="price", type=FieldType.DECIMAL),)),))


@pytest.mark.parametrize(
    ("written", "exact"),
    [("12345678901234567890.123456789", "12345678901234567890.123456789"),  # was ...567000
     ("19.90", "19.90"), ("0.1", "0.1"), ("1E+37", "1E+37"), ("-0.000001", "-0.000001"),
     ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
     ('"12345678901234567890.123456789"', "12345678901234567890.123456789")],
)
def test_decimals_are_read_exactly_as_written(written: str, exact: str) -> None:
    body = f'{{"total": {written}, "lines": [{{"price": {written}}}]}}'.encode()
    assert validate_exact(TOTAL, body).model_dump() == {
        "total": Decimal(exact), "lines": [{"price": Decimal(exact)}]}
    assert str(validate_exact(TOTAL, body).model_dump()["total"]) == exact


@pytest.mark.parametrize(
    "written",
    ["1e-400", "1e400", '"1e400"', '"1e999999999"', "0.123456789012345678901234567890123456789",
     '"1234567890123456789012345678901234567890"', '"NaN"', '"Infinity"'],
)
def test_decimals_past_38_digits_are_refused_naming_the_field(written: str) -> None:
    """1e-400 was stored as 0, "1e400" and "1e999999999" were accepted."""
    for body, loc in ((f'{{"total": {written}}}', ("total",)),
                      (f'{{"lines": [{{}}, {{"price": {written}}}]}}', ("lines", 1, "price"))):
        with pytest.raises(ValidationError) as caught:
            validate_exact(TOTAL, body.encode())
        assert caught.value.errors()[0]["loc"] == loc


def test_stored_json_reads_integers_past_64_bits_as_decimals_written_with_their_digits():
    from decimal import Decimal

    from shared.domain.exact import exact_json, read_stored

    # what jsonb gives back for 1e25, 19.90 and an ordinary integer
    value = read_stored(b'{"a": 10000000000000000000000000, "b": [19.90, -9223372036854775809],'
                        b' "c": 7}')
    assert value == {"a": Decimal(10**25), "b": [Decimal("19.90"), Decimal(-(2**63) - 1)],
                     "c": 7}
    assert type(value["c"]) is int
    assert exact_json(value) == (b'{"a":10000000000000000000000000,'
                                 b'"b":[19.90,-9223372036854775809],"c":7}')
