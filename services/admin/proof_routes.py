"""Proofs: a message version, rendered for a test profile and its sample data, sent to
that profile on the message's channel, marked ``[Proof]``. Sent directly, not through
Kafka: a proof has no event, no status and no ledger entry, and the marketer waits for it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from services.admin.dependencies import AdminCaller, Db
from services.admin.event_routes import render_version
from services.admin.models import ProofIn, ProofOut
from shared.adapters import test_profile_store
from shared.adapters.delivery_errors import PermanentFailure, TransientFailure
from shared.adapters.http_provider import HttpProvider
from shared.adapters.mime import encode_email
from shared.adapters.provider_payloads import PushPayload, SmsPayload
from shared.adapters.smtp import SmtpClient
from shared.domain.events import Channel
from shared.domain.rendering import RenderedMessage
from shared.sending.smtp import relay_security
from shared.settings import Settings

router = APIRouter(prefix="/admin/v1")
MARK = "[Proof] "


def _refused(what: str) -> HTTPException:
    return HTTPException(422, f"test profile has no {what}; add it with "
                              "PUT /admin/v1/test-profiles/{profileId}")


async def _email(settings: Settings, message: RenderedMessage, profile: dict[str, Any]) -> str:
    recipient = profile.get("email") or ""
    if not recipient:
        raise _refused("email address")
    encoded = encode_email(
        RenderedMessage(message.channel, {**message.parts,
                                          "subject": MARK + message.parts["subject"]},
                        message.data),
        sender=settings.mail_from, recipient=recipient,
        message_id=f"proof-{uuid.uuid4()}", domain="parcours.localhost",
    )
    smtp = SmtpClient(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s,
                      relay_security(settings))
    try:
        await smtp.send(settings.mail_from, recipient, encoded)
    finally:
        await smtp.close()
    return str(recipient)


async def _sms(settings: Settings, message: RenderedMessage, profile: dict[str, Any]) -> str:
    phone = profile.get("mobile_phone") or ""
    if not phone:
        raise _refused("mobile phone")
    proof_id = f"proof-{uuid.uuid4()}"
    provider = HttpProvider(settings.sms_provider_url, settings.provider_timeout_s, 1)
    try:
        await provider.send(SmsPayload(to=phone, text=MARK + message.parts["text"],
                                       messageId=proof_id), proof_id)
    finally:
        await provider.close()
    return str(phone)


async def _push(settings: Settings, message: RenderedMessage, profile: dict[str, Any]) -> str:
    """To every device the test profile registered."""
    devices = profile.get("push_registrations") or []
    if not devices:
        raise _refused("push registration")
    provider = HttpProvider(settings.push_provider_url, settings.provider_timeout_s, 4)
    try:
        for device in devices:
            proof_id = f"proof-{uuid.uuid4()}"
            await provider.send(PushPayload(
                token=device["registrationToken"], application=device["application"],
                platform=device["pushPlatform"], title=MARK + message.parts["title"],
                body=message.parts["body"], data=message.data, messageId=proof_id,
            ), proof_id)
    finally:
        await provider.close()
    return ", ".join(f"{d['application']} ({d['pushPlatform']})" for d in devices)


Deliver = Callable[[Settings, RenderedMessage, dict[str, Any]], Awaitable[str]]
_DELIVER: dict[Channel, Deliver] = {Channel.EMAIL: _email, Channel.SMS: _sms,
                                    Channel.PUSH: _push}


@router.post("/events/{event_id}/message/proof", status_code=202, response_model=ProofOut,
             response_model_by_alias=True)
async def send_proof(
    event_id: str, proof: ProofIn, caller: AdminCaller, db: Db, request: Request
) -> ProofOut:
    """Send a version (default: the newest), rendered for a test profile in the variant
    of ``locale`` (default: the profile's), to that profile: its email address, its mobile
    phone, or each of its push devices."""
    version, rendered, _, choice = await render_version(
        db, caller, event_id, proof.version, proof.profile_id, {}, proof.locale)
    profile = await test_profile_store.get_test_profile(db, caller.tenant, proof.profile_id)
    assert profile is not None  # render_version found it
    assert version is not None  # a stored version was rendered
    try:
        sent_to = await _DELIVER[rendered.channel](request.app.state.settings, rendered, profile)
    except PermanentFailure as error:
        raise HTTPException(422, f"the {rendered.channel} proof was refused: "
                                 f"{error}") from error
    except TransientFailure as error:
        raise HTTPException(503, f"the {rendered.channel} server is unavailable ({error}); "
                                 "retry", headers={"Retry-After": "5"}) from error
    return ProofOut(version=version, sent_to=sent_to, locale=choice.locale,
                    chosen_from=choice.chosen_from)
