"""``POST /admin/v1/rules/dry-run``: would this event's message go to this profile now,
and if not, why — every rule's verdict, in the order the decision step runs them. The
same step the processor runs (``shared/outgoing/step.py``), reading the same tables, but
nothing is locked or written and the rules are read afresh (no cache)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.admin.dependencies import AdminCaller
from services.admin.storable import storable
from shared.adapters.catalog_store import load_published
from shared.adapters.profile_schema_store import ProfileSchemaCache
from shared.adapters.profile_store import read_profile
from shared.adapters.rules_store import TenantRulesCache
from shared.domain.events import Targeting
from shared.domain.profile_schema import BUILT_INS
from shared.domain.routing import EventOrigin, SendRequest, TemplateRef, message_id
from shared.outgoing.step import Pending, Step, decide_messages

router = APIRouter(prefix="/admin/v1/rules", tags=["delivery rules"])
_ADDRESS = {"email": "email", "sms": "mobile_phone"}


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eventId: str
    profileId: str | None = Field(default=None, description="for a profile-based event")
    to: dict[str, str] | None = Field(default=None, description="for an event-based event:"
                                      " the target, as the ingestion API takes it")
    at: AwareDatetime | None = Field(default=None, description="decide as of this instant"
                                     " (default: now)")


class DryRunOut(BaseModel):
    outcome: Literal["send", "exclude", "defer"]
    reason: str | None
    until: datetime | None
    typology: str | None
    verdicts: list[dict[str, Any]]


def _target(channel: str, profile: dict[str, Any]) -> dict[str, str] | None:
    if channel == "push":
        devices = profile.get("push_registrations") or []
        token = devices[0].get("registrationToken") if devices else None
        return {"registrationToken": token} if token else None
    value = profile.get(_ADDRESS[channel])
    return {"email" if channel == "email" else "mobilePhone": value} if value else None


@router.post("/dry-run", response_model=DryRunOut, dependencies=[Depends(storable)])
async def dry_run(body: DryRunIn, request: Request, caller: AdminCaller) -> DryRunOut:
    pool = request.app.state.pool
    published = await load_published(pool, caller.tenant, body.eventId)
    if published is None or published.message_version is None:
        raise HTTPException(404, f"event {body.eventId} is not published with a message;"
                                 " publish it first")
    config = published.config
    profile: dict[str, Any] | None = None
    if config.targeting is Targeting.PROFILE:
        if body.profileId is None:
            raise HTTPException(422, "profileId: a profile-based event needs the profile")
        async with pool.acquire() as connection:
            stored = await read_profile(connection, caller.tenant, body.profileId)
        if stored is None:
            raise HTTPException(404, f"no profile {body.profileId!r}")
        to = _target(config.channel.value, stored)
        if to is None:
            raise HTTPException(422, f"profileId: the profile has no {config.channel.value}"
                                     " address")
        # As the processor holds it: the columns and the attributes side by side.
        columns = {c: stored.get(c) for c in ("profile_id", *BUILT_INS.values())}
        if columns["birth_date"] is not None:
            columns["birth_date"] = columns["birth_date"].isoformat()
        profile = {**stored["attributes"], **columns}
    elif body.to is None:
        raise HTTPException(422, "to: an event-based event needs the target address")
    else:
        to = body.to
    pkey = f"dry-run-{uuid.uuid4().hex}"
    send = SendRequest(
        messageId=message_id(caller.tenant, pkey), tenant=caller.tenant,
        origin=EventOrigin(eventId=config.event_id, pKey=pkey), channel=config.channel,
        template=TemplateRef(eventId=config.event_id, version=published.message_version),
        to=to, profileId=profile and profile.get("profile_id"), ctx={}, profile=profile,
        acceptedAt=0)
    now = body.at or datetime.now(UTC)
    step = Step(TenantRulesCache(pool, 0), ProfileSchemaCache(pool, 0))
    pending = Pending(send, transactional=not config.marketing, topic=config.topic,
                      typology=config.typology, contact_at=now)
    async with pool.acquire() as connection:
        [decided] = await decide_messages(connection, step, [pending], now, record=False)
    return DryRunOut(outcome=decided.outcome, reason=decided.reason or None,
                     until=decided.until, typology=decided.request.typology,
                     verdicts=list(decided.verdicts))
