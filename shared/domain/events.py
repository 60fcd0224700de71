"""Event configurations, the ingestion request they accept, and the trigger record on Kafka."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from shared.domain.exact import validate_exact
from shared.domain.fields import (
    CollectionSpec,
    EmailAddress,
    FieldSpec,
    PhoneNumber,
    Text,
    build_ctx_model,
    unique_ids,
)
from shared.domain.locale_tags import LOCALE_HELP, LocaleTag
from shared.domain.profile_schema import TOPIC_ID

# An event configuration's id: a transactional event's (EVT…), which the ingestion API and
# Kafka take, or a journey message's (JMS…), which only its journey sends. Both have at
# most 64 characters and live in the same tables, authored the same way.
EVENT_ID_PATTERN = r"^EVT[A-Za-z0-9_]{1,61}$"
JOURNEY_MESSAGE_ID_PATTERN = r"^JMS[A-Za-z0-9_]{1,61}$"
CONFIGURED_ID_PATTERN = r"^(EVT|JMS)[A-Za-z0-9_]{1,61}$"
is_event_id = re.compile(EVENT_ID_PATTERN).fullmatch  # an ingestible transactional event
is_journey_message_id = re.compile(JOURNEY_MESSAGE_ID_PATTERN).fullmatch
is_configured_id = re.compile(CONFIGURED_ID_PATTERN).fullmatch  # either: the catalog's


def journey_message_refusal(event_id: str) -> str:
    """Why an event naming a journey message is refused (HTTP 404, a Kafka dead letter)."""
    return f"{event_id} is a journey message: its journey sends it; it takes no events"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


class Targeting(StrEnum):
    EVENT = "event"  # the target is in the event; no profile data
    PROFILE = "profile"  # the event is matched to a profile, which enriches it


class EventConfig(BaseModel):
    # camelCase on the API (eventId, like the ingestion API), snake_case in Python.
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)

    event_id: Annotated[str, StringConstraints(pattern=CONFIGURED_ID_PATTERN)]
    label: str
    channel: Channel
    targeting: Targeting
    fields: tuple[FieldSpec, ...] = ()
    collections: tuple[CollectionSpec, ...] = ()
    # Enrichment: the ctx field whose value is the profile's id. Without it, a
    # profile-based event finds its profile by the target (email or mobile phone).
    profile_key: str | None = None
    # Delivery rules: the typology its messages pass (None: the tenant's default one for a
    # marketing event; address and consent checks only for a transactional one), whether
    # it is marketing (then marketing consent applies), and the topic it needs a
    # subscription to.
    typology: Annotated[str, StringConstraints(pattern=r"^t[0-9]{1,9}$")] | None = None
    marketing: bool = False
    topic: Annotated[str, StringConstraints(pattern=TOPIC_ID)] | None = None
    version: int = 1

    @model_validator(mode="before")
    @classmethod
    def _journey_message_defaults(cls, data: Any) -> Any:
        """A journey message goes to the journey's profile, as marketing traffic (marketing
        consent and the tenant's default typology apply): both are its defaults."""
        if isinstance(data, dict):
            event_id = data.get("eventId", data.get("event_id"))
            if isinstance(event_id, str) and is_journey_message_id(event_id):
                data = {"targeting": Targeting.PROFILE.value, "marketing": True, **data}
        return data

    @field_validator("targeting")
    @classmethod
    def _journey_message_targets_a_profile(cls, targeting: Targeting, info: ValidationInfo
                                           ) -> Targeting:
        event_id = info.data.get("event_id")
        if event_id and is_journey_message_id(event_id) and targeting is not Targeting.PROFILE:
            raise ValueError("a journey message (JMS…) goes to the profile its journey is"
                             " running for: targeting must be \"profile\"")
        return targeting

    @field_validator("marketing")
    @classmethod
    def _journey_message_is_marketing(cls, marketing: bool, info: ValidationInfo) -> bool:
        """The journey engine decides its messages as marketing traffic, never as
        transactional: a configuration saying otherwise would say what does not happen."""
        event_id = info.data.get("event_id")
        if not marketing and event_id and is_journey_message_id(event_id):
            raise ValueError("a journey message (JMS…) is marketing traffic: marketing"
                             " consent, the typology's rules and the bulk lanes apply")
        return marketing

    @field_validator("profile_key")
    @classmethod
    def _journey_message_has_no_key(cls, profile_key: str | None, info: ValidationInfo
                                    ) -> str | None:
        event_id = info.data.get("event_id")
        if profile_key is not None and event_id and is_journey_message_id(event_id):
            raise ValueError("a journey message (JMS…) is sent to its journey's profile;"
                             " it has no profileKey")
        return profile_key

    @property
    def journey_message(self) -> bool:
        """A journey message (JMS…): no ingestion endpoint, sent only by its journeys."""
        return bool(is_journey_message_id(self.event_id))

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
        unique_ids("field", [f.id for f in fields])
        return fields

    @field_validator("collections")
    @classmethod
    def _unique_collections(
        cls, collections: tuple[CollectionSpec, ...], info: ValidationInfo
    ) -> tuple[CollectionSpec, ...]:
        """A collection is a key of ctx beside the fields: its id is theirs to share."""
        fields = [f.id for f in info.data.get("fields", ())]
        unique_ids("field or collection", [*fields, *(c.id for c in collections)])
        return collections

    @model_validator(mode="after")
    def _profile_key_is_a_field(self) -> EventConfig:
        if self.profile_key is not None:
            if self.targeting is not Targeting.PROFILE:
                raise ValueError("profileKey needs profile-based targeting")
            if self.profile_key not in {f.id for f in self.fields}:
                raise ValueError(f"profileKey {self.profile_key!r} is not one of the fields")
        return self

    def profile_lookup(self, target: dict[str, str], ctx: dict[str, Any]) -> dict[str, str]:
        """How the event's profile is found: by the key field when it is set and present,
        else by the target."""
        if self.profile_key is not None and ctx.get(self.profile_key) is not None:
            return {"profileId": str(ctx[self.profile_key])}
        return target


def _target_fields(channel: Channel) -> dict[str, Any]:
    if channel is Channel.EMAIL:
        return {"email": (EmailAddress, ...)}
    if channel is Channel.SMS:
        return {"mobilePhone": (PhoneNumber, ...)}
    return {
        "registrationToken": (Text, Field(min_length=1, max_length=4096)),
        "application": (Text, Field(min_length=1, max_length=255)),
        "pushPlatform": (Annotated[str, StringConstraints(pattern=r"^(apns|fcm)$")], ...),
    }


SCHEDULE_HORIZON = timedelta(days=365)


def _within_horizon(scheduled: datetime | None) -> datetime | None:
    """A send scheduled years ahead is a typo far more often than a plan."""
    if scheduled is not None and scheduled > datetime.now(UTC) + SCHEDULE_HORIZON:
        raise ValueError(f"must be at most {SCHEDULE_HORIZON.days} days ahead")
    return scheduled


def _after_scheduled(expiration: datetime | None, info: ValidationInfo) -> datetime | None:
    """An event that expires before it is due could only ever end ``tooOld``."""
    scheduled = info.data.get("scheduled")
    if expiration is not None and scheduled is not None and expiration <= scheduled:
        raise ValueError("must be after scheduled")
    return expiration


SCHEDULED_HELP = "Send at this instant, not before; at most 365 days ahead."
EXPIRATION_HELP = "Not sent after this instant (status tooOld); after scheduled."
Scheduled = Annotated[AwareDatetime | None, AfterValidator(_within_horizon)]
Expiration = Annotated[AwareDatetime | None, AfterValidator(_after_scheduled)]


@lru_cache(maxsize=4096)
def _ctx_model(config: EventConfig) -> type[BaseModel]:
    return build_ctx_model(config.event_id, config.fields, config.collections)


# The configurations asked for last, by identity: the lru_cache above hashes and compares
# the whole configuration (pydantic) on every call, 1.5 % of the email sender's CPU. A
# configuration comes from its process's catalogue cache, the same object message after
# message; holding it keeps its id from being reused.
_RECENT_MAX = 64
_recent: dict[int, tuple[EventConfig, type[BaseModel]]] = {}


def ctx_model(config: EventConfig) -> type[BaseModel]:
    """The model of the event's ``ctx``, built once per configuration: the same one checks
    it at ingestion (HTTP and Kafka) and types it for the sender. About 50 kB each (most of
    it pydantic-core's validator and serializer, outside Python's heap), so a full cache is
    about 200 MB: the admin API keeps its own, smaller one (services/admin/ctx_models)."""
    known = _recent.get(id(config))
    if known is not None and known[0] is config:
        return known[1]
    model = _ctx_model(config)
    if len(_recent) >= _RECENT_MAX:
        _recent.clear()
    _recent[id(config)] = (config, model)
    return model


def ingest_fields(
    config: EventConfig, ctx: type[BaseModel] | None = None
) -> dict[str, Any]:
    """The fields of an event's body: its target, typed ``ctx``, ``scheduled``, ``expiration``,
    ``locale``.
    Shared by the HTTP request and the record internal systems produce to Kafka. ``ctx``:
    the ctx model to use instead of ``ctx_model``'s (a process keeping its own, smaller cache:
    the admin API)."""
    return {
        # A missing ctx is validated as an empty one, so a required field is named where
        # it is missing (ctx.orderId), not as if it were at the top of the body.
        "ctx": (ctx or ctx_model(config), Field(default_factory=dict, validate_default=True)),
        "scheduled": (Scheduled, Field(None, description=SCHEDULED_HELP)),
        "expiration": (Expiration, Field(None, description=EXPIRATION_HELP)),
        "locale": (LocaleTag | None, Field(None, description=LOCALE_HELP)),
        **_target_fields(config.channel),
    }


def build_ingest_model(
    config: EventConfig, ctx: type[BaseModel] | None = None
) -> type[BaseModel]:
    """The body ``POST /v1/events/{eventId}`` accepts for this configuration (ACS shape)."""
    model: type[BaseModel] = create_model(
        f"{config.event_id}_request", __config__=ConfigDict(extra="forbid"),
        **ingest_fields(config, ctx),
    )
    return model


def typed_ctx(
    config: EventConfig, ctx: bytes, model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """``ctx`` as templates see it, from its JSON text (a request's, a record's): validated
    as at ingestion, values typed (exact Decimal, date, datetime), keys the event's own
    ids; a field absent or null is left out (undefined in a template), as on Kafka.
    ``model``: the ctx model to use instead of ``ctx_model``'s (see ``ingest_fields``)."""
    return validate_exact(model or ctx_model(config), ctx).model_dump(
        by_alias=True, exclude_none=True)


CTX_ON_KAFKA = ("The event's fields and collections in JSON: decimals as strings of their "
                "exact digits, dates and datetimes in ISO 8601. Typed again by the event's "
                "configuration before a template sees them.")
TARGET_KEYS = ("email", "mobilePhone", "registrationToken", "application", "pushPlatform")


class TriggerEvent(BaseModel):
    """The record on ``parcours.events.in.v1``: one accepted event, before any processing."""

    model_config = ConfigDict(extra="forbid")

    v: int = 1
    pKey: str
    tenant: str
    eventId: str
    target: dict[str, str]
    ctx: dict[str, Any] = Field(default_factory=dict, description=CTX_ON_KAFKA)
    scheduled: AwareDatetime | None = None
    expiration: AwareDatetime | None = None
    acceptedAt: float  # unix seconds at the gateway, for end-to-end latency
    source: str = "http"
    locale: str | None = Field(default=None, description="the locale the request named"
                               " (normalised): its message's variant is chosen from it")


def target_key(target: dict[str, str], fallback: str) -> bytes:
    """The partition key of a trigger: its target, so one recipient's events keep order."""
    return next(iter(target.values()), fallback).lower().encode()


def trigger_record(
    request: BaseModel, *, pkey: str, tenant: str, event_id: str, accepted_at: float,
    source: str = "http",
) -> dict[str, Any]:
    """The ``TriggerEvent`` record, JSON-ready, for a validated request. Built as a dict:
    the request is already valid, and validating it again is the gateway's hot path."""
    body = request.model_dump(mode="json", exclude_none=True)
    target = {k: body.pop(k) for k in TARGET_KEYS if k in body}
    record = {"v": 1, "pKey": pkey, "tenant": tenant, "eventId": event_id, "target": target,
              "ctx": body.get("ctx", {}), "acceptedAt": accepted_at, "source": source}
    for optional in ("scheduled", "expiration", "locale"):
        if optional in body:
            record[optional] = body[optional]
    return record
