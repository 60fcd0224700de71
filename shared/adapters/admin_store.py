"""Event configurations and message versions as the admin API reads and writes them.

Every query is filtered by tenant. Callers hold a transaction around read-check-write
sequences; the row lock taken by ``lock_event`` serialises concurrent admin calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters import held_store
from shared.adapters.profile_store import PROFILE_COLUMNS, as_profile
from shared.domain.events import EventConfig
from shared.domain.exact import read_stored
from shared.domain.lifecycle import EventState, MessageState


@dataclass(frozen=True)
class StoredEvent:
    config: EventConfig
    state: EventState
    updated_at: datetime


@dataclass(frozen=True)
class MessageVersion:
    version: int
    state: MessageState
    template: dict[str, Any]
    updated_at: datetime


def _event(row: asyncpg.Record) -> StoredEvent:
    config = EventConfig.model_validate({**row["definition"], "version": row["version"]})
    return StoredEvent(config, EventState(row["state"]), row["updated_at"])


async def create_event(connection: asyncpg.Connection, tenant: str, config: EventConfig) -> bool:
    """False when the event id is taken in this tenant."""
    status = await connection.execute(
        "INSERT INTO event_configs (tenant_id, event_id, state, definition)"
        " VALUES ($1, $2, 'draft', $3) ON CONFLICT DO NOTHING",
        tenant, config.event_id, config.model_dump(mode="json", exclude={"version"}),
    )
    return bool(status.endswith(" 1"))


async def list_events(connection: asyncpg.Connection, tenant: str) -> list[StoredEvent]:
    rows = await connection.fetch(
        "SELECT definition, version, state, updated_at FROM event_configs"
        " WHERE tenant_id = $1 ORDER BY event_id", tenant,
    )
    return [_event(row) for row in rows]


async def lock_event(
    connection: asyncpg.Connection, tenant: str, event_id: str
) -> StoredEvent | None:
    row = await connection.fetchrow(
        "SELECT definition, version, state, updated_at FROM event_configs"
        " WHERE tenant_id = $1 AND event_id = $2 FOR UPDATE", tenant, event_id,
    )
    return None if row is None else _event(row)


async def update_event(connection: asyncpg.Connection, tenant: str, config: EventConfig) -> None:
    await connection.execute(
        "UPDATE event_configs SET definition = $3, version = version + 1, updated_at = now()"
        " WHERE tenant_id = $1 AND event_id = $2",
        tenant, config.event_id, config.model_dump(mode="json", exclude={"version"}),
    )


async def set_event_state(
    connection: asyncpg.Connection, tenant: str, event_id: str, state: EventState
) -> None:
    await connection.execute(
        "UPDATE event_configs SET state = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND event_id = $2", tenant, event_id, state.value,
    )


async def delete_event(connection: asyncpg.Connection, tenant: str, event_id: str) -> None:
    await connection.execute(
        "DELETE FROM event_configs WHERE tenant_id = $1 AND event_id = $2", tenant, event_id
    )


async def message_versions(
    connection: asyncpg.Connection, tenant: str, event_id: str
) -> list[MessageVersion]:
    """Newest first."""
    rows = await connection.fetch(
        "SELECT version, state, template, updated_at FROM messages"
        " WHERE tenant_id = $1 AND event_id = $2 ORDER BY version DESC", tenant, event_id,
    )
    return [MessageVersion(r["version"], MessageState(r["state"]), r["template"],
                           r["updated_at"]) for r in rows]


async def add_message_version(
    connection: asyncpg.Connection, tenant: str, event_id: str, template: dict[str, Any]
) -> int:
    version: int = await connection.fetchval(
        "INSERT INTO messages (tenant_id, event_id, version, state, template)"
        " SELECT $1, $2, COALESCE(max(version), 0) + 1, 'draft', $3 FROM messages"
        " WHERE tenant_id = $1 AND event_id = $2 RETURNING version",
        tenant, event_id, template,
    )
    return version


async def update_draft(
    connection: asyncpg.Connection, tenant: str, event_id: str, template: dict[str, Any]
) -> None:
    await connection.execute(
        "UPDATE messages SET template = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND event_id = $2 AND state = 'draft'", tenant, event_id, template,
    )


async def set_message_state(
    connection: asyncpg.Connection, tenant: str, event_id: str, version: int,
    state: MessageState,
) -> None:
    await connection.execute(
        "UPDATE messages SET state = $4, updated_at = now()"
        " WHERE tenant_id = $1 AND event_id = $2 AND version = $3",
        tenant, event_id, version, state.value,
    )
    if state is MessageState.PUBLISHED:  # its held events that were parked are due again
        await held_store.unpark(connection, tenant, event_id)


async def find_test_profile(
    connection: asyncpg.Connection, tenant: str, profile_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A test profile and the sample event data it carries."""
    row = await connection.fetchrow(
        f"SELECT {PROFILE_COLUMNS}, sample_ctx::text AS sample_ctx FROM profiles"
        " WHERE tenant_id = $1 AND profile_id = $2 AND is_test", tenant, profile_id,
    )
    if row is None:
        return None
    profile = dict(row)
    text = profile.pop("sample_ctx")  # read exactly: 19.90 renders 19.90, as an event's does
    sample = read_stored(text.encode()) if text else {}
    return as_profile(profile), sample
