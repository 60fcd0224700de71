"""Deliver a batch of ``parcours.send.email.*`` records: claim, render, send, settle.

One ledger claim and one settle per batch; the messages themselves go out in parallel
over the SMTP pool. Records that cannot be read go to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import orjson
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.sender_email.metrics import ACCEPTED_TO_SMTP, FAILED, RETRIES, SENT, SKIPPED
from services.sender_email.wiring import Sender
from shared.adapters import delivery_ledger
from shared.adapters.delivery_ledger import Claimable, Outcome
from shared.adapters.kafka import publish_dead_letter
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.smtp import PermanentFailure, TransientFailure, encode_email
from shared.adapters.status_store import StatusWrite
from shared.domain.rendering import (
    CompiledMessage,
    RenderError,
    compile_message,
    render_message,
    template_context,
)
from shared.domain.routing import SendRequest
from shared.domain.status import Status
from shared.resilience import retry_forever

log = logging.getLogger(__name__)
_DB_OR_KAFKA = (*DB_UNAVAILABLE, KafkaError)
Record = tuple[bytes | None, bytes]
T = TypeVar("T")


async def _readable(sender: Sender, records: Sequence[Record]) -> list[SendRequest]:
    """Parse the batch, dead-letter what cannot be read, keep one copy of each message."""
    requests: dict[str, SendRequest] = {}
    for key, raw in records:
        try:
            request = SendRequest.model_validate_json(raw)
        except ValidationError as error:
            FAILED.labels("invalid").inc()
            await publish_dead_letter(sender.producer, "sender-email", key, raw,
                                      f"invalid: {error.error_count()} errors")
            continue
        if request.messageId in requests:
            SKIPPED.inc()
        requests.setdefault(request.messageId, request)
    return list(requests.values())


async def deliver_batch(sender: Sender, records: Sequence[Record]) -> None:
    requests = await _readable(sender, records)

    async def claim() -> set[str]:
        await sender.ensure_db()
        return await delivery_ledger.claim(
            sender.connection, "email",
            [Claimable(r.messageId, r.tenant, r.pKey) for r in requests],
        )

    claimed = await _with_retries(claim, "claiming deliveries")
    SKIPPED.inc(len(requests) - len(claimed))
    to_send = [r for r in requests if r.messageId in claimed]
    outcomes = await asyncio.gather(*(_send(sender, r) for r in to_send))

    async def settle() -> None:
        await sender.ensure_db()
        await delivery_ledger.settle(sender.connection, list(outcomes))

    await _with_retries(settle, "settling deliveries")


async def _with_retries(operation: Callable[[], Awaitable[T]], what: str) -> T:
    return await retry_forever(operation, what, _DB_OR_KAFKA,
                               on_retry=lambda: RETRIES.labels("database").inc())


async def _compiled_template(sender: Sender, request: SendRequest) -> CompiledMessage | None:
    published = await sender.catalog.get(request.tenant, request.eventId)
    if published is None or published.template is None:
        return None
    # Keyed by content too: a republished message must not be served from the cache.
    key = (request.tenant, request.eventId, orjson.dumps(published.template))
    if key not in sender.templates:
        sender.templates[key] = compile_message(request.channel, published.template)
    return sender.templates[key]


def _outcome(request: SendRequest, status: Status, reason: str | None = None) -> Outcome:
    write = StatusWrite(request.pKey, request.tenant, request.eventId, status, reason,
                        request.messageId)
    return Outcome(request.messageId, status is Status.PROCESSED, reason, write)


def _failed(request: SendRequest, metric: str, reason: str) -> Outcome:
    FAILED.labels(metric).inc()
    return _outcome(request, Status.DELIVERY_FAILED, reason)


async def _send(sender: Sender, request: SendRequest) -> Outcome:
    event = {"eventId": request.eventId, "pKey": request.pKey}
    try:
        compiled = await _with_retries(lambda: _compiled_template(sender, request),
                                       "loading the template")
        if compiled is None:
            return _failed(request, "not_published", "the event's message is not published")
        rendered = render_message(compiled, template_context(request.ctx, request.profile, event))
    except RenderError as error:
        return _failed(request, "render", f"template error: {error}")
    recipient = request.to["email"]
    message = encode_email(rendered, sender=sender.settings.mail_from, recipient=recipient,
                           message_id=request.messageId, domain="parcours.localhost")

    async def hand_over() -> None:
        async with sender.smtp.client() as client:
            await client.send(sender.settings.mail_from, recipient, message)

    try:
        await retry_forever(hand_over, "sending an email", (TransientFailure,),
                            on_retry=lambda: RETRIES.labels("smtp").inc())
    except PermanentFailure as error:
        return _failed(request, "smtp_permanent", str(error))
    ACCEPTED_TO_SMTP.labels(request.priority).observe(time.time() - request.acceptedAt)
    SENT.labels(request.priority).inc()
    return _outcome(request, Status.PROCESSED)
