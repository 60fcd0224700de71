"""A profile in a journey through the admin API: its instances with their step-by-step
history (the test mode's log), removing it from the journey, and, for a test run's
instances, simulated reactions and journey events.

    GET    /admin/v1/journeys/{journeyId}/instances/{profileId}   its instances and steps
    DELETE /admin/v1/journeys/{journeyId}/instances/{profileId}   its waiting one ends stopped
    POST   /admin/v1/journeys/{journeyId}/test/reactions  {"profileId", "node", "kind", "link"?}
    POST   /admin/v1/journeys/{journeyId}/test/events     {"profileId", "eventId", "payload"}

A simulated reaction is a Reaction record (source ``simulated``) to the message the
instance sent at ``node``, on ``parcours.reactions.v1`` keyed by the profile id like the
real ones; a simulated journey event is the record the gateway would write on
``parcours.journey-events.v1``. Both are answered 202 once the broker has them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.admin.dependencies import AdminCaller, Db
from services.admin.journey_routes import JourneyId
from shared.adapters import journey_event_store
from shared.adapters import journey_version_store as versions
from shared.adapters.kafka import encode
from shared.adapters.producer import RenewingProducer
from shared.domain.events import Channel
from shared.domain.journeys.definition import Action, parse_definition
from shared.domain.journeys.journey_events import (
    JourneyEventRecord,
    JourneyEventType,
    checked_condition,
    identify,
    payload_model,
)
from shared.domain.journeys.validation import REACTION_CHANNELS
from shared.domain.reactions import Link, Reaction, ReactionKind, reaction_id
from shared.domain.routing import JourneyOrigin
from shared.topics import JOURNEY_EVENTS, REACTIONS

router = APIRouter(prefix="/admin/v1/journeys", tags=["journeys"])
ProfileId = Annotated[str, Path(min_length=1, max_length=128)]
REMOVED = "removed from the journey"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReactionIn(_In):
    profileId: str = Field(min_length=1, max_length=128)
    node: str = Field(description="an action node the instance has sent")
    kind: ReactionKind
    link: int | None = Field(None, ge=0, description="for `clicked`: the link's index")


class EventIn(_In):
    profileId: str = Field(min_length=1, max_length=128)
    eventId: str = Field(description="a journey event type (JEV…)")
    payload: dict[str, Any] = Field(default_factory=dict)


def _instance_out(row: dict[str, Any]) -> dict[str, Any]:
    document = row["document"]
    return {"instanceId": str(row["instance_id"]), "version": row["version"],
            "mode": row["mode"], "state": row["state"], "node": row["node"],
            "reason": document.get("reason"), "enteredAt": row["entered_at"],
            "updatedAt": row["updated_at"], "sent": document.get("sent", {}),
            "waits": document.get("waits", {}), "steps": row["steps"]}


async def _journey(connection: asyncpg.Connection, tenant: str, journey_id: str) -> None:
    if await versions.lock_journey(connection, tenant, journey_id, lock=False) is None:
        raise HTTPException(404, f"no journey {journey_id!r}")


@router.get("/{journey_id}/instances/{profile_id}")
async def instances(journey_id: JourneyId, profile_id: ProfileId, caller: AdminCaller,
                    connection: Db) -> dict[str, Any]:
    """The profile's instances of the journey, oldest first, each with its steps."""
    await _journey(connection, caller.tenant, journey_id)
    rows = await versions.instances_of(connection, caller.tenant, journey_id, profile_id)
    return {"journeyId": journey_id, "profileId": profile_id,
            "instances": [_instance_out(r) for r in rows]}


async def _waiting(connection: asyncpg.Connection, tenant: str, journey_id: str,
                   profile_id: str) -> dict[str, Any]:
    await _journey(connection, tenant, journey_id)
    found = await versions.waiting_instances(connection, tenant, journey_id, [profile_id])
    if profile_id not in found:
        raise HTTPException(404, f"profile {profile_id!r} has no waiting instance in journey"
                                 f" {journey_id!r}")
    return found[profile_id]


@router.delete("/{journey_id}/instances/{profile_id}")
async def remove(journey_id: JourneyId, profile_id: ProfileId, caller: AdminCaller,
                 connection: Db) -> dict[str, Any]:
    """Its waiting instance ends ``stopped``, reason "removed from the journey"."""
    waiting = await _waiting(connection, caller.tenant, journey_id, profile_id)
    stopped = await versions.stop_instances(connection, caller.tenant, journey_id,
                                            [waiting["version"]], REMOVED, profile_id)
    if not stopped:  # it ended between the two reads
        raise HTTPException(404, f"profile {profile_id!r} has no waiting instance in journey"
                                 f" {journey_id!r}")
    return {"journeyId": journey_id, "profileId": profile_id,
            "instanceId": str(stopped[0]["instance_id"]), "version": stopped[0]["version"],
            "node": stopped[0]["node"], "state": "stopped", "reason": REMOVED}


async def _test_instance(connection: asyncpg.Connection, tenant: str, journey_id: str,
                         profile_id: str) -> dict[str, Any]:
    waiting = await _waiting(connection, tenant, journey_id, profile_id)
    if waiting["mode"] != "test":
        raise HTTPException(409, f"profile {profile_id!r} is on live version"
                                 f" {waiting['version']} of {journey_id!r}: reactions and"
                                 " events are simulated only for a test run's instances")
    return waiting


async def _produce(request: Request, topic: str, value: dict[str, Any], key: str) -> None:
    producer: RenewingProducer = request.app.state.producer
    try:
        await producer.deliver(topic, encode(value), key.encode())
    except KafkaError:
        raise HTTPException(503, "Kafka is unavailable; nothing was simulated, retry",
                            headers={"Retry-After": "1"}) from None


@router.post("/{journey_id}/test/reactions", status_code=202)
async def simulate_reaction(journey_id: JourneyId, body: ReactionIn, request: Request,
                            caller: AdminCaller, connection: Db) -> dict[str, Any]:
    """A reaction of the test profile to the message the instance sent at ``node``."""
    waiting = await _test_instance(connection, caller.tenant, journey_id, body.profileId)
    definition = parse_definition(waiting["definition"])
    node = next((n for n in definition.nodes if n.id == body.node), None)
    if not isinstance(node, Action):
        raise HTTPException(422, f"{body.node!r} is not an email, SMS or push node of"
                                 f" version {waiting['version']}")
    if node.type not in REACTION_CHANNELS[body.kind.value]:
        raise HTTPException(422, f"a {body.kind.value!r} reaction cannot follow a"
                                 f" {node.type} message")
    if body.link is not None and body.kind is not ReactionKind.CLICKED:
        raise HTTPException(422, "a link goes with a `clicked` reaction only")
    instance = waiting["document"]
    message_id = instance["sent"].get(body.node)
    if message_id is None:
        raise HTTPException(409, f"the instance has not sent {body.node!r} (it waits at"
                                 f" {instance['node']!r})")
    reaction = Reaction(
        reactionId=reaction_id(caller.tenant, message_id, body.kind, link=body.link),
        tenant=caller.tenant, messageId=message_id, kind=body.kind, at=datetime.now(UTC),
        channel=Channel(node.type), profileId=body.profileId,
        origin=JourneyOrigin(journeyId=journey_id, journeyVersion=waiting["version"],
                             nodeId=body.node, instanceId=instance["instanceId"]),
        link=None if body.link is None else Link(index=body.link,
                                                 url=f"simulated:link/{body.link}"),
        source="simulated")
    await _produce(request, REACTIONS.name, reaction.model_dump(mode="json"),
                   reaction.key.decode())
    return {"reactionId": reaction.reactionId, "messageId": message_id,
            "profileId": body.profileId, "kind": body.kind.value, "node": body.node}


def _payload(event_type: JourneyEventType, body: EventIn) -> BaseModel:
    """The payload typed by the type's fields, its profile key naming the profile."""
    payload = {event_type.profile_key: body.profileId, **body.payload}
    if payload[event_type.profile_key] != body.profileId:
        raise HTTPException(422, f"the payload's {event_type.profile_key!r} names"
                                 f" {payload[event_type.profile_key]!r}, not the profile"
                                 f" {body.profileId!r}")
    try:
        return payload_model(event_type).model_validate(payload)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", "payload", *e["loc"])}
                                      for e in error.errors(include_url=False)]) from None


@router.post("/{journey_id}/test/events", status_code=202)
async def simulate_event(journey_id: JourneyId, body: EventIn, request: Request,
                         caller: AdminCaller, connection: Db) -> dict[str, Any]:
    """A journey event for the test profile, as the gateway would write it."""
    stored = await journey_event_store.get(connection, caller.tenant, body.eventId)
    if stored is None:
        raise HTTPException(404, f"no journey event type {body.eventId!r}: define it with"
                                 f" PUT /admin/v1/journey-events/{body.eventId}")
    waiting = await _test_instance(connection, caller.tenant, journey_id, body.profileId)
    event_type = JourneyEventType.model_validate(stored["definition"])
    payload = _payload(event_type, body)
    typed = payload.model_dump(by_alias=True, exclude_none=True)
    if identify(event_type, checked_condition(event_type), typed, datetime.now(UTC)) is None:
        return {"eventId": body.eventId, "accepted": False, "reason": (
            "not an event of this type: its condition does not hold")}
    record = JourneyEventRecord(
        tenant=caller.tenant, eventId=body.eventId, profileId=body.profileId,
        payload=payload.model_dump(mode="json", by_alias=True, exclude_none=True),
        acceptedAt=time.time())
    await _produce(request, JOURNEY_EVENTS.name, record.model_dump(mode="json"),
                   body.profileId)
    return {"eventId": body.eventId, "accepted": True, "profileId": body.profileId,
            "version": waiting["version"]}
