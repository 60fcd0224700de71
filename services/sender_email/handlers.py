"""Deliver one record of ``parcours.send.email.tx.v1``: claim, render, send, settle."""

from __future__ import annotations

import logging
import time

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.sender_email.metrics import ACCEPTED_TO_SMTP, FAILED, RETRIES, SENT, SKIPPED
from services.sender_email.wiring import Sender
from shared.adapters import delivery_ledger
from shared.adapters.kafka import publish_dead_letter
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.smtp import PermanentFailure, TransientFailure, build_email
from shared.adapters.status_store import StatusWrite
from shared.domain.rendering import (
    CompiledEmail,
    RenderError,
    compile_email,
    render_email,
    template_context,
)
from shared.domain.routing import SendRequest
from shared.domain.status import Status
from shared.resilience import retry_forever

log = logging.getLogger(__name__)
_TRANSIENT = (*DB_UNAVAILABLE, TransientFailure, KafkaError)


async def deliver(sender: Sender, key: bytes | None, raw: bytes) -> None:
    try:
        request = SendRequest.model_validate_json(raw)
    except ValidationError as error:
        reason = f"invalid: {error.error_count()} errors"
        await publish_dead_letter(sender.producer, "sender-email", key, raw, reason)
        FAILED.labels("invalid").inc()
        return

    async def attempt() -> None:
        if sender.connection.is_closed():
            await sender.reconnect_db()
        await _deliver(sender, request)

    def count_retry() -> None:
        RETRIES.labels("delivery").inc()

    await retry_forever(attempt, "delivering an email", _TRANSIENT, on_retry=count_retry)


async def _compiled_template(sender: Sender, request: SendRequest) -> CompiledEmail | None:
    published = await sender.catalog.get(request.tenant, request.eventId)
    if published is None or published.message_version is None:
        return None
    key = (request.tenant, request.eventId, published.message_version)
    if key not in sender.templates:
        template = published.email_template()
        assert template is not None
        sender.templates[key] = compile_email(template)
    return sender.templates[key]


def _status(request: SendRequest, status: Status, reason: str | None = None) -> StatusWrite:
    return StatusWrite(request.pKey, request.tenant, request.eventId, status, reason,
                       request.messageId)


async def _fail(sender: Sender, request: SendRequest, metric: str, reason: str) -> None:
    FAILED.labels(metric).inc()
    await delivery_ledger.settle(sender.connection, request.messageId, False, reason,
                                 _status(request, Status.DELIVERY_FAILED, reason))


async def _deliver(sender: Sender, request: SendRequest) -> None:
    claim = await delivery_ledger.claim(
        sender.connection, request.messageId, request.tenant, request.pKey, "email"
    )
    if claim is delivery_ledger.Claim.DONE:
        SKIPPED.inc()
        return
    compiled = await _compiled_template(sender, request)
    if compiled is None:
        await _fail(sender, request, "not_published", "the event's message is not published")
        return
    event = {"eventId": request.eventId, "pKey": request.pKey}
    try:
        rendered = render_email(compiled, template_context(request.ctx, request.profile, event))
    except RenderError as error:
        await _fail(sender, request, "render", f"template error: {error}")
        return
    message = build_email(
        rendered, sender=sender.settings.mail_from, recipient=request.to["email"],
        message_id=request.messageId, domain="parcours.localhost",
    )
    try:
        await sender.smtp.send(message)
    except PermanentFailure as error:
        await _fail(sender, request, "smtp_permanent", str(error))
        return
    ACCEPTED_TO_SMTP.labels(request.priority).observe(time.time() - request.acceptedAt)
    SENT.labels(request.priority).inc()
    await delivery_ledger.settle(sender.connection, request.messageId, True, None,
                                 _status(request, Status.PROCESSED))
