"""Accepting events: validate, produce with the broker's acknowledgement, honour
Idempotency-Key. Shared by the single-event and batch routes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any, cast

from aiokafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

from services.gateway.wiring import Gateway
from shared.adapters import idempotency_store
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.producer import RenewingProducer
from shared.adapters.status_store import record_statuses
from shared.domain.events import target_key, trigger_record
from shared.domain.exact import exact_json, read_exact, validate_exact
from shared.domain.lifecycle import PublishedEvent
from shared.domain.pkeys import TIMED_LENGTH, mint_timed_pkey
from shared.domain.status import Status, StatusWrite
from shared.topics import EVENTS_IN

log = logging.getLogger(__name__)


@dataclass
class Refused(Exception):
    """An answer other than 202, with what the caller needs to fix or retry it."""

    status: int
    detail: Any
    reason: str  # the rejected-events metric label
    retry_after_s: int | None = None


def unavailable(what: str, reason: str) -> Refused:
    return Refused(503, f"{what} is unavailable; nothing was accepted, retry later", reason, 5)


def validate(gateway: Gateway, published: PublishedEvent, body: bytes) -> BaseModel:
    try:
        return validate_exact(gateway.ingest_model(published), body)  # decimals as written
    except ValidationError as error:
        detail = [
            {**e, "loc": ["body", *e["loc"]]}
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise Refused(422, detail, "invalid") from error


def batch_items(body: bytes) -> list[Any]:
    """A batch's items with their numbers as written, read again from the text: ``BatchIn``
    checked their count and shape but read 19.90 or a 30-digit decimal as a float."""
    items: list[Any] = read_exact(body)["events"]
    return items


def item_body(item: Any) -> bytes:
    """A batch item back to JSON, to be validated like a single event's body. Python reads
    integers of any size; JSON records here carry 64 bits at most."""
    try:
        return exact_json(item)
    except TypeError as error:  # orjson: "Integer exceeds 64-bit range"
        raise Refused(422, [{"type": "int_too_big", "loc": ["body"],
                             "msg": f"an integer is too large: {error}"}], "invalid") from error


def new_pkey(gateway: Gateway, tenant: str, event_id: str) -> str:
    return mint_timed_pkey(gateway.settings.pkey_secret.encode(), tenant, event_id,
                           time.time(), os.urandom(12))


def timed_pkeys(secret: bytes, tenant: str, event_id: str, at: float, random: bytes
                ) -> list[str]:
    """``mint_timed_pkey`` for each 12 bytes of ``random``, all issued at ``at``: the same
    keys (tests/unit/test_gateway_batch.py), at a fifth of the cost for a batch. The
    HMAC's key schedule and the (tenant, event id) prefix are hashed once, and the keys are
    written in base32 together: each 24 bytes padded with a zero byte to 25 (five whole
    groups of 5 bytes), whose 40 characters begin with the 39 of the 24 bytes alone."""
    prefix = hmac.new(secret, b"\x00".join((tenant.encode(), event_id.encode(), b"")),
                      hashlib.sha256)
    second = int(at).to_bytes(4, "big")
    raws = []
    for i in range(0, len(random), 12):
        nonce = second + random[i:i + 12]
        tag = prefix.copy()
        tag.update(nonce)
        raws.append(nonce + tag.digest()[:8] + b"\x00")
    text = base64.b32encode(b"".join(raws)).decode().lower()
    return [text[i:i + TIMED_LENGTH] for i in range(0, len(text), 40)]


# A JSON integer of 20 digits or more (2**64 has 20; a number's fraction or exponent makes
# it a decimal): read by pydantic, but refused by the item-by-item path (``item_body``), so
# such a batch takes that path. Digits in a string match too: that batch only goes slower.
_LONG_INTEGER = re.compile(rb"(?<![\d.])\d{20,}(?![\d.eE])")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)  # 20 digits in a row, found in C


def _long_integer(body: bytes) -> bool:
    """Whether ``body`` may hold a JSON integer of 20 digits or more: 0.1 µs an item; the
    expression alone (run only when there are 20 digits in a row) takes 2."""
    return b"0" * 20 in body.translate(_DIGITS_AS_ZERO) and bool(_LONG_INTEGER.search(body))


def validate_batch(batch_model: type[BaseModel], body: bytes
                   ) -> tuple[list[BaseModel], list[dict[str, Any]]] | None:
    """Every item of a batch validated in one pass (one ``model_validate_json`` over the
    whole body, decimals as written), and each item's ``model_dump(mode="json",
    exclude_none=True)``, made in one pass too. None when anything is refused (the body's
    shape or count, any item, an integer past 64 bits): the caller then validates item by
    item, which names each refusal; the items that pass that way are the same."""
    if _long_integer(body):
        return None
    try:
        batch = validate_exact(batch_model, body)
    except ValidationError:
        return None
    events: list[BaseModel] = batch.events  # type: ignore[attr-defined]
    dumped: list[dict[str, Any]] = batch.model_dump(mode="json", exclude_none=True)["events"]
    return events, dumped


class _Dumped:
    """A validated request's ``model_dump(mode="json", exclude_none=True)`` already made,
    handed to ``trigger_record`` in the request's place."""

    __slots__ = ("body",)

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return self.body


def _record(parsed: BaseModel | _Dumped, tenant: str, event_id: str, pkey: str,
            accepted_at: float | None = None) -> tuple[bytes, bytes]:
    record = trigger_record(cast(BaseModel, parsed), pkey=pkey, tenant=tenant,
                            event_id=event_id,
                            accepted_at=time.time() if accepted_at is None else accepted_at)
    return target_key(record["target"], pkey), encode(record)


async def _produce(producer: RenewingProducer, key: bytes, value: bytes, bound_s: float) -> bool:
    """True once the broker acknowledged the record. ``asyncio.timeout`` rather than
    ``wait_for``: no task per record (wait_for and gather made two, 8% of the gateway's CPU)."""
    try:
        async with asyncio.timeout(bound_s):
            await producer.deliver(EVENTS_IN.name, value, key)
    except (KafkaError, TimeoutError):
        return False
    return True


async def produce_all(
    gateway: Gateway, tenant: str, event_id: str, events: list[tuple[BaseModel, str]]
) -> list[bool]:
    """Write every (request, pKey); True where the broker acknowledged it. A refused
    event is voided so that a late write by the producer is never sent (R5)."""
    producer = gateway.producer
    if not producer.ready:  # the broker is away, or a producer is being renewed: 503 now
        return [False] * len(events)
    bound_s = gateway.settings.kafka_request_timeout_ms / 1000 + 1
    records = [_record(parsed, tenant, event_id, pkey) for parsed, pkey in events]
    if len(records) == 1:  # the single-event route: awaited in the request's own task
        acknowledged = [await _produce(producer, *records[0], bound_s)]
    else:  # one deadline for the batch, no task per item
        acknowledged = await producer.deliver_each(
            [(EVENTS_IN.name, value, key) for key, value in records], bound_s)
    await _void_refused(gateway, tenant, event_id, [pkey for _, pkey in events], acknowledged)
    return acknowledged


async def produce_dumped(
    gateway: Gateway, tenant: str, event_id: str, dumped: list[dict[str, Any]],
    pkeys: list[str]
) -> list[bool]:
    """``produce_all`` for a batch validated in one pass (``validate_batch``): the records
    from the items' dumps, one acceptance time for the batch."""
    producer = gateway.producer
    if not producer.ready:
        return [False] * len(dumped)
    bound_s = gateway.settings.kafka_request_timeout_ms / 1000 + 1
    at = time.time()
    topic = EVENTS_IN.name
    records = []
    for body, pkey in zip(dumped, pkeys, strict=True):
        key, value = _record(_Dumped(body), tenant, event_id, pkey, at)
        records.append((topic, value, key))
    acknowledged = await producer.deliver_batched(records, bound_s)
    await _void_refused(gateway, tenant, event_id, pkeys, acknowledged)
    return acknowledged


async def _void_refused(gateway: Gateway, tenant: str, event_id: str, pkeys: list[str],
                        acknowledged: list[bool]) -> None:
    refused = [pkey for pkey, ok in zip(pkeys, acknowledged, strict=True) if not ok]
    if refused:
        await _void(gateway, tenant, event_id, refused)


async def _void(gateway: Gateway, tenant: str, event_id: str, pkeys: list[str]) -> None:
    """The idempotent producer keeps an unacknowledged record and may still write it when
    the broker is back. The caller was told 503, so the event must not be sent: a final
    status recorded now makes the processor skip it (``begin_processing``)."""
    reason = "refused with 503 at ingestion (Kafka unavailable)"
    refused = [StatusWrite(p, tenant, event_id, Status.IGNORED, reason) for p in pkeys]
    try:
        async with gateway.pool.acquire() as connection:
            await record_statuses(connection, refused)
    except DB_UNAVAILABLE:
        log.error("could not void %d refused events: they may still be delivered once",
                  len(pkeys))


def body_digest(parsed: BaseModel) -> bytes:
    """Of the validated request, so key order and whitespace do not make it "another body"."""
    return hashlib.sha256(parsed.model_dump_json().encode()).digest()


async def accept_once(
    gateway: Gateway, tenant: str, event_id: str, parsed: BaseModel, idempotency_key: str
) -> str:
    """Accept under an Idempotency-Key: the first request produces, the others with the
    same body get its pKey once it is acknowledged; another body is a 422."""
    digest = body_digest(parsed)
    deadline = time.monotonic() + gateway.settings.kafka_request_timeout_ms / 1000 + 2
    while True:
        pkey = new_pkey(gateway, tenant, event_id)
        try:
            owner = await idempotency_store.claim(gateway.pool, tenant, idempotency_key,
                                                  event_id, digest, pkey)
        except DB_UNAVAILABLE as error:
            raise unavailable("the idempotency store", "db_unavailable") from error
        if owner is None:
            [ok] = await produce_all(gateway, tenant, event_id, [(parsed, pkey)])
            await idempotency_store.settle(gateway.pool, tenant, idempotency_key, ok)
            if not ok:
                raise unavailable("Kafka", "kafka_unavailable")
            return pkey
        if owner.event_id != event_id or owner.body_sha256 != digest:
            raise Refused(422, "this Idempotency-Key was used with another event or body;"
                               " use a new key for a new event", "idempotency_conflict")
        if owner.accepted:
            return owner.pkey
        if time.monotonic() > deadline:
            raise unavailable("Kafka", "kafka_unavailable")
        await asyncio.sleep(0.02)  # the owner is writing it; its outcome decides ours
