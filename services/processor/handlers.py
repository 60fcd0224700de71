"""Handle one record of ``parcours.events.in.v1``.

At-least-once: the record is acknowledged only after its outcome (a send record, a
status, or a dead letter) is durable; every write is idempotent, so a redelivery
after a crash repeats writes without repeating effects.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.processor.metrics import DEADLETTERED, EVENTS_PROCESSED, PROCESS_SECONDS, RETRIES
from services.processor.wiring import Processor
from shared.adapters.kafka import encode, publish_dead_letter
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.profile_store import find_profile
from shared.adapters.status_store import StatusWrite, begin_processing, record_statuses
from shared.domain.events import Targeting, TriggerEvent
from shared.domain.routing import Ended, decide
from shared.domain.status import Status
from shared.resilience import retry_forever
from shared.topics import SEND_TX_TOPICS

log = logging.getLogger(__name__)
_TRANSIENT = (*DB_UNAVAILABLE, KafkaError)


async def dead_letter(processor: Processor, key: bytes | None, raw: bytes, reason: str) -> None:
    DEADLETTERED.labels(reason.split(":", 1)[0]).inc()
    await publish_dead_letter(processor.producer, "processor", key, raw, reason)


async def handle(processor: Processor, key: bytes | None, raw: bytes) -> None:
    started = time.perf_counter()
    try:
        trigger = TriggerEvent.model_validate_json(raw)
    except ValidationError as error:
        await dead_letter(processor, key, raw, f"invalid: {error.error_count()} errors: "
                          + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                      for e in error.errors(include_input=False)))
        return

    async def attempt() -> Status:
        return await _route(processor, trigger)

    async def reconnect_then_attempt() -> Status:
        if processor.connection.is_closed():
            await processor.reconnect_db()
        return await attempt()

    status = await retry_forever(reconnect_then_attempt, "processing an event", _TRANSIENT,
                                 on_retry=RETRIES.inc)
    EVENTS_PROCESSED.labels(status.value).inc()
    PROCESS_SECONDS.observe(time.perf_counter() - started)


async def _route(processor: Processor, trigger: TriggerEvent) -> Status:
    published = await processor.catalog.get(trigger.tenant, trigger.eventId)
    config = published.config if published else None
    profile = None
    if config is not None and config.targeting is Targeting.PROFILE:
        profile = await find_profile(processor.connection, trigger.tenant, trigger.target)
    decision = decide(config, trigger, profile, datetime.now(UTC))
    if isinstance(decision, Ended):
        write = StatusWrite(trigger.pKey, trigger.tenant, trigger.eventId,
                            decision.status, decision.reason)
        await record_statuses(processor.connection, [write])
        return write.status
    if not await begin_processing(processor.connection, trigger.pKey, trigger.tenant,
                                  trigger.eventId, decision.messageId):
        return Status.IGNORED  # already final, e.g. refused by the gateway with a 503
    topic = SEND_TX_TOPICS[decision.channel.value]
    await processor.producer.send_and_wait(
        topic.name, encode(decision.model_dump(mode="json")), decision.messageId.encode()
    )
    return Status.PROCESSING
