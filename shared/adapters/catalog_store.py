"""Published event configurations and their messages, cached for a short time.

Both the gateway and the processor read them per event; a short TTL keeps that to one
query per event type every few seconds while publishing still takes effect quickly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import asyncpg

from shared.adapters.postgres import Listener
from shared.domain.events import EventConfig, is_configured_id, is_journey_message_id
from shared.domain.lifecycle import MessageState, PublishedEvent
from shared.single_flight import SingleFlight

_LOAD = """
SELECT c.definition, c.version,
       m.version AS message_version, m.state AS message_state, m.template
  FROM event_configs c
  LEFT JOIN LATERAL (
        SELECT version, state, template FROM messages
         WHERE tenant_id = c.tenant_id AND event_id = c.event_id
           AND state IN ('published', 'paused')
         ORDER BY version DESC LIMIT 1) m ON true
 WHERE c.tenant_id = $1 AND c.event_id = $2 AND c.state = 'published'
"""


async def load_published(pool: asyncpg.Pool, tenant: str, event_id: str) -> PublishedEvent | None:
    row = await pool.fetchrow(_LOAD, tenant, event_id)
    if row is None:
        return None
    config = EventConfig.model_validate({**row["definition"], "version": row["version"]})
    state = row["message_state"]
    return PublishedEvent(config, row["message_version"],
                          MessageState(state) if state else None, row["template"])


async def load_message_template(pool: asyncpg.Pool, tenant: str, event_id: str, version: int
                                ) -> dict[str, Any] | None:
    """A message version's template, as published (published versions never change)."""
    template: dict[str, Any] | None = await pool.fetchval(
        "SELECT template FROM messages WHERE tenant_id = $1 AND event_id = $2 AND version = $3"
        " AND state IN ('published', 'paused', 'superseded')", tenant, event_id, version)
    return template


CHANNEL = "parcours_catalog"  # see migration 004


class CatalogCache:
    """Entries live ``ttl_s`` at most, and are dropped as soon as PostgreSQL announces a
    change (``listen``); the TTL is the safety net if that connection is lost. It serves
    transactional events (EVT…) and journey messages (JMS…), whose templates the senders
    render alike; a string that can be neither is answered None without a query; at most
    ``MAX_ENTRIES`` are kept, so calls to made-up event ids cannot grow it without bound."""

    MAX_ENTRIES = 10_000

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._entries: dict[tuple[str, str], tuple[float, PublishedEvent | None]] = {}
        self._listener: Listener | None = None
        # One read per event at a time: a sender's batch asks from every message in one
        # turn of the event loop.
        self._reading: SingleFlight[tuple[str, str], PublishedEvent | None] = SingleFlight()

    async def listen(self, dsn: str) -> None:
        self._listener = await Listener.open(dsn, CHANNEL, self._changed, self._missed)

    async def _missed(self) -> None:
        self._entries = {}
        self._reading.clear()

    def _changed(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        tenant, _, event_id = payload.partition("/")
        self._entries.pop((tenant, event_id), None)
        self._reading.forget((tenant, event_id))

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    async def get(self, tenant: str, event_id: str) -> PublishedEvent | None:
        if not is_configured_id(event_id):
            return None
        now = time.monotonic()
        hit = self._entries.get((tenant, event_id))
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        key = (tenant, event_id)
        return await self._reading.run(key, lambda: self._read(key, now))

    async def _read(self, key: tuple[str, str], now: float) -> PublishedEvent | None:
        tenant, event_id = key
        published = await load_published(self._pool, tenant, event_id)
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self._ttl_s}
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
        self._entries[(tenant, event_id)] = (now, published)
        return published


async def save_event(
    pool: asyncpg.Pool, tenant: str, config: EventConfig, template: dict[str, Any]
) -> None:
    """Publish an event configuration with a published message (demo and tests for now)."""
    definition = config.model_dump(mode="json", exclude={"version"})
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO event_configs (tenant_id, event_id, state, definition)"
            " VALUES ($1, $2, 'published', $3)"
            " ON CONFLICT (tenant_id, event_id) DO UPDATE SET definition = EXCLUDED.definition,"
            " state = 'published', version = event_configs.version + 1, updated_at = now()",
            tenant, config.event_id, definition,
        )
        await connection.execute(
            "INSERT INTO messages (tenant_id, event_id, version, state, template)"
            " VALUES ($1, $2, 1, 'published', $3)"
            " ON CONFLICT (tenant_id, event_id, version) DO UPDATE"
            " SET template = EXCLUDED.template, state = 'published', updated_at = now()",
            tenant, config.event_id, template,
        )


async def journey_messages(connection: asyncpg.Connection, tenant: str, ids: Iterable[str]
                           ) -> dict[str, tuple[str, bool]]:
    """The tenant's journey messages (JMS…) among ``ids``: each one's channel, and whether
    it can be sent: its configuration published and a version of its message live
    (published or paused). Ids that are not journey messages' are not looked up."""
    wanted = sorted({i for i in ids if is_journey_message_id(i)})
    if not wanted:
        return {}
    rows = await connection.fetch(
        "SELECT c.event_id, c.definition->>'channel' AS channel, c.state = 'published' AND"
        "       EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = c.tenant_id"
        "               AND m.event_id = c.event_id AND m.state IN ('published', 'paused'))"
        "         AS live"
        "  FROM event_configs c WHERE c.tenant_id = $1 AND c.event_id = ANY($2::text[])",
        tenant, wanted)
    return {row["event_id"]: (row["channel"], row["live"]) for row in rows}


async def event_configured(pool: asyncpg.Pool, tenant: str, event_id: str) -> bool:
    """Whether the tenant has configured this event, in any state (statuses of events
    since unpublished stay readable)."""
    return bool(await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM event_configs WHERE tenant_id = $1 AND event_id = $2)",
        tenant, event_id))
