"""Handle a batch of ``parcours.events.in.v1`` records.

At-least-once: records are acknowledged only after their outcomes (send records,
statuses, dead letters) are durable; every write is idempotent, so a redelivery after a
crash repeats writes without repeating effects. A batch costs a handful of round trips
(profiles, statuses, one produce per record awaited together), not several per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.processor.metrics import DEADLETTERED, EVENTS_PROCESSED, PROCESS_SECONDS, RETRIES
from services.processor.wiring import Processor
from shared.adapters.catalog_store import PublishedEvent
from shared.adapters.kafka import encode, publish_dead_letter
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.profile_store import find_profiles
from shared.adapters.status_store import StatusWrite, begin_processing, record_statuses
from shared.domain.events import Targeting, TriggerEvent
from shared.domain.routing import Ended, SendRequest, decide
from shared.domain.status import Status
from shared.resilience import retry_forever
from shared.topics import SEND_TX_TOPICS

log = logging.getLogger(__name__)
_TRANSIENT = (*DB_UNAVAILABLE, KafkaError)
Record = tuple[bytes | None, bytes]


async def dead_letter(processor: Processor, record: Record, reason: str) -> None:
    DEADLETTERED.labels(reason.split(":", 1)[0]).inc()
    key, raw = record
    await publish_dead_letter(processor.producer, "processor", key, raw, reason)


def _invalid_reason(error: ValidationError) -> str:
    fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                       for e in error.errors(include_input=False))
    return f"invalid: {error.error_count()} errors: {fields}"


async def _readable(processor: Processor, records: Sequence[Record]) -> list[TriggerEvent]:
    """Parse the batch, dead-letter what cannot be read, keep one copy of each event."""
    triggers: dict[str, TriggerEvent] = {}
    for record in records:
        try:
            trigger = TriggerEvent.model_validate_json(record[1])
        except ValidationError as error:
            await dead_letter(processor, record, _invalid_reason(error))
            continue
        triggers.setdefault(trigger.pKey, trigger)
    return list(triggers.values())


async def handle_batch(processor: Processor, records: Sequence[Record]) -> None:
    started = time.perf_counter()
    triggers = await _readable(processor, records)

    async def attempt() -> list[Status]:
        await processor.ensure_db()
        return await _route(processor, triggers)

    statuses = await retry_forever(attempt, "processing events", _TRANSIENT,
                                   on_retry=RETRIES.inc)
    for status in statuses:
        EVENTS_PROCESSED.labels(status.value).inc()
    PROCESS_SECONDS.observe(time.perf_counter() - started)


async def _published(
    processor: Processor, triggers: list[TriggerEvent]
) -> dict[tuple[str, str], PublishedEvent | None]:
    return {key: await processor.catalog.get(*key)
            for key in {(t.tenant, t.eventId) for t in triggers}}


async def _profiles(
    processor: Processor, triggers: list[TriggerEvent],
    published: dict[tuple[str, str], PublishedEvent | None],
) -> list[dict[str, object] | None]:
    """The profile of each profile-targeted trigger (None for the others)."""
    wanted = [
        i for i, t in enumerate(triggers)
        if (p := published[(t.tenant, t.eventId)]) is not None
        and p.config.targeting is Targeting.PROFILE
    ]
    profiles: list[dict[str, object] | None] = [None] * len(triggers)
    for tenant in {triggers[i].tenant for i in wanted}:
        mine = [i for i in wanted if triggers[i].tenant == tenant]
        found = await find_profiles(processor.connection, tenant,
                                    [triggers[i].target for i in mine])
        for i, profile in zip(mine, found, strict=True):
            profiles[i] = profile
    return profiles


async def _route(processor: Processor, triggers: list[TriggerEvent]) -> list[Status]:
    published = await _published(processor, triggers)
    profiles = await _profiles(processor, triggers, published)
    now = datetime.now(UTC)
    ended: list[StatusWrite] = []
    sends: list[SendRequest] = []
    for trigger, profile in zip(triggers, profiles, strict=True):
        event = published[(trigger.tenant, trigger.eventId)]
        decision = decide(event and event.config, event is not None and event.template is not None,
                          trigger, profile, now)
        if isinstance(decision, Ended):
            ended.append(StatusWrite(trigger.pKey, trigger.tenant, trigger.eventId,
                                     decision.status, decision.reason))
        else:
            sends.append(decision)
    await record_statuses(processor.connection, ended)
    allowed = await begin_processing(processor.connection, [
        StatusWrite(s.pKey, s.tenant, s.eventId, Status.PROCESSING, None, s.messageId)
        for s in sends
    ])
    going = [s for s in sends if s.pKey in allowed]
    # Sent together and awaited together: the producer batches them into few requests.
    deliveries = [
        await processor.producer.send(
            SEND_TX_TOPICS[s.channel.value].name, encode(s.model_dump(mode="json")),
            s.messageId.encode(),
        )
        for s in going
    ]
    await asyncio.gather(*deliveries)
    skipped = len(sends) - len(going)  # already final, e.g. refused by the gateway (503)
    return ([w.status for w in ended] + [Status.PROCESSING] * len(going)
            + [Status.IGNORED] * skipped)
