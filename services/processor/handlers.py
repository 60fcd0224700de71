"""Handle a batch of trigger records: the gateway's (``parcours.events.in.v1``, already
validated) and internal systems' (``parcours.events.kafka.v1``, validated here).

At-least-once: records are acknowledged only after their outcomes (send records,
statuses, dead letters) are durable; every write is idempotent, so a redelivery after a
crash repeats writes without repeating effects. A batch costs a handful of round trips
(profiles, statuses, one produce per record awaited together), not several per event.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import NamedTuple

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.processor.metrics import (
    DEADLETTERED,
    EVENTS_PROCESSED,
    KAFKA_EVENTS,
    PROCESS_SECONDS,
    RETRIES,
    RULE_OUTCOMES,
)
from services.processor.wiring import Processor
from shared.adapters import contact_history, held_store
from shared.adapters.kafka import encode, publish_dead_letters
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.profile_store import find_profiles
from shared.adapters.status_store import (
    record_first_statuses,
    record_statuses,
    reopen_failed,
)
from shared.domain import timeline
from shared.domain.deadletter import Source, invalid_reason, is_replay
from shared.domain.events import EventConfig, Targeting, TriggerEvent, target_key
from shared.domain.lifecycle import PublishedEvent
from shared.domain.produced import Identified, Rejected, admit, identify, trigger_identity
from shared.domain.record_signing import (
    Refused,
    Signed,
    SigningKey,
    authorize,
    check_signature,
    check_tenant,
)
from shared.domain.routing import Ended, Hold, SendRequest, decide, message_id
from shared.domain.status import Status, StatusWrite
from shared.outgoing.metrics import rule_label
from shared.outgoing.step import Pending, decide_messages, deferral_reason
from shared.resilience import retry_forever
from shared.stage_metrics import observe
from shared.topics import EVENTS_IN, EVENTS_KAFKA, send_topic

log = logging.getLogger(__name__)
RELEASE_BATCH = 500
_PAUSED = "the event's message is paused: it is sent on resume, unless it expires first"
_TRANSIENT = (*DB_UNAVAILABLE, KafkaError)
# When the batch being handled was consumed (its messages' timeline; NaN for a release).
_CONSUMED: ContextVar[float] = ContextVar("consumed", default=math.nan)


def _held_status(trigger: TriggerEvent, hold: Hold) -> StatusWrite:
    """``paused`` while the message is paused, else ``pending`` until the scheduled time."""
    reasons = [_PAUSED] if hold.paused else []
    if hold.until is not None:
        reasons.append(f"scheduled for {hold.until.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}")
    return StatusWrite(trigger.pKey, trigger.tenant, trigger.eventId,
                       Status.PAUSED if hold.paused else Status.PENDING, "; ".join(reasons))


class Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    timestamp: float  # the Kafka record's, in seconds
    headers: Sequence[tuple[str, bytes]] = ()  # the signature of a record on EVENTS_KAFKA
    consumed_at: float = math.nan  # when the processor took it (time.time())


Letter = tuple[Record, str]  # a record for the dead-letter topic, and why


async def dead_letter(processor: Processor, letters: Sequence[Letter]) -> None:
    for _, reason in letters:
        DEADLETTERED.labels(reason.split(":", 1)[0]).inc()
    await retry_forever(
        lambda: publish_dead_letters(processor.producer, "processor",
                                     [(r.key, r.value, reason,
                                       Source(r.topic, r.headers, r.timestamp))
                                      for r, reason in letters]),
        "dead-lettering records", (KafkaError,), on_retry=RETRIES.inc,
    )


class Read(NamedTuple):
    """A batch, read: gateway events, identified Kafka records, and the unreadable."""

    triggers: list[TriggerEvent]
    produced: list[tuple[Record, Identified]]
    unreadable: list[Letter]


Signer = SigningKey | Refused | None  # of a Kafka record; None for the gateway's


async def _signers(processor: Processor, records: Sequence[Record]) -> list[Signer]:
    """The key that signed each record produced straight to Kafka, or why it is refused.
    Only keys of valid signatures are looked up, many to a query, through a cache."""
    secret = processor.settings.kafka_signing_secret.encode()
    checked = [check_signature(r.headers, r.value, secret) if r.topic == EVENTS_KAFKA.name
               else None for r in records]
    key_ids = {c.key_id for c in checked if isinstance(c, Signed)}
    keys = await retry_forever(lambda: processor.signing_keys.get_many(key_ids),
                               "looking up signing keys", _TRANSIENT,
                               on_retry=RETRIES.inc) if key_ids else {}
    return [authorize(c, keys[c.key_id]) if isinstance(c, Signed) else c for c in checked]


def _identify_signed(record: Record, signer: Signer, secret: bytes
                     ) -> Identified | Rejected | Refused:
    if not isinstance(signer, SigningKey):
        return signer or Refused("unsigned")
    identified = identify(record.value, secret)
    if isinstance(identified, Rejected):
        return identified
    return check_tenant(signer, identified.tenant) or identified


def _read(records: Sequence[Record], secret: bytes, signers: Sequence[Signer]) -> Read:
    """A record on EVENTS_KAFKA is read only when its signer may act for the tenant it
    names; otherwise it is dead-lettered with no status, so a forger writes nothing of
    another tenant's."""
    read = Read([], [], [])
    for record, signer in zip(records, signers, strict=True):
        if record.topic == EVENTS_KAFKA.name:
            identified = _identify_signed(record, signer, secret)
            if isinstance(identified, Refused):
                KAFKA_EVENTS.labels("refused").inc()
                read.unreadable.append((record, identified.reason))
            elif isinstance(identified, Rejected):
                KAFKA_EVENTS.labels("invalid").inc()
                read.unreadable.append((record, identified.reason))
            else:
                read.produced.append((record, identified))
            continue
        try:
            read.triggers.append(TriggerEvent.model_validate_json(record.value))
        except ValidationError as error:
            read.unreadable.append((record, invalid_reason(error)))
    return read


class Admitted(NamedTuple):
    triggers: list[TriggerEvent]
    rejected: list[Letter]
    statuses: list[StatusWrite]  # of the rejected records that name an event
    reopened: list[str]  # pKeys of replayed records valid now (parcours deadletters replay)


async def _admit(processor: Processor, produced: list[tuple[Record, Identified]]) -> Admitted:
    """Validate Kafka records against their published events. The first record of an
    eventKey decides its event; a later invalid copy is dead-lettered but changes nothing."""
    admitted = Admitted([], [], [], [])
    seen: set[str] = set()
    for record, event in produced:
        published = await processor.catalog.get(event.tenant, event.event_id)
        model = processor.produced_model(published) if published else None
        outcome = admit(record.value, event, model, record.timestamp)
        first = event.pkey not in seen
        seen.add(event.pkey)
        if isinstance(outcome, Rejected):
            admitted.rejected.append((record, outcome.reason))
            if first:
                admitted.statuses.append(StatusWrite(event.pkey, event.tenant, event.event_id,
                                                     Status.ROUTING_FAILED, outcome.reason))
        elif first:
            admitted.triggers.append(outcome)
            if is_replay(record.headers):
                admitted.reopened.append(event.pkey)
    return admitted


def _once(triggers: list[TriggerEvent]) -> list[TriggerEvent]:
    """One copy of each event (Kafka delivers at least once; producers may repeat)."""
    first: dict[str, TriggerEvent] = {}
    for trigger in triggers:
        first.setdefault(trigger.pKey, trigger)
    return list(first.values())


async def handle_batch(processor: Processor, records: Sequence[Record]) -> None:
    started = time.perf_counter()
    _CONSUMED.set(min((r.consumed_at for r in records), default=math.nan))
    read = _read(records, processor.settings.pkey_secret.encode(),
                 await _signers(processor, records))

    async def attempt() -> tuple[list[Status], Admitted]:
        await processor.ensure_db()
        admitted = await _admit(processor, read.produced)
        await reopen_failed(processor.connection, admitted.reopened)
        await record_first_statuses(processor.connection, admitted.statuses)
        routed = await _route(processor, _once(read.triggers + admitted.triggers))
        return [w.status for w in admitted.statuses] + routed, admitted

    statuses, admitted = await retry_forever(attempt, "processing events", _TRANSIENT,
                                             on_retry=RETRIES.inc)
    # Dead letters once the batch went through: a batch that fails is handled again
    # record by record (handle_isolating_poison), which must not write them twice. After
    # the statuses: a crash in between redelivers the records, which rewrites nothing and
    # dead-letters them then.
    if letters := read.unreadable + admitted.rejected:
        await dead_letter(processor, letters)
    for _, reason in admitted.rejected:
        KAFKA_EVENTS.labels(reason.split(":", 1)[0]).inc()
    KAFKA_EVENTS.labels("admitted").inc(len(admitted.triggers))
    for status in statuses:
        EVENTS_PROCESSED.labels(status.value).inc()
    PROCESS_SECONDS.observe(time.perf_counter() - started)


async def poisoned(processor: Processor, record: Record, reason: str) -> None:
    """A record that failed unexpectedly, alone (``handle_isolating_poison``): its event,
    when the record says whose it is (and, on Kafka, its signer may say so), ends
    ``routingFailed`` with the reason instead of reading ``pending`` forever; then the
    record is dead-lettered."""
    secret = processor.settings.pkey_secret.encode()
    if record.topic == EVENTS_KAFKA.name:
        [signer] = await _signers(processor, [record])
        named = _identify_signed(record, signer, secret)
        event = named if isinstance(named, Identified) else None
    else:
        event = trigger_identity(record.value, secret)
    if event is not None:
        write = StatusWrite(event.pkey, event.tenant, event.event_id, Status.ROUTING_FAILED,
                            reason)

        async def attempt() -> None:
            await processor.ensure_db()
            await record_statuses(processor.connection, [write])

        await retry_forever(attempt, "recording a failed record's status", _TRANSIENT,
                            on_retry=RETRIES.inc)
    await dead_letter(processor, [(record, reason)])


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
    lookups: dict[int, dict[str, str]] = {}
    for i, trigger in enumerate(triggers):
        event = published[(trigger.tenant, trigger.eventId)]
        if event is not None and event.config.targeting is Targeting.PROFILE:
            lookups[i] = event.config.profile_lookup(trigger.target, trigger.ctx)
    profiles: list[dict[str, object] | None] = [None] * len(triggers)
    for tenant in {triggers[i].tenant for i in lookups}:
        mine = [i for i in lookups if triggers[i].tenant == tenant]
        found = await find_profiles(processor.connection, tenant, [lookups[i] for i in mine])
        for i, profile in zip(mine, found, strict=True):
            profiles[i] = profile
    return profiles


async def _route(processor: Processor, triggers: list[TriggerEvent]) -> list[Status]:
    published = await _published(processor, triggers)
    profiles = await _profiles(processor, triggers, published)
    now = datetime.now(UTC)
    ended: list[StatusWrite] = []
    held: list[held_store.Held] = []
    reserved: list[tuple[str, contact_history.HistoryRow]] = []
    pendings: list[Pending] = []
    for trigger, profile in zip(triggers, profiles, strict=True):
        event = published[(trigger.tenant, trigger.eventId)]
        decision = decide(event and event.config, event and event.message_state,
                          trigger, profile, now, event and event.message_version)
        if isinstance(decision, Ended):
            ended.append(StatusWrite(trigger.pKey, trigger.tenant, trigger.eventId,
                                     decision.status, decision.reason))
        elif isinstance(decision, Hold):
            held.append((trigger.model_dump(mode="json"), decision.until,
                         _held_status(trigger, decision)))
            if decision.until is not None and profile is not None and event is not None:
                reserved.append(_reservation(trigger, event.config, profile, decision.until))
        else:
            assert event is not None
            config = event.config
            pendings.append(Pending(decision, transactional=not config.marketing,
                                    topic=config.topic, typology=config.typology))
    await record_statuses(processor.connection, ended)
    await held_store.hold(processor.connection, held)
    await contact_history.reserve(processor.connection, reserved)
    return ([w.status for w in ended] + [s.status for _, _, s in held]
            + await _pass_rules(processor, processor.connection, pendings, now))


def _reservation(trigger: TriggerEvent, config: EventConfig, profile: dict[str, object],
                 until: datetime) -> tuple[str, contact_history.HistoryRow]:
    """A scheduled send holds its place in the profile's contact history from the start,
    at its due instant, so fatigue counts it on both sides; it is decided when due."""
    return trigger.tenant, contact_history.HistoryRow(
        message_id(trigger.tenant, trigger.pKey), str(profile["profile_id"]),
        config.channel.value, "event", trigger.eventId, not config.marketing, until,
        "deferred", None, "scheduled", [])


async def _pass_rules(processor: Processor, connection: asyncpg.Connection,
                      pendings: list[Pending], now: datetime) -> list[Status]:
    """The delivery rules' step, then each message on its way: sent on, ended
    ``excluded``, or held until the rule lets it go."""
    begun: set[str] = set()  # the events that may go on (marked processing, not ended)
    decided = await decide_messages(connection, processor.step, pendings, now, begun=begun)
    decided_at = time.time()
    for outcome in decided:
        if outcome.fresh and outcome.kind is not None:
            RULE_OUTCOMES.labels(outcome.kind.value, rule_label(outcome.rule_id),
                                 outcome.outcome, "processor").inc()
    excluded = [_event_status(d.request, Status.EXCLUDED, d.reason)
                for d in decided if d.outcome == "exclude"]
    deferred = [d for d in decided if d.outcome == "defer"]
    sends = [d.request for d in decided if d.outcome == "send"]
    await record_statuses(connection, [w for w in excluded if w])
    await held_store.hold_messages(
        connection, [(d.request.model_dump(mode="json"), d.until) for d in deferred],
        [w for d in deferred if (w := _event_status(d.request, Status.PENDING,
                                                    deferral_reason(d)))])
    return [Status.EXCLUDED] * len(excluded) + [Status.PENDING] * len(deferred) \
        + await _send_on(processor, connection, sends, begun, decided_at)


def _event_status(request: SendRequest, status: Status, reason: str | None
                  ) -> StatusWrite | None:
    """The status of the event a message answers (None for a journey's message)."""
    event = request.event
    return event and StatusWrite(event.pKey, request.tenant, event.eventId, status, reason,
                                 request.messageId)


async def _send_on(processor: Processor, connection: asyncpg.Connection,
                   sends: list[SendRequest], allowed: set[str], decided_at: float
                   ) -> list[Status]:
    """Messages cleared to go: an event's moved to ``processing`` with the decision unless
    it already ended (refused by the gateway with a 503: not in ``allowed``), then every
    message goes to its sender's topic."""
    going = [s for s in sends if s.event is None or s.event.pKey in allowed]
    # Sent together and awaited together: the producer batches them into few requests.
    # Each carries the processor's marks of its timeline (shared.domain.timeline).
    consumed_at, produced_at = _CONSUMED.get(), time.time()
    marks = timeline.encode((consumed_at, decided_at, produced_at))
    await processor.producer.deliver_all([
        (send_topic(s.channel.value, s.priority).name, encode(s.model_dump(mode="json")),
         s.messageId.encode(), [(timeline.HEADER, marks)])
        for s in going
    ])
    for s in going:
        observe((s.acceptedAt, consumed_at, decided_at, produced_at), timeline.PROCESSOR_STAGES)
    # Already final: refused by the gateway (503) or cancelled. Never sent: the contact
    # history must not count them.
    skipped = [s for s in sends if s.event is not None and s.event.pKey not in allowed]
    await contact_history.unsend(connection, [(s.tenant, s.messageId) for s in skipped])
    return [Status.PROCESSING] * len(going) + [Status.IGNORED] * len(skipped)


async def release_deferred(processor: Processor) -> int:
    """Deferred messages come due are decided again (rules may have changed meanwhile)
    and go on, end, or wait again. Deleted in the transaction that found them: a crash
    releases them again, and the history and the ledger keep it from sending twice."""
    now = datetime.now(UTC)
    async with processor.pool.acquire() as connection, connection.transaction():
        records = await held_store.due_messages(connection, RELEASE_BATCH, now)
        if not records:
            return 0
        requests = [SendRequest.model_validate(r) for r in records]
        await held_store.forget_messages(connection, [(r.tenant, r.messageId) for r in requests])
        pendings = []
        for request in requests:
            # Its configuration: the event's, or the journey message's (JMS…) it renders.
            owner = request.template_owner
            published = owner and await processor.catalog.get(request.tenant, owner)
            config = published.config if published else None
            # A journey's message is never transactional (the engine decided it so).
            transactional = request.event is not None and not (config and config.marketing)
            pendings.append(Pending(
                request, transactional=transactional,
                topic=config and config.topic, typology=request.typology, redecide=True))
        statuses = await _pass_rules(processor, connection, pendings, now)
    for status in statuses:
        EVENTS_PROCESSED.labels(status.value).inc()
    return len(requests)


async def release_held(processor: Processor) -> tuple[int, int]:
    """Put held events that are due (their message is published, their scheduled time has
    come) back on the input topic; routed again, they are sent, or end ``tooOld`` if they
    expired meanwhile. Deleted in the same transaction that found them: a crash re-releases
    them, and the status and ledger keep a second pass from sending twice. Released, and
    looked at (those of a message not published are parked: ``held_store.releasable``)."""
    async with processor.pool.acquire() as connection, connection.transaction():
        held, looked_at = await held_store.releasable(connection, RELEASE_BATCH,
                                                      datetime.now(UTC))
        if not held:
            return 0, looked_at
        await processor.producer.deliver_all([
            (EVENTS_IN.name, encode(trigger), target_key(trigger["target"], pkey))
            for pkey, trigger in held
        ])
        await held_store.forget(connection, [pkey for pkey, _ in held])
    return len(held), looked_at
