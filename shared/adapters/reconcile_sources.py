"""The three witnesses ``parcours reconcile`` compares (shared/domain/reconcile.py): the
input topics' records over a window (Kafka), what the stages recorded (PostgreSQL), and
what the local sinks were handed (HTTP), read as fast as each allows.

Kafka is read without a consumer group (nothing committed, nobody's offsets moved): each
partition from the first record at or after the window's start (``offsets_for_times``) to
the end offset taken at the start, or the first record past the window's end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters.kafka import client_security, window_batches
from shared.domain.api_keys import Scope
from shared.domain.produced import Identified, identify
from shared.domain.reconcile import (
    RECEIPTS,
    Accepted,
    Decided,
    Handed,
    LedgerRow,
    MessageReport,
    MessageSources,
    Recorded,
    Report,
    Sources,
    provider_receipts,
    reconcile,
    reconcile_messages,
)
from shared.domain.record_signing import Signed, check_signature
from shared.settings import Settings
from shared.topics import (
    EVENTS_IN,
    EVENTS_KAFKA,
    SEND_EMAIL_BULK,
    SEND_PUSH_BULK,
    SEND_SMS_BULK,
    Topic,
)

Progress = Callable[[str, int, int], None]  # (what, done, total)
_CHUNK = 20_000  # ids per PostgreSQL round trip: ~1 MB of parameters


@dataclass(frozen=True)
class Window:
    since: float  # epoch seconds
    until: float
    tenant: str | None = None  # None: every tenant
    event_id: str | None = None


@dataclass(frozen=True)
class KafkaKey:
    tenant: str
    revoked_at: float | None


@dataclass
class Read:
    """What the input topics hold in the window, by pKey; and what was not an event."""

    accepted: dict[str, Accepted] = field(default_factory=dict)
    records: int = 0
    not_accepted: int = 0  # unsigned, forged, unreadable: no tenant's event
    seconds: float = 0.0


async def kafka_keys(connection: asyncpg.Connection) -> dict[str, KafkaKey]:
    rows = await connection.fetch(
        "SELECT key_id, tenant_id, extract(epoch FROM revoked_at)::float8 AS revoked"
        " FROM api_keys WHERE scope = $1", Scope.KAFKA.value)
    return {row["key_id"]: KafkaKey(row["tenant_id"], row["revoked"]) for row in rows}


class _Reader:
    """Turns records into accepted events, as the gateway and the processor accept them."""

    def __init__(self, settings: Settings, window: Window, keys: dict[str, KafkaKey],
                 read: Read) -> None:
        self._pkey_secret = settings.pkey_secret.encode()
        self._signing_secret = settings.kafka_signing_secret.encode()
        self._window, self._keys, self._read = window, keys, read

    def _keep(self, pkey: str, tenant: str, event_id: str, at: float, topic: str) -> None:
        window = self._window
        if (window.tenant is not None and tenant != window.tenant) or (
                window.event_id is not None and event_id != window.event_id):
            return
        if pkey not in self._read.accepted:  # a released held event is written again
            self._read.accepted[pkey] = Accepted(pkey, tenant, event_id, at, topic)

    def gateway_record(self, value: bytes | None, at: float) -> None:
        try:
            record = orjson.loads(value or b"")
            pkey, tenant, event_id = record["pKey"], record["tenant"], record["eventId"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._read.not_accepted += 1
            return
        self._keep(pkey, tenant, event_id, at, EVENTS_IN.name)

    def produced_record(self, value: bytes | None,
                        headers: Sequence[tuple[str, bytes]], at: float) -> None:
        """A record the processor accepts as its tenant's: validly signed by a kafka key of
        that tenant, not revoked when it was written (its status is readable by the pKey
        derived from its eventKey; an invalid payload still ends ``routingFailed``)."""
        signed = check_signature(headers, value, self._signing_secret)
        identity = identify(value or b"", self._pkey_secret)
        key = self._keys.get(signed.key_id) if isinstance(signed, Signed) else None
        if (key is None or not isinstance(identity, Identified)
                or identity.tenant != key.tenant
                or (key.revoked_at is not None and key.revoked_at <= at)):
            self._read.not_accepted += 1
            return
        self._keep(identity.pkey, identity.tenant, identity.event_id, at, EVENTS_KAFKA.name)


async def read_accepted(settings: Settings, window: Window, keys: dict[str, KafkaKey],
                        progress: Progress | None = None,
                        topics: tuple[Topic, Topic] = (EVENTS_IN, EVENTS_KAFKA)) -> Read:
    """``topics``: the gateway's and the produced records' topics (another pair: bench)."""
    read = Read()
    reader = _Reader(settings, window, keys, read)
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024, **client_security(settings))
    await consumer.start()
    partitions = [TopicPartition(topic.name, p)
                  for topic in topics for p in range(topic.partitions)]
    total = 0

    def told(n: int) -> None:
        nonlocal total
        total = n

    try:
        async for tp, records in window_batches(consumer, partitions, window.since,
                                                window.until, max_records=20_000,
                                                on_total=told):
            gateway = tp.topic == topics[0].name
            for record in records:
                read.records += 1
                at = record.timestamp / 1000
                if gateway:
                    reader.gateway_record(record.value, at)
                else:
                    reader.produced_record(record.value, record.headers, at)
            if progress is not None:
                progress("records read", read.records, total)
    finally:
        await consumer.stop()
    read.seconds = time.monotonic() - started
    return read


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


async def _fetch_by(connection: asyncpg.Connection, query: str, ids: Sequence[str],
                    uuids: bool = False) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for chunk in _chunks(ids):
        rows.extend(await connection.fetch(
            query, [uuid.UUID(i) for i in chunk] if uuids else list(chunk)))
    return rows


async def read_recorded(connection: asyncpg.Connection, pkeys: Sequence[str],
                        progress: Progress | None = None) -> Sources:
    """Statuses, ledger rows and legitimate holds of these events and their messages."""
    statuses = {row["pkey"]: Recorded(row["status"], row["mid"] and str(row["mid"]),
                                      row["reason"])
                for row in await _fetch_by(
                    connection, "SELECT pkey, status, message_id AS mid, reason"
                                " FROM event_status WHERE pkey = ANY($1::text[])", pkeys)}
    if progress is not None:
        progress("statuses read", len(statuses), len(pkeys))
    message_ids = [r.message_id for r in statuses.values() if r.message_id]
    ledger = {str(row["message_id"]): LedgerRow(row["state"], row["attempts"], row["channel"])
              for row in await _fetch_by(
                  connection, "SELECT message_id, state, attempts, channel FROM deliveries"
                              " WHERE message_id = ANY($1::uuid[])", message_ids, uuids=True)}
    pending = [pkey for pkey, r in statuses.items() if r.status in ("pending", "paused")]
    held = {row["pkey"]: row["due"] for row in await _fetch_by(
        connection, "SELECT pkey, extract(epoch FROM due_at)::float8 AS due FROM held_events"
                    " WHERE pkey = ANY($1::text[])", pending)}
    processing = [pkey for pkey, r in statuses.items() if r.status == "processing"]
    deferred = {str(row["message_id"]): row["due"] for row in await _fetch_by(
        connection, "SELECT message_id, extract(epoch FROM due_at)::float8 AS due"
                    " FROM held_messages WHERE pkey = ANY($1::text[])", processing)}
    unsettled = [statuses[p].message_id or "" for p in processing if statuses[p].message_id]
    retries = {str(row["message_id"]): row["due"] for row in await _fetch_by(
        connection, "SELECT message_id, extract(epoch FROM due_at)::float8 AS due"
                    " FROM send_retries WHERE message_id = ANY($1::uuid[])", unsettled,
        uuids=True)}
    return Sources(statuses, ledger, held, deferred, retries)


async def read_receipt_kinds(connection: asyncpg.Connection, window: Window,
                             message_ids: set[str]) -> dict[str, frozenset[str]]:
    """The receipt kinds recorded for these messages (DSN bounces, provider webhooks). By
    time, not by message id (the reactions table keeps no message index, migration 038):
    a receipt comes after its message was handed over, so after the window's start."""
    kinds = sorted({k for ks in RECEIPTS.values() for k in ks})
    found: dict[str, set[str]] = {}
    if not message_ids:
        return {}
    rows = await connection.fetch(
        "SELECT message_id::text AS mid, kind FROM reactions"
        " WHERE kind = ANY($1::text[]) AND ($3::text IS NULL OR tenant_id = $3)"
        "   AND recorded_at >= to_timestamp($2)",
        kinds, window.since, window.tenant)
    for row in rows:
        if row["mid"] in message_ids:
            found.setdefault(row["mid"], set()).add(row["kind"])
    return {mid: frozenset(k) for mid, k in found.items()}


def sink_urls(settings: Settings) -> list[str]:
    chosen = settings.reconcile_sinks.strip()
    if chosen in ("", "none"):
        return []
    if chosen != "local":
        return [url.strip().rstrip("/") for url in chosen.split(",") if url.strip()]
    ports = (settings.smtp_sink_http_port, settings.smtp_bulk_sink_http_port,
             settings.smtp_secondary_sink_http_port, settings.provider_sink_port,
             settings.provider_sink_secondary_port)
    return [f"http://127.0.0.1:{port}" for port in ports]


# Messages without a pKey: the engine's decisions (journey_steps) and the bulk send topics.
BULK_TOPICS = (SEND_EMAIL_BULK, SEND_SMS_BULK, SEND_PUSH_BULK)


@dataclass
class MessagesRead:
    decided: dict[str, Decided] = field(default_factory=dict)
    on_topic: set[str] = field(default_factory=set)
    # The engine's messages: their tenant, instance and node (where an exclusion is written)
    instances: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    records: int = 0  # of the bulk topics, in the window
    seconds: float = 0.0


async def read_decided(settings: Settings, connection: asyncpg.Connection, window: Window,
                       topics: Sequence[Topic] = BULK_TOPICS) -> MessagesRead:
    """The journey messages the engine decided in the window (its ``actionSent`` steps,
    written with the move; migration 047 indexes them by time), then every record of the
    bulk send topics in the window that answers no event (no pKey)."""
    read = MessagesRead()
    started = time.monotonic()
    rows = await connection.fetch(
        "SELECT tenant_id, journey_id, version, node, detail, instance_id::text AS instance,"
        " extract(epoch FROM at)::float8 AS at FROM journey_steps"
        " WHERE kind = 'actionSent' AND at >= to_timestamp($1) AND at <= to_timestamp($2)"
        " AND ($3::text IS NULL OR tenant_id = $3)", window.since, window.until, window.tenant)
    for row in rows:
        message_id = row["detail"]
        read.decided.setdefault(message_id, Decided(
            message_id, row["tenant_id"], f"journey {row['journey_id']} v{row['version']}"
            f" {row['node']}", row["at"], "engine"))
        read.instances[message_id] = (row["tenant_id"], row["instance"], row["node"])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024, **client_security(settings))
    await consumer.start()
    partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
    try:
        async for tp, records in window_batches(consumer, partitions, window.since,
                                                window.until, max_records=20_000):
            for record in records:
                read.records += 1
                try:
                    send = orjson.loads(record.value or b"")
                    message_id, tenant = send["messageId"], send["tenant"]
                    kind = (send.get("origin") or {}).get("kind")
                except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                    continue  # poison: the sender dead-letters it
                if kind == "event" or (window.tenant is not None and tenant != window.tenant):
                    continue  # an event's message: the pKey account has it
                read.on_topic.add(message_id)
                read.decided.setdefault(message_id, Decided(
                    message_id, tenant, tp.topic, record.timestamp / 1000, "topic"))
    finally:
        await consumer.stop()
    read.seconds = time.monotonic() - started
    return read


_BY_TENANT_AND_ID = (" JOIN unnest($1::text[], $2::uuid[]) AS k(tenant_id, {id})"
                     " USING (tenant_id, {id})")


async def _fetch_pairs(connection: asyncpg.Connection, query: str,
                       pairs: Sequence[tuple[str, str]]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start:start + _CHUNK]
        rows.extend(await connection.fetch(
            query, [t for t, _ in chunk], [uuid.UUID(i) for _, i in chunk]))
    return rows


async def read_message_sources(connection: asyncpg.Connection,
                               read: MessagesRead) -> MessageSources:
    """Each stage's record of these messages, in the order they pass them (a message moving
    on while this reads is seen at one stage or the next, never at neither)."""
    pairs = [(d.tenant, d.message_id) for d in read.decided.values()]
    ids = [d.message_id for d in read.decided.values()]
    outbox = {str(row["effect_id"]): row["since"] for row in await _fetch_pairs(
        connection, "SELECT effect_id, extract(epoch FROM created_at)::float8 AS since"
                    " FROM journey_outbox" + _BY_TENANT_AND_ID.format(id="effect_id"), pairs)}
    deferred = {str(row["message_id"]): row["due"] for row in await _fetch_pairs(
        connection, "SELECT message_id, extract(epoch FROM due_at)::float8 AS due"
                    " FROM held_messages" + _BY_TENANT_AND_ID.format(id="message_id"), pairs)}
    retries = {str(row["message_id"]): row["due"] for row in await _fetch_by(
        connection, "SELECT message_id, extract(epoch FROM due_at)::float8 AS due"
                    " FROM send_retries WHERE message_id = ANY($1::uuid[])", ids, uuids=True)}
    ledger = {str(row["message_id"]): LedgerRow(row["state"], row["attempts"], row["channel"])
              for row in await _fetch_by(
                  connection, "SELECT message_id, state, attempts, channel FROM deliveries"
                              " WHERE message_id = ANY($1::uuid[])", ids, uuids=True)}
    excluded = {str(row["message_id"]): row["reason"] or "" for row in await _fetch_pairs(
        connection, "SELECT DISTINCT ON (message_id) message_id, reason FROM message_trace"
                    + _BY_TENANT_AND_ID.format(id="message_id")
                    + " WHERE outcome = 'excluded'", pairs)}
    # The engine's own exclusions (its message not published, no address): a step of the
    # instance at the action's node, no trace row.
    by_node = {(t, i, n): m for m, (t, i, n) in read.instances.items()}
    instance_pairs = sorted({(t, i) for t, i, _ in read.instances.values()})
    for row in await _fetch_pairs(
            connection, "SELECT tenant_id, instance_id::text AS instance, node, detail"
                        " FROM journey_steps" + _BY_TENANT_AND_ID.format(id="instance_id")
                        + " WHERE kind = 'actionExcluded'", instance_pairs):
        message_id = by_node.get((row["tenant_id"], row["instance"], row["node"]))
        if message_id is not None:
            excluded.setdefault(message_id, row["detail"])
    return MessageSources(ledger, frozenset(read.on_topic), outbox, excluded, deferred,
                          retries)


@dataclass
class SinkAnswers:
    handed: Handed | None
    unreachable: list[str]


async def read_handed(urls: Sequence[str], timeout_s: float = 10.0) -> SinkAnswers:
    """Hand-over counts summed over every sink that answers; a channel's ``since`` is the
    latest of its sinks' (from then on, every sink of the channel knows all it got)."""
    if not urls:
        return SinkAnswers(None, [])
    counts: dict[str, int] = {}
    since: dict[str, float] = {}
    unreachable: list[str] = []

    async def one(client: httpx.AsyncClient, url: str) -> None:
        try:
            response = await client.get(f"{url}/handed")
            response.raise_for_status()
        except httpx.HTTPError:
            unreachable.append(url)
            return
        answer = orjson.loads(response.content)
        for message_id, n in answer["counts"].items():
            counts[message_id] = counts.get(message_id, 0) + n
        for channel in answer["channel"].split():
            since[channel] = max(since.get(channel, 0.0), answer["since"])

    async with httpx.AsyncClient(timeout=timeout_s) as client:
        await asyncio.gather(*(one(client, url) for url in urls))
    if len(unreachable) == len(urls):
        return SinkAnswers(None, unreachable)
    # With a sink away, a message it got would look unacknowledged: only duplicates count.
    return SinkAnswers(Handed(counts, {} if unreachable else since), unreachable)


@dataclass
class Reconciled:
    report: Report
    read: Read
    sinks: SinkAnswers
    seconds: float
    messages: MessageReport | None = None  # None: one event asked for (--event)
    messages_read: MessagesRead | None = None
    # What providers reported of the handed-over messages (provider_receipts)
    receipts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.report.clean and (self.messages is None or self.messages.clean)

    def as_json(self, window: Window, grace_s: float, limit: int = 100) -> dict[str, Any]:
        return {
            "window": {"since": window.since, "until": window.until, "tenant": window.tenant,
                       "eventId": window.event_id, "graceS": grace_s},
            **self.report.as_json(limit),
            "messages": None if self.messages is None else self.messages.as_json(limit),
            "sources": {"records": self.read.records, "notAccepted": self.read.not_accepted,
                        "bulkRecords": self.messages_read and self.messages_read.records,
                        "sinksAsked": self.sinks.handed is not None,
                        "sinksUnreachable": self.sinks.unreachable},
            "providerReceipts": self.receipts,
            "clean": self.clean, "seconds": round(self.seconds, 3),
        }


async def reconcile_window(settings: Settings, connection: asyncpg.Connection, window: Window,
                           grace_s: float, progress: Progress | None = None,
                           topics: tuple[Topic, Topic] = (EVENTS_IN, EVENTS_KAFKA),
                           bulk_topics: Sequence[Topic] = BULK_TOPICS) -> Reconciled:
    """Sinks are asked last, once the stages' records are read: a message settled after
    its sink was asked would look unacknowledged, one settled before cannot. Messages
    without a pKey are accounted for too, unless one event is asked for."""
    started = time.monotonic()
    read = await read_accepted(settings, window, await kafka_keys(connection), progress, topics)
    messages_read = None if window.event_id is not None else await read_decided(
        settings, connection, window, bulk_topics)
    now = time.time()
    sources = await read_recorded(connection, list(read.accepted), progress)
    message_sources = None if messages_read is None else await read_message_sources(
        connection, messages_read)
    sinks = await read_handed(sink_urls(settings))
    sources = replace(sources, handed=sinks.handed)
    receipts = provider_receipts(sources.ledger, await read_receipt_kinds(
        connection, window, {m for m, row in sources.ledger.items() if row.state == "sent"}))
    report = reconcile(read.accepted.values(), sources, now, grace_s)
    messages = None
    if messages_read is not None and message_sources is not None:
        messages = reconcile_messages(messages_read.decided.values(),
                                      replace(message_sources, handed=sinks.handed),
                                      now, grace_s)
    return Reconciled(report, read, sinks, time.monotonic() - started, messages,
                      messages_read, receipts)
