from decimal import Decimal

import pytest
from pydantic import ValidationError

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
    assert ctx.total == Decimal("12.5")  # type: ignore[attr-defined]


def test_optional_fields_may_be_absent() -> None:
    assert Ctx.model_validate_json('{"name": "a"}').count is None  # type: ignore[attr-defined]


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
