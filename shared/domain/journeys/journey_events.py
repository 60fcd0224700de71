"""Journey events: a kind of event configuration of their own (prefix ``JEV``), with typed
fields like a transactional event's, but no channel and no message. A record is of the
type when its identifying condition holds on its payload (``purchaseMessage == "thank
you"``), and it names its profile by a key field. Pure: the admin API stores them, the
gateway and the Kafka reader call ``identify``.

    {"eventId": "JEVpurchase", "fields": [{"id": "customerId", "type": "string",
     "required": true}, {"id": "purchaseMessage", "type": "string"}],
     "condition": {"path": "event.purchaseMessage", "op": "eq", "value": "thank you"},
     "profileKey": "customerId"}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from shared.domain.conditions import Checked, PathSpec, Schema, ValueType, check_condition
from shared.domain.conditions import matches as condition_matches
from shared.domain.conditions.model import Condition
from shared.domain.fields import FieldSpec, FieldType, build_ctx_model, unique_ids

JOURNEY_EVENT_ID = r"^JEV[A-Za-z0-9_]{1,61}$"  # prefix JEV, at most 64 characters
_VALUE_TYPES = {FieldType.STRING: ValueType.STRING, FieldType.INTEGER: ValueType.INTEGER,
                FieldType.DECIMAL: ValueType.DECIMAL, FieldType.BOOLEAN: ValueType.BOOLEAN,
                FieldType.DATE: ValueType.DATE, FieldType.DATETIME: ValueType.DATETIME,
                FieldType.EMAIL: ValueType.EMAIL, FieldType.PHONE: ValueType.PHONE}


class JourneyEventType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)

    event_id: Annotated[str, StringConstraints(pattern=JOURNEY_EVENT_ID)]
    label: str = ""
    fields: tuple[FieldSpec, ...]
    condition: Condition | None = None  # absent: every record of the type is one
    profile_key: str  # the field whose value is the profile's id

    @field_validator("fields")
    @classmethod
    def _unique(cls, fields: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
        unique_ids("field", [f.id for f in fields])
        return fields

    @model_validator(mode="after")
    def _key_is_a_text_field(self) -> JourneyEventType:
        key = next((f for f in self.fields if f.id == self.profile_key), None)
        if key is None or key.type is not FieldType.STRING:
            raise ValueError(f"profileKey {self.profile_key!r} must name a string field")
        return self


class JourneyEventRecord(BaseModel):
    """A journey event on ``parcours.journey-events.v1``, keyed by its profile id."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    tenant: str
    eventId: str
    profileId: str
    payload: dict[str, Any]  # as the type's fields made it, JSON (decimals as strings)
    acceptedAt: float  # Unix seconds


class ProducedJourneyEvent(BaseModel):
    """A journey event an internal system produces to ``parcours.journey-events.kafka.v1``,
    signed with one of its tenant's kafka keys (the headers of ``parcours.events.kafka.v1``)
    and keyed by the profile id its type's profile key names."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    tenant: str = Field(min_length=1, max_length=128)
    eventId: str = Field(pattern=JOURNEY_EVENT_ID, description="a journey event type (JEV…)"
                         " of the tenant")
    payload: dict[str, Any] = Field(description="the type's fields, as over HTTP")


def payload_model(event_type: JourneyEventType) -> type[BaseModel]:
    """Accepts exactly the type's fields (unknown keys fail), typed as a transactional
    event's ctx is; dump it ``by_alias`` for the field ids."""
    return build_ctx_model(f"journey_{event_type.event_id}", event_type.fields)


def event_paths(event_type: JourneyEventType, prefix: str = "event") -> Schema:
    """What a condition may test of such an event: ``event.<field>`` by the field's type
    (a journey's condition on resolved waits uses the prefix ``waits.<node>``). The SQL is
    never used: journey events are evaluated one at a time."""
    return {f"{prefix}.{f.id}": PathSpec(_VALUE_TYPES[f.type], "NULL")
            for f in event_type.fields}


def checked_condition(event_type: JourneyEventType) -> Checked | None:
    """The identifying condition checked against the type's fields (ConditionError names
    the place in the tree)."""
    if event_type.condition is None:
        return None
    return check_condition(event_type.condition, event_paths(event_type))


def identify(event_type: JourneyEventType, condition: Checked | None,
             payload: Mapping[str, Any], now: datetime) -> str | None:
    """The profile id a record of the type is for, or None when the record is not one
    (its condition does not hold, or it names no profile): counted and dropped, never an
    error."""
    key = payload.get(event_type.profile_key)
    if not isinstance(key, str) or not key:
        return None
    if condition is not None and not condition_matches(condition, {"event": payload},
                                                       now=now):
        return None
    return key
