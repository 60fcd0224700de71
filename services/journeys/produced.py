"""Journey events internal systems produce straight to Kafka
(``parcours.journey-events.kafka.v1``): admitted as the gateway admits them over HTTP —
the record signed with a kafka key of the tenant it names (the headers of
``parcours.events.kafka.v1``), its payload typed by the type's fields, identified by the
type's condition and matched to its profile by the type's profile key. A record that is not
signed, signed by another tenant's key, malformed or of no type goes to the dead letters
with the reason; one the type does not identify (its condition does not hold, or it names
no profile) is counted and dropped, as over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from services.journeys.metrics import INPUTS
from services.journeys.moves import Arrival
from services.journeys.wiring import Engine
from shared.domain.deadletter import Source, invalid_reason
from shared.domain.exact import validate_exact
from shared.domain.journeys.instance import JourneyEvent
from shared.domain.journeys.journey_events import ProducedJourneyEvent, identify
from shared.domain.record_signing import Refused, Signed, authorize, check_signature, check_tenant
from shared.topics import JOURNEY_EVENTS_KAFKA


class Produced(NamedTuple):
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]
    timestamp_ms: int


Letter = tuple[bytes | None, bytes, str, Source]


async def admit(engine: Engine, records: Sequence[Produced]
                ) -> tuple[list[Arrival], list[Letter]]:
    secret = engine.settings.kafka_signing_secret.encode()
    checked = [check_signature(r.headers, r.value, secret) for r in records]
    keys = await engine.signing_keys.get_many(
        {c.key_id for c in checked if isinstance(c, Signed)})
    arrivals: list[Arrival] = []
    letters: list[Letter] = []
    for record, signed in zip(records, checked, strict=True):
        outcome = await _admit_one(engine, record, signed, keys)
        if isinstance(outcome, Arrival):
            arrivals.append(outcome)
        elif outcome is not None:
            INPUTS.labels("producedEvent", "refused").inc()
            letters.append((record.key, record.value, outcome, Source(
                JOURNEY_EVENTS_KAFKA.name, record.headers, record.timestamp_ms / 1000)))
    return arrivals, letters


async def _admit_one(engine: Engine, record: Produced, signed: Signed | Refused,
                     keys: dict[str, Any]) -> Arrival | str | None:
    """The arrival, or the reason for its dead letter, or None (counted, dropped)."""
    if isinstance(signed, Refused):
        return f"refused: {signed.reason}"
    key = authorize(signed, keys.get(signed.key_id))
    if isinstance(key, Refused):
        return f"refused: {key.reason}"
    try:
        event = ProducedJourneyEvent.model_validate_json(record.value)
    except ValidationError as error:
        return invalid_reason(error)
    refused = check_tenant(key, event.tenant)
    if refused is not None:
        return f"refused: {refused.reason}"
    compiled = (await engine.event_types.get(event.tenant)).get(event.eventId)
    if compiled is None:
        return (f"invalid: no journey event {event.eventId!r} in tenant {event.tenant!r}:"
                f" define it with PUT /admin/v1/journey-events/{event.eventId}")
    try:
        payload = validate_exact(compiled.model, orjson.dumps(event.payload))
    except ValidationError as error:
        return invalid_reason(error)
    typed = payload.model_dump(by_alias=True, exclude_none=True)
    profile_id = identify(compiled.event_type, compiled.condition, typed, datetime.now(UTC))
    if profile_id is None:
        INPUTS.labels("producedEvent", "ignored").inc()
        return None
    data = payload.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Arrival(event.tenant, profile_id, JourneyEvent(event.eventId, data),
                   f"{event.eventId}|kafka:{record.timestamp_ms}|"
                   f"{orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()}",
                   record.timestamp_ms / 1000)
