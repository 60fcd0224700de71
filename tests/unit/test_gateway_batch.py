"""The batch route's one-pass path (services/gateway/ingest.py): the same pKeys, the same
validated items and the same records as item by item, and nothing refused on it."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from services.gateway.ingest import (
    Refused,
    _Dumped,
    _record,
    batch_items,
    item_body,
    timed_pkeys,
    validate_batch,
    validate_exact,
)
from services.gateway.wiring import MAX_BATCH, build_batch_model
from shared.domain.events import EventConfig, build_ingest_model
from shared.domain.pkeys import mint_timed_pkey, pkey_time, verify_pkey

SECRET = b"k" * 32
EVENT = EventConfig.model_validate({
    "event_id": "EVTbatch", "label": "batch", "channel": "email", "targeting": "event",
    "fields": [{"id": "total", "type": "decimal"}, {"id": "day", "type": "date"},
               {"id": "n", "type": "integer"}, {"id": "model_dump", "type": "string"},
               {"id": "at", "type": "datetime"}],
    "collections": [{"id": "lines", "fields": [{"id": "price", "type": "decimal"},
                                               {"id": "name", "type": "string"}]}],
})
MODEL = build_ingest_model(EVENT)
BATCH = build_batch_model(MODEL)


def test_batch_pkeys_are_the_keys_minted_one_by_one() -> None:
    random = os.urandom(12 * 1000)
    at = 1_796_000_123.75
    keys = timed_pkeys(SECRET, "tenant-a", "EVTbatch", at, random)
    assert keys == [mint_timed_pkey(SECRET, "tenant-a", "EVTbatch", at, random[i:i + 12])
                    for i in range(0, len(random), 12)]
    assert all(verify_pkey(SECRET, "tenant-a", "EVTbatch", key) for key in keys)
    assert {pkey_time(key) for key in keys} == {1_796_000_123}
    assert not verify_pkey(SECRET, "tenant-b", "EVTbatch", keys[0])
    assert timed_pkeys(SECRET, "t", "EVTbatch", at, b"") == []


def one_by_one(body: bytes) -> list[dict[str, Any]]:
    """The item-by-item path's dumps (the route's ``_batch_item_by_item``)."""
    out = []
    for item in batch_items(body):
        parsed = validate_exact(MODEL, item_body(item))
        out.append(parsed.model_dump(mode="json", exclude_none=True))
    return out


ITEMS: list[bytes] = [
    b'{"email": "a@example.com", "ctx": {"total": 19.90, "day": "2026-12-04", "n": 3,'
    b' "model_dump": "x", "at": "2026-12-04T10:00:00+01:00",'
    b' "lines": [{"price": 12345678901234567890.123456789, "name": "a"},'
    b' {"price": "1e3", "name": "b"}, {"price": 1E+2}]}}',
    b'{"email": "B@Example.com"}',
    b'{"email": "c@example.com", "ctx": {"total": 5}, "expiration": "2030-01-01T00:00:00Z",'
    b' "locale": "fr-BE"}',
    b'{"email": "d@example.com", "ctx": {"total": -0.000000000000000000000000000001}}',
]


def test_one_pass_gives_each_item_as_item_by_item_with_its_exact_decimals() -> None:
    body = b'{"events": [' + b",".join(ITEMS * 3) + b"]}"
    at_once = validate_batch(BATCH, body)
    assert at_once is not None
    events, dumped = at_once
    assert len(events) == len(dumped) == 12
    assert dumped == one_by_one(body)
    assert dumped[0]["ctx"]["total"] == "19.90"
    assert dumped[0]["ctx"]["lines"][0]["price"] == "12345678901234567890.123456789"
    for parsed, body_of in zip(events, dumped, strict=True):  # the records, too
        by_model = _record(parsed, "t", "EVTbatch", "pk", 1.5)
        assert _record(_Dumped(dict(body_of)), "t", "EVTbatch", "pk", 1.5) == by_model
    assert orjson.loads(by_model[1])["target"] == {"email": "d@example.com"}


@pytest.mark.parametrize("body", [
    b'{"events": [' + ITEMS[0] + b', {"email": "bad"}]}',  # one item refused
    b'{"events": [' + ITEMS[1] + b', {"email": "a@example.com", "colour": 1}]}',
    b'{"events": [' + ITEMS[1] + b', 3]}',  # not an object: the body's shape
    b'{"events": [' + ITEMS[1] + b'], "colour": 1}',
    b'{"event": []}',
    b'{"events": [' + b",".join([ITEMS[1]] * (MAX_BATCH + 1)) + b"]}",  # 413
    b'{"events": [{"email": "a@example.com", "ctx": {"total": 1e-400}}]}',
    b'{"events": [{"email": "a@example.com", "ctx": {"n": 9223372036854775808}}]}',
    # item by item refuses an integer past 64 bits anywhere, even where a decimal would
    # take it: such a batch goes that way, whose answer names the item
    b'{"events": [{"email": "a@example.com", "ctx": {"total": 18446744073709551616}}]}',
    b'{"events": [{"email": "a@example.com", "ctx": {"total": 1}}], "x": 123456789012345678901}',
    b'{"events": [{"email": "a@example.com", "ctx": {"total": -18446744073709551617}}]}',
    b"[]",
    b"{not json",
])
def test_anything_refused_goes_item_by_item(body: bytes) -> None:
    assert validate_batch(BATCH, body) is None


def test_an_integer_past_64_bits_is_refused_item_by_item() -> None:
    body = b'{"events": [{"email": "a@example.com", "ctx": {"total": 18446744073709551616}}]}'
    with pytest.raises(Refused) as refused:
        item_body(batch_items(body)[0])
    assert refused.value.status == 422


def test_an_empty_batch_is_valid_at_once() -> None:
    assert validate_batch(BATCH, b'{"events": []}') == ([], [])


def test_the_batch_model_holds_the_request_model() -> None:
    field = BATCH.model_fields["events"]
    assert field.annotation == list[MODEL]
    assert issubclass(BATCH, BaseModel)
