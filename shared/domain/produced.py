"""Events that internal systems produce straight to Kafka, on ``parcours.events.kafka.v1``.

The record is the body of ``POST /v1/events/{eventId}`` plus three fields: whose event it is
(``tenant``), which event (``eventId``) and the producer's own key for it (``eventKey``).
The processor validates it against the published configuration exactly as the gateway
validates a request, and derives the event's pKey from the three, so a record produced
again is the same event: one status, at most one message.

A record is read in two steps: its identity first, leniently, to know which configuration
validates the rest and to whom a rejection's status belongs; then the whole record, strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from shared.domain.deadletter import invalid_reason
from shared.domain.events import (
    EVENT_ID_PATTERN,
    EXPIRATION_HELP,
    SCHEDULED_HELP,
    EventConfig,
    TriggerEvent,
    ingest_fields,
    is_journey_message_id,
    journey_message_refusal,
    trigger_record,
)
from shared.domain.exact import validate_exact
from shared.domain.locale_tags import LOCALE_HELP, LocaleTag
from shared.domain.pkeys import derive_pkey, verify_pkey

NoNull = SkipJsonSchema[None]  # optional, but the schema does not offer null as a value


class ProducedIdentity(BaseModel):
    """Whose event a record is. Other fields are ignored here and checked afterwards."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = Field(1, description="Record version; additive changes only within v1.")
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="The tenant the event belongs to.")
    eventId: Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)] = Field(
        description="A published event of that tenant (EVT…).")
    eventKey: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="The producer's key for this event, unique per tenant and eventId (an "
                    "order id, say). Records with the same key are one event: the first "
                    "decides its fate, copies are never sent again. The pKey derives from it.")

    @field_validator("eventId", mode="before")
    @classmethod
    def _not_a_journey_message(cls, event_id: object) -> object:
        """A journey message (JMS…) is an event configuration too, but only its journey
        sends it: a record naming one is refused saying so, not for a pattern."""
        if isinstance(event_id, str) and is_journey_message_id(event_id):
            raise PydanticCustomError("journey_message", journey_message_refusal(event_id))
        return event_id


class _StrictRecord(ProducedIdentity):
    model_config = ConfigDict(extra="forbid")


class ProducedEvent(_StrictRecord):
    """The record internal systems produce to ``parcours.events.kafka.v1``: the body of
    ``POST /v1/events/{eventId}`` plus ``tenant``, ``eventId`` and ``eventKey``. Which target
    field is required and what ``ctx`` holds depend on the event's configuration (its JSON
    Schema: ``GET /v1/events/{eventId}/schema``); the processor checks them and sends a
    record that fails to ``parcours.deadletter.v1`` with the reason."""

    # Each target field is absent unless the event's channel needs it, and never null.
    email: str | NoNull = Field(None, description="Target of an email event.")
    mobilePhone: str | NoNull = Field(None, description="Target of an SMS event.")
    registrationToken: str | NoNull = Field(None, description="Target of a push event.")
    application: str | NoNull = Field(None, description="Push events: the application.")
    pushPlatform: Literal["apns", "fcm"] | NoNull = Field(None, description="Push events.")
    ctx: dict[str, Any] = Field(default_factory=dict,
                                description="The event's fields and collections, as configured.")
    scheduled: AwareDatetime | None = Field(None, description=SCHEDULED_HELP)
    expiration: AwareDatetime | None = Field(None, description=EXPIRATION_HELP)
    locale: LocaleTag | None = Field(None, description=LOCALE_HELP)


def build_produced_model(config: EventConfig) -> type[BaseModel]:
    """The exact record this configuration accepts on Kafka: the HTTP body's fields, typed
    the same way, plus the identity; unknown fields are refused as over HTTP."""
    model: type[BaseModel] = create_model(
        f"{config.event_id}_produced", __base__=_StrictRecord, **ingest_fields(config)
    )
    return model


@dataclass(frozen=True)
class Identified:
    """A record whose identity could be read, with the pKey derived from it."""

    tenant: str
    event_id: str
    pkey: str


@dataclass(frozen=True)
class Rejected:
    """Why a record cannot become an event; ``event`` is None when the record does not say
    whose event it is, so no status can be recorded for it."""

    reason: str
    event: Identified | None = None


def identify(raw: bytes, secret: bytes) -> Identified | Rejected:
    try:
        identity = ProducedIdentity.model_validate_json(raw)
    except ValidationError as error:
        return Rejected(invalid_reason(error))
    pkey = derive_pkey(secret, identity.tenant, identity.eventId, identity.eventKey)
    return Identified(identity.tenant, identity.eventId, pkey)


class _TriggerIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pKey: str
    tenant: str
    eventId: str


def trigger_identity(raw: bytes, secret: bytes) -> Identified | None:
    """Whose event a gateway record (``TriggerEvent``) is, read leniently, for a record
    that could not be handled otherwise; None unless its pKey is one the gateway minted."""
    try:
        identity = _TriggerIdentity.model_validate_json(raw)
    except ValidationError:
        return None
    if not verify_pkey(secret, identity.tenant, identity.eventId, identity.pKey):
        return None
    return Identified(identity.tenant, identity.eventId, identity.pKey)


def admit(
    raw: bytes, event: Identified, model: type[BaseModel] | None, accepted_at: float
) -> TriggerEvent | Rejected:
    """The trigger event of a valid record. ``model`` is ``build_produced_model`` of the
    event's published configuration, None when the event is not published."""
    if model is None:
        return Rejected(f"unknown_event: event {event.event_id} is not published", event)
    try:
        request = validate_exact(model, raw)  # decimals as written, as over HTTP
    except ValidationError as error:
        return Rejected(invalid_reason(error), event)
    return TriggerEvent.model_validate(trigger_record(
        request, pkey=event.pkey, tenant=event.tenant, event_id=event.event_id,
        accepted_at=accepted_at, source="kafka",
    ))
