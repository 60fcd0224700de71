"""Applying a move's effects from the outbox, after the move was stored:

- **send**: the journey's message (a ``JMS…`` configuration's live version) to the
  profile — email to its address, SMS to its mobile phone, push to its most recently
  registered device — through the delivery rules' step (typology, fatigue, consent, quiet
  hours: deferred messages wait in ``held_messages`` like the processor's) and on the
  channel's bulk lane, so transactional traffic keeps its priority; a test run's message
  goes to its test profile as a proof does, without the rules (test profiles carry no
  consent, and their contact history is nobody's). A message that cannot
  go (its message unpublished, no address, a rule excluding it) is an ``actionExcluded``
  step with the reason; the instance goes on.
- **updateProfile**: a merge of the node's values into the profile (test profiles are the
  admin API's: not written, and the step says so). Effects apply in the order of their
  nodes: a message after an update goes to the address, with the consent, it set.
- **http**: one call to the node's URL with the instance's data, if its host is on the
  tenant's allow-list as it is now (/admin/v1/journey-http-hosts, read through a short
  cache: a host removed since publishing is an ``httpFailed`` step, no call); no loopback
  or private address unless the engine runs with allow-local-targets. Calls run
  in the background, at most MAX_CALLS at once, each deleted from the outbox with its step
  once answered or timed out: a receiver taking its time (up to the node's timeoutMs)
  holds up neither the timers nor the inputs of any other instance.

Each is idempotent on its id (the message id is deduplicated by the rules' step and the
senders' ledger; a profile write is a merge; a call carries ``Idempotency-Key``), so an
outbox entry applied twice after a crash acts once. Entries are deleted once applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.journeys.loops import PROFILE_WRITTEN
from services.journeys.metrics import EFFECTS, RETRIES, STEPS
from services.journeys.wiring import Engine
from shared.adapters import held_store, journey_http_hosts_store, journey_store
from shared.adapters.journey_profiles import JourneyProfile, read_profiles
from shared.adapters.journey_store import Outboxed
from shared.adapters.kafka import encode
from shared.adapters.postgres import DB_UNAVAILABLE
from shared.adapters.profile_store import apply_profile_write
from shared.domain.deadletter import invalid_reason
from shared.domain.journeys.http_hosts import allowed, target
from shared.domain.journeys.instance import Step
from shared.domain.journeys.message_ctx import journey_ctx
from shared.domain.lifecycle import MessageState
from shared.domain.profiles import to_write
from shared.domain.routing import JourneyOrigin, SendRequest, TemplateRef
from shared.outgoing.calls import call
from shared.outgoing.step import Pending, decide_messages
from shared.resilience import retry_forever
from shared.topics import send_topic

log = logging.getLogger(__name__)
MAX_CALLS = 100  # HTTP actions under way at once
_slots = asyncio.Semaphore(MAX_CALLS)
_calling: set[str] = set()  # effect ids of the calls started: recovery leaves them alone
_calls: set[asyncio.Task[None]] = set()


async def apply_retrying(engine: Engine, entries: Sequence[Outboxed]) -> None:
    """``apply``, waiting out PostgreSQL and Kafka outages."""
    if entries:
        await retry_forever(lambda: apply(engine, entries), "applying journey effects",
                            (*DB_UNAVAILABLE, KafkaError),
                            on_retry=RETRIES.labels("effects").inc)


async def apply(engine: Engine, entries: Sequence[Outboxed]) -> None:
    """Apply and delete the entries (call outside the transaction that wrote them); HTTP
    calls are started in the background and deleted when answered."""
    for entry in entries:
        if entry.kind == "http" and entry.effect_id not in _calling:
            _calling.add(entry.effect_id)
            task = asyncio.create_task(_call(engine, entry))
            _calls.add(task)
            task.add_done_callback(_calls.discard)
    entries = [e for e in entries if e.kind != "http"]
    if not entries:
        return
    async with engine.pool.acquire() as connection:
        by_tenant: dict[str, list[Outboxed]] = defaultdict(list)
        for entry in entries:
            by_tenant[entry.tenant].append(entry)
        for tenant, mine in by_tenant.items():
            profiles = await read_profiles(connection, tenant,
                                           [e.body["profileId"] for e in mine])
            steps: list[tuple[Outboxed, Step]] = []
            sends: list[Outboxed] = []  # decided together, in order with the updates
            for index, entry in enumerate(mine):
                if entry.kind == "send":
                    sends.append(entry)
                    continue
                if entry.kind != "updateProfile":
                    continue
                profile_id = entry.body["profileId"]
                if any(e.body["profileId"] == profile_id for e in sends):
                    steps += await _send(engine, connection, sends, profiles)
                    sends = []  # they went with the profile as it was before the update
                steps += await _update(engine, connection, entry, profiles)
                if any(e.kind == "send" and e.body["profileId"] == profile_id
                       for e in mine[index + 1:]):  # an address, consent… it just set
                    profiles.update(await read_profiles(connection, tenant, [profile_id]))
            steps += await _send(engine, connection, sends, profiles)
            await _done(connection, mine, steps)


async def _done(connection: asyncpg.Connection, entries: Sequence[Outboxed],
                steps: Sequence[tuple[Outboxed, Step]]) -> None:
    async with connection.transaction():
        await journey_store.write_effect_steps(connection, steps, datetime.now(UTC))
        await journey_store.applied(connection, entries)
    for entry, step in steps:
        STEPS.labels(entry.body["journeyId"], step.node, step.kind).inc()


async def _call(engine: Engine, entry: Outboxed) -> None:
    """One HTTP action in the background; left in the outbox if this fails or the engine
    stops first (recovery calls it again, under the same Idempotency-Key)."""
    try:
        async with _slots:
            steps = await _http(engine, entry)

        async def record() -> None:
            async with engine.pool.acquire() as connection:
                await _done(connection, [entry], steps)
        await retry_forever(record, "recording an HTTP action", DB_UNAVAILABLE,
                            on_retry=RETRIES.labels("effects").inc)
    except Exception:
        log.exception("journey HTTP action %s failed; recovery will call it again",
                      entry.effect_id)
    finally:
        _calling.discard(entry.effect_id)


def _excluded(entry: Outboxed, reason: str) -> tuple[Outboxed, Step]:
    EFFECTS.labels("send", "excluded").inc()
    return entry, Step("actionExcluded", entry.body["node"], reason)


def _address(channel: str, profile: JourneyProfile) -> dict[str, str] | None:
    if channel == "email":
        email = profile.profile.get("email")
        return {"email": email} if email else None
    if channel == "sms":
        phone = profile.profile.get("mobile_phone")
        return {"mobilePhone": phone} if phone else None
    if not profile.devices:
        return None
    device = profile.devices[-1]
    return {k: str(device[k]) for k in ("registrationToken", "application", "pushPlatform")
            if k in device}


async def _send(engine: Engine, connection: asyncpg.Connection, entries: list[Outboxed],
                profiles: dict[str, JourneyProfile]) -> list[tuple[Outboxed, Step]]:
    steps: list[tuple[Outboxed, Step]] = []
    pendings: list[tuple[Outboxed, Pending]] = []
    tests: list[SendRequest] = []
    for entry in entries:
        body = entry.body
        published = await engine.catalog.get(entry.tenant, body["message"])
        if published is None or published.message_version is None \
                or published.message_state is not MessageState.PUBLISHED:
            state = published and published.message_state
            steps.append(_excluded(entry, f"the message {body['message']} is not published"
                                   + (f" (it is {state.value})" if state else "")))
            continue
        profile = profiles.get(body["profileId"])
        if profile is None:
            steps.append(_excluded(entry, "the profile no longer exists"))
            continue
        to = _address(body["channel"], profile)
        if to is None:
            what = {"email": "email address", "sms": "mobile phone",
                    "push": "push device"}[body["channel"]]
            steps.append(_excluded(entry, f"the profile has no {what}"))
            continue
        config = published.config
        ctx, missing = journey_ctx([f.id for f in config.fields],
                                   {f.id for f in config.fields if f.required}, body["waits"])
        if missing:
            steps.append(_excluded(entry, f"the journey message's field {missing!r} has no"
                                   " value in the data of the waits resolved before it"))
            continue
        request = SendRequest(
            messageId=body["messageId"], tenant=entry.tenant,
            origin=JourneyOrigin(journeyId=body["journeyId"], journeyVersion=body["version"],
                                 nodeId=body["node"], instanceId=body["instanceId"]),
            channel=body["channel"], priority="bulk",
            template=TemplateRef(eventId=body["message"], version=published.message_version),
            to=to, profileId=body["profileId"], ctx=ctx, profile=profile.profile,
            acceptedAt=time.time(), marketing=config.marketing)
        if profile.is_test:
            tests.append(request)  # a test run's: sent to the test profile, like a proof
        else:
            pendings.append((entry, Pending(request, transactional=False,
                                            topic=config.topic, typology=config.typology)))
    going: list[SendRequest] = list(tests)
    EFFECTS.labels("send", "test").inc(len(tests))
    decided = await decide_messages(connection, engine.step, [p for _, p in pendings],
                                    datetime.now(UTC)) if pendings else []
    for (entry, _), outcome in zip(pendings, decided, strict=True):
        if outcome.outcome == "send":
            going.append(outcome.request)
            EFFECTS.labels("send", "sent").inc()
        elif outcome.outcome == "exclude":
            steps.append(_excluded(entry, outcome.reason))
        else:
            EFFECTS.labels("send", "deferred").inc()
    deferred = [(d.request.model_dump(mode="json"), d.until) for d in decided
                if d.outcome == "defer" and d.until is not None]
    await held_store.hold_messages(connection, deferred, [])
    await engine.producer.deliver_all([
        (send_topic(r.channel.value, "bulk").name, encode(r.model_dump(mode="json")),
         r.messageId.encode()) for r in going])
    return steps


async def _update(engine: Engine, connection: asyncpg.Connection, entry: Outboxed,
                  profiles: dict[str, JourneyProfile]) -> list[tuple[Outboxed, Step]]:
    body = entry.body
    profile = profiles.get(body["profileId"])
    if profile is None:
        EFFECTS.labels("updateProfile", "gone").inc()
        return [(entry, Step("error", body["node"], "the profile no longer exists"))]
    if profile.is_test:
        EFFECTS.labels("updateProfile", "test").inc()
        return [(entry, Step("profileUpdated", body["node"],
                             "a test profile: not written (test profiles are the admin"
                             " API's)"))]
    model = (await engine.schemas.get(entry.tenant)).model
    try:
        parsed = model.model_validate(body["values"])
    except ValidationError as error:
        EFFECTS.labels("updateProfile", "invalid").inc()
        return [(entry, Step("error", body["node"],
                             f"the update does not fit the profile schema:"
                             f" {invalid_reason(error)}"))]
    write = to_write(body["profileId"], parsed, replace=False, source="journey")
    async with connection.transaction():
        result = await apply_profile_write(connection, entry.tenant, write, datetime.now(UTC))
    EFFECTS.labels("updateProfile", "written").inc()
    PROFILE_WRITTEN.set()  # a goal on a profile condition may be met now
    return [(entry, Step("profileUpdated", body["node"], result.outcome))]


async def _http(engine: Engine, entry: Outboxed) -> list[tuple[Outboxed, Step]]:
    body = entry.body
    # The tenant's allow-list as it is now (it may have changed since publishing).
    hosts = await journey_http_hosts_store.cache(
        engine.pool, engine.settings.config_cache_ttl_s).get(entry.tenant)
    if not allowed(body["url"], hosts):
        EFFECTS.labels("http", "refused").inc()
        return [(entry, Step("httpFailed", body["node"],
                             f"host {target(body['url']) or body['url']} is not allow-listed"
                             " (PUT /admin/v1/journey-http-hosts)"))]
    payload = orjson.dumps({"journeyId": body["journeyId"], "version": body["version"],
                            "node": body["node"], "profileId": body["profileId"],
                            "waits": body["waits"]})
    outcome = await call(engine.http, body["url"], {"idempotency-key": body["callId"]},
                         payload, body["timeoutMs"] / 1000,
                         engine.settings.journeys_allow_local_targets,
                         method=body["method"])
    if outcome.error is None:
        EFFECTS.labels("http", "ok").inc()
        return [(entry, Step("httpCalled", body["node"], f"HTTP {outcome.http_status}"))]
    EFFECTS.labels("http", "failed").inc()
    return [(entry, Step("httpFailed", body["node"], outcome.error))]


async def recover(engine: Engine, older_than_s: float = 30.0, limit: int = 500) -> int:
    """Apply what an engine that stopped left in the outbox."""
    async with engine.pool.acquire() as connection, connection.transaction():
        stale = await journey_store.stale_outbox(
            connection, datetime.fromtimestamp(time.time() - older_than_s, UTC), limit)
    await apply(engine, stale)
    return len(stale)
