"""Journey instances and their timers in PostgreSQL (migration 024): an instance and the
timers its effects set or cancel are written in one transaction, conditionally on the
token the instance had when it was read. Of two inputs racing for one wait (the awaited
reaction and its timeout), the second write finds a newer token and changes nothing: the
caller drops its input.

Timers are claimed by due time with ``FOR UPDATE SKIP LOCKED`` and deleted in the
claiming transaction, so several claimers never take the same timer; a claimer that dies
before committing leaves it to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters import erasure
from shared.domain.journeys.codec import instance_from_json, instance_to_json
from shared.domain.journeys.instance import CancelTimer, Effect, Instance, SetTimer


@dataclass(frozen=True)
class DueTimer:
    tenant: str
    instance_id: str
    token: int
    due_at: datetime


_COLUMNS = "(tenant_id, instance_id, journey_id, version, profile_id, state, node, token," \
           " document, entered_at)"


def _row(tenant: str, instance: Instance) -> tuple[Any, ...]:
    return (tenant, instance.instance_id, instance.journey_id, instance.version,
            instance.profile_id, instance.state.value, instance.node, instance.token,
            instance_to_json(instance), instance.entered_at)


async def _timers(connection: asyncpg.Connection, tenant: str, instance: Instance,
                  effects: Sequence[Effect]) -> None:
    cancelled = [e.token for e in effects if isinstance(e, CancelTimer)]
    if cancelled:
        await connection.execute(
            "DELETE FROM journey_timers WHERE tenant_id = $1 AND instance_id = $2"
            " AND token = ANY($3::int[])", tenant, instance.instance_id, cancelled)
    await connection.executemany(
        "INSERT INTO journey_timers (tenant_id, instance_id, token, due_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [(tenant, instance.instance_id, e.token, e.due) for e in effects
         if isinstance(e, SetTimer)])


async def create(connection: asyncpg.Connection, tenant: str, instance: Instance,
                 effects: Sequence[Effect]) -> bool:
    """Store a new instance and its timers; False when the profile already has a live
    instance of the journey, or this instance exists (a redelivered entry)."""
    async with connection.transaction():
        status = await connection.execute(
            f"INSERT INTO journey_instances {_COLUMNS}"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            *_row(tenant, instance))
        if status.endswith(" 0"):
            return False
        await _timers(connection, tenant, instance, effects)
        return True


async def save(connection: asyncpg.Connection, tenant: str, read_token: int,
               instance: Instance, effects: Sequence[Effect]) -> bool:
    """Write the advanced instance and its timers if it still has the token it was read
    with and is waiting; False (nothing written) when another input got there first."""
    async with connection.transaction():
        status = await connection.execute(
            "UPDATE journey_instances SET state = $3, node = $4, token = $5, document = $6,"
            " updated_at = now()"
            " WHERE tenant_id = $1 AND instance_id = $2 AND token = $7 AND state = 'waiting'",
            tenant, instance.instance_id, instance.state.value, instance.node,
            instance.token, instance_to_json(instance), read_token)
        if status.endswith(" 0"):
            return False
        await _timers(connection, tenant, instance, effects)
        return True


async def load(connection: asyncpg.Connection, tenant: str, instance_id: str
               ) -> Instance | None:
    document = await connection.fetchval(
        "SELECT document FROM journey_instances WHERE tenant_id = $1 AND instance_id = $2",
        tenant, instance_id)
    return None if document is None else instance_from_json(document)


async def live(connection: asyncpg.Connection, tenant: str, journey_id: str,
               profile_id: str) -> Instance | None:
    """The profile's waiting instance of the journey, if any."""
    document = await connection.fetchval(
        "SELECT document FROM journey_instances WHERE tenant_id = $1 AND journey_id = $2"
        " AND profile_id = $3 AND state = 'waiting'", tenant, journey_id, profile_id)
    return None if document is None else instance_from_json(document)


async def claim_due(connection: asyncpg.Connection, now: datetime, limit: int
                    ) -> list[DueTimer]:
    """Take up to ``limit`` timers due by ``now``, earliest first, deleting them: call in a
    transaction that also hands them on (the caller's), so a crash gives them back."""
    rows = await connection.fetch(
        "DELETE FROM journey_timers t USING ("
        "  SELECT tenant_id, instance_id, token FROM journey_timers WHERE due_at <= $1"
        "   ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) d"
        " WHERE t.tenant_id = d.tenant_id AND t.instance_id = d.instance_id"
        "   AND t.token = d.token"
        " RETURNING t.tenant_id, t.instance_id, t.token, t.due_at", now, limit)
    return sorted((DueTimer(r["tenant_id"], str(r["instance_id"]), r["token"], r["due_at"])
                   for r in rows), key=lambda t: t.due_at)


# --- erasure: instances name the profile and keep the data of its reactions and events ---

async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    ids = await connection.fetch(
        "DELETE FROM journey_instances WHERE tenant_id = $1 AND profile_id = $2"
        " RETURNING instance_id", tenant, profile_id)
    if ids:
        await connection.execute(
            "DELETE FROM journey_timers WHERE tenant_id = $1 AND instance_id = ANY($2::uuid[])",
            tenant, [r["instance_id"] for r in ids])
    return {"journeyInstances": len(ids)}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, Any]:
    rows = await connection.fetch(
        "SELECT document FROM journey_instances WHERE tenant_id = $1 AND profile_id = $2"
        " ORDER BY entered_at", tenant, profile_id)
    return {"journeyInstances": [r["document"] for r in rows]}


erasure.register(erasure.PersonalData("journeyInstances", _erase, _export))
