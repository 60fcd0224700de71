"""Journey versions in PostgreSQL (migration 028): a published (or test-run) journey's
frozen definition, its state, and its audience entry's progress.

The engine reads versions here; the admin API creates them and moves their state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.adapters import journey_store
from shared.adapters.journey_store import ANY_STATE, DOCUMENT, DOCUMENT_OF, WAITING

_COLUMNS = ("tenant_id, journey_id, version, mode, state, definition, speed, test_profiles,"
            " entry_after, entry_done, entry_started, published_at, updated_at")


async def get_version(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                      journey_id: str, version: int) -> dict[str, Any] | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM journey_versions"
        " WHERE tenant_id = $1 AND journey_id = $2 AND version = $3",
        tenant, journey_id, version)
    return None if row is None else dict(row)


async def states(connection: asyncpg.Connection | asyncpg.Pool,
                 keys: set[tuple[str, str, int]]) -> dict[tuple[str, str, int], str]:
    """The state of each version (absent: no such version)."""
    if not keys:
        return {}
    ordered = sorted(keys)
    rows = await connection.fetch(
        "SELECT v.tenant_id, v.journey_id, v.version, v.state FROM journey_versions v"
        " JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(t, j, n)"
        "   ON v.tenant_id = k.t AND v.journey_id = k.j AND v.version = k.n",
        [k[0] for k in ordered], [k[1] for k in ordered], [k[2] for k in ordered])
    return {(r["tenant_id"], r["journey_id"], r["version"]): r["state"] for r in rows}


async def entering(connection: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    """Live versions whose entry still has profiles to read (an audience or a test run's
    chosen test profiles), oldest first; a recurring one once its next round is due."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS}, entry_round FROM journey_versions WHERE state = 'live'"
        " AND NOT entry_done AND (next_entry_at IS NULL OR next_entry_at <= now())"
        # A published event entry's profiles enter by their events: nothing to read.
        " AND (mode = 'test' OR definition->'entry'->>'type' <> 'event')"
        " ORDER BY published_at")
    return [dict(r) for r in rows]


async def next_round(connection: asyncpg.Connection, tenant: str, journey_id: str,
                     version: int, due: datetime) -> None:
    """A recurring entry's read is done: the next round reads the audience from its start
    at ``due``."""
    await connection.execute(
        "UPDATE journey_versions SET entry_after = NULL, entry_round = entry_round + 1,"
        " next_entry_at = $4, updated_at = now()"
        " WHERE tenant_id = $1 AND journey_id = $2 AND version = $3",
        tenant, journey_id, version, due)


async def save_entry_progress(connection: asyncpg.Connection, tenant: str, journey_id: str,
                              version: int, after: str | None, done: bool) -> None:
    await connection.execute(
        "UPDATE journey_versions SET entry_after = $4, entry_done = $5,"
        " entry_started = COALESCE(entry_started, now()), updated_at = now()"
        " WHERE tenant_id = $1 AND journey_id = $2 AND version = $3",
        tenant, journey_id, version, after, done)


# --- the lifecycle, as the admin API moves it (publish, test runs, pause, resume, stop) ---
# Every move first locks the journey's row (``lock_journey``), so two moves of one journey
# (two publishes numbering versions, a pause racing a stop) happen one after the other.

# the instance's document (its cohort's, if it has none of its own), stopped
_STOPPED_DOCUMENT = (f"{DOCUMENT_OF} || jsonb_build_object('state', 'stopped', 'reason', $4::text,"
                     " 'waitingSince', NULL, 'seen', '[]'::jsonb)")


async def lock_journey(connection: asyncpg.Connection, tenant: str, journey_id: str,
                       lock: bool = True) -> dict[str, Any] | None:
    """The journey's row (draft, state), locked until the caller's transaction ends (a
    read that moves nothing need not: ``lock=False``)."""
    row = await connection.fetchrow(
        "SELECT journey_id, name, state, draft FROM journeys"
        f" WHERE tenant_id = $1 AND journey_id = $2{' FOR UPDATE' if lock else ''}",
        tenant, journey_id)
    return None if row is None else dict(row)


async def create_version(connection: asyncpg.Connection, tenant: str, journey_id: str, *,
                         mode: str, definition: dict[str, Any], speed: float = 1.0,
                         test_profiles: list[str] | None = None) -> dict[str, Any]:
    """Version N+1 (live and test versions share the numbers), state live. Publishing a
    live one closes the entry of the older live ones: they take no more profiles and end
    (finished) once their instances have. Call with the journey locked."""
    if mode == "live":
        await connection.execute(
            "UPDATE journey_versions SET entry_done = true, updated_at = now()"
            " WHERE tenant_id = $1 AND journey_id = $2 AND mode = 'live'"
            " AND state IN ('live', 'paused') AND NOT entry_done", tenant, journey_id)
        await set_journey_state(connection, tenant, journey_id, "live")
    row = await connection.fetchrow(
        "INSERT INTO journey_versions (tenant_id, journey_id, version, mode, state, definition,"
        " speed, test_profiles)"
        " SELECT $1, $2, COALESCE(max(version), 0) + 1, $3, 'live', $4, $5, $6"
        "   FROM journey_versions WHERE tenant_id = $1 AND journey_id = $2"
        f" RETURNING {_COLUMNS}",
        tenant, journey_id, mode, definition, speed, test_profiles or [])
    return dict(row)


async def set_journey_state(connection: asyncpg.Connection, tenant: str, journey_id: str,
                            state: str) -> None:
    await connection.execute(
        "UPDATE journeys SET state = $3, updated_at = now()"
        " WHERE tenant_id = $1 AND journey_id = $2", tenant, journey_id, state)


async def settle_finished(connection: asyncpg.Connection, tenant: str, journey_id: str
                          ) -> None:
    """A live version whose entry is done and on which nothing waits any more is
    finished; a journey whose live-mode versions all ended reads finished too."""
    waiting = journey_store.of_versions(WAITING, tenant="v.tenant_id",
                                        journey="v.journey_id", version="= v.version")
    await connection.execute(
        "UPDATE journey_versions v SET state = 'finished', updated_at = now()"
        " WHERE v.tenant_id = $1 AND v.journey_id = $2 AND v.state = 'live' AND v.entry_done"
        f" AND NOT EXISTS (SELECT 1 FROM {waiting} i)", tenant, journey_id)
    await connection.execute(
        "UPDATE journeys j SET state = 'finished', updated_at = now()"
        " WHERE j.tenant_id = $1 AND j.journey_id = $2 AND j.state = 'live'"
        " AND NOT EXISTS (SELECT 1 FROM journey_versions v WHERE v.tenant_id = j.tenant_id"
        "   AND v.journey_id = j.journey_id AND v.mode = 'live'"
        "   AND v.state IN ('live', 'paused'))", tenant, journey_id)


async def versions_of(connection: asyncpg.Connection, tenant: str, journey_id: str
                      ) -> list[dict[str, Any]]:
    """The journey's versions, newest first, each with ``waiting`` (its instances waiting
    now) and ``instances`` (how many entered it)."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM journey_versions WHERE tenant_id = $1 AND journey_id = $2"
        " ORDER BY version DESC", tenant, journey_id)
    counts = await connection.fetch(
        "SELECT version, count(*) AS instances,"
        " count(*) FILTER (WHERE state = 'waiting') AS waiting"
        f" FROM {journey_store.of_versions('TRUE', version='IS NOT NULL')} i"
        " GROUP BY version", tenant, journey_id)
    by_version = {r["version"]: r for r in counts}
    return [{**dict(r), "waiting": by_version[r["version"]]["waiting"]
             if r["version"] in by_version else 0,
             "instances": by_version[r["version"]]["instances"]
             if r["version"] in by_version else 0} for r in rows]


async def move_versions(connection: asyncpg.Connection, tenant: str, journey_id: str,
                        mode: str, from_states: list[str], to_state: str) -> list[int]:
    """Set the journey's versions of ``mode`` in one of ``from_states`` to ``to_state``;
    the versions moved."""
    # A version going from paused to live is marked resumed: the engine then looks at the
    # inputs its instances kept while paused.
    rows = await connection.fetch(
        "UPDATE journey_versions SET state = $5, updated_at = now(),"
        " resumed_at = CASE WHEN state = 'paused' AND $5 = 'live' THEN now()"
        "                   ELSE resumed_at END"
        " WHERE tenant_id = $1 AND journey_id = $2 AND mode = $3 AND state = ANY($4::text[])"
        " RETURNING version", tenant, journey_id, mode, from_states, to_state)
    moved = sorted(r["version"] for r in rows)
    if moved and to_state == "live":  # its timers that came due while paused fire now
        await journey_store.release_held(connection, tenant, journey_id, moved)
    return moved


async def stop_instances(connection: asyncpg.Connection, tenant: str, journey_id: str,
                         versions: list[int], reason: str, profile_id: str | None = None
                         ) -> list[dict[str, Any]]:
    """End the waiting instances of ``versions`` (or only ``profile_id``'s) ``stopped`` in
    bulk, as ``advance`` does on a Stop (state, reason, no waiting moment, nothing kept):
    the instance row and its document, its timers deleted, one ``stopped`` step each at
    the node it waited on. An engine racing it finds the instance no longer waiting (its
    conditional write changes nothing). The instances stopped (id, profile, version, node)."""
    # one profile's by the live index; all of the versions' by their own rows and cohorts
    which = (" AND i.profile_id = $5" if profile_id is not None else
             " AND i.instance_id IN (SELECT w.instance_id FROM"
             f" {journey_store.of_versions(WAITING, version='= ANY($3::int[])')} w)")
    stopped = await connection.fetch(
        f"UPDATE journey_instances i SET state = 'stopped', document = {_STOPPED_DOCUMENT},"
        " updated_at = now()"
        " WHERE i.tenant_id = $1 AND i.journey_id = $2 AND i.version = ANY($3::int[])"
        f" AND i.state = 'waiting'{which}"
        " RETURNING instance_id, profile_id, version, node",
        tenant, journey_id, versions, reason, *([] if profile_id is None else [profile_id]))
    if not stopped:
        return []
    ids = [r["instance_id"] for r in stopped]
    # A statement of its own (a new snapshot): also the timers an engine's move set just
    # before the UPDATE above took the row.
    for table in ("journey_timers", "journey_timers_held"):  # held: a paused version's
        await connection.execute(
            f"DELETE FROM {table} WHERE tenant_id = $1 AND instance_id = ANY($2::uuid[])",
            tenant, ids)
    await connection.execute(
        "INSERT INTO journey_steps (tenant_id, journey_id, version, instance_id, profile_id,"
        " at, kind, node, detail)"
        " SELECT $1, $2, s.version, s.instance_id, s.profile_id, now(), 'stopped', s.node, $3"
        "   FROM unnest($4::int[], $5::uuid[], $6::text[], $7::text[])"
        "     AS s(version, instance_id, profile_id, node)",
        tenant, journey_id, reason, [r["version"] for r in stopped], ids,
        [r["profile_id"] for r in stopped], [r["node"] for r in stopped])
    return [dict(r) for r in stopped]


# A version's steps by node and ``by``: a profile's own, and its cohort's (one row a
# cohort and step, with its members counted: migration 056), by their counting indexes.
_COUNTED = """
SELECT node, {by}, sum(n)::bigint AS n FROM (
  SELECT node, {by}, count(*) AS n FROM journey_steps
   WHERE tenant_id = $1 AND journey_id = $2 AND version = $3{where} GROUP BY node, {by}
  UNION ALL
  SELECT node, {by}, sum(members) AS n FROM journey_cohort_steps
   WHERE tenant_id = $1 AND journey_id = $2 AND version = $3{where} GROUP BY node, {by}
) counted GROUP BY node, {by}"""


async def node_counts(connection: asyncpg.Connection, tenant: str, journey_id: str,
                      version: int) -> tuple[dict[tuple[str, str], int],
                                             dict[tuple[str, str], int], dict[str, int]]:
    """A version's steps counted by (node, kind) (index journey_steps_counts), the
    details of its exclusions and splits by (node, rule or branch), and its waiting
    instances by node."""
    steps = await connection.fetch(_COUNTED.format(by="kind", where=""),
                                   tenant, journey_id, version)
    excluded = await connection.fetch(
        _COUNTED.format(by="detail", where=" AND kind IN ('actionExcluded', 'split')"),
        tenant, journey_id, version)
    waiting = await connection.fetch(
        f"SELECT node, count(*) AS n FROM {journey_store.of_versions(WAITING)} i"
        " GROUP BY node", tenant, journey_id, version)
    return ({(r["node"], r["kind"]): r["n"] for r in steps},
            {(r["node"], r["detail"]): r["n"] for r in excluded},
            {r["node"]: r["n"] for r in waiting})


async def instances_of(connection: asyncpg.Connection, tenant: str, journey_id: str,
                       profile_id: str) -> list[dict[str, Any]]:
    """A profile's instances of the journey, oldest first, each with its version's mode
    and its ``steps`` in the order they were written."""
    rows = await connection.fetch(
        f"SELECT i.instance_id, i.version, i.state, i.node, {DOCUMENT}, i.entered_at,"
        " i.updated_at, v.mode FROM journey_instances i"
        " LEFT JOIN journey_versions v ON v.tenant_id = i.tenant_id"
        "  AND v.journey_id = i.journey_id AND v.version = i.version"
        " WHERE i.tenant_id = $1 AND i.profile_id = $2 AND i.journey_id = $3"
        f" AND {ANY_STATE} ORDER BY i.entered_at, i.instance_id", tenant, profile_id,
        journey_id)
    if not rows:
        return []
    steps = await connection.fetch(
        "SELECT instance_id, at, kind, node, detail FROM journey_instance_steps"
        " WHERE tenant_id = $1 AND instance_id = ANY($2::uuid[]) ORDER BY id",
        tenant, [r["instance_id"] for r in rows])
    by_instance: dict[Any, list[dict[str, Any]]] = {}
    for step in steps:
        by_instance.setdefault(step["instance_id"], []).append(
            {k: step[k] for k in ("at", "kind", "node", "detail")})
    return [{**dict(r), "steps": by_instance.get(r["instance_id"], [])} for r in rows]


async def test_profiles_among(connection: asyncpg.Connection, tenant: str,
                              profile_ids: list[str]) -> dict[str, bool]:
    """Of ``profile_ids``, those that exist, each with whether it is a test profile."""
    rows = await connection.fetch(
        "SELECT profile_id, is_test FROM profiles WHERE tenant_id = $1"
        " AND profile_id = ANY($2::text[])", tenant, profile_ids)
    return {r["profile_id"]: r["is_test"] for r in rows}


async def waiting_instances(connection: asyncpg.Connection, tenant: str, journey_id: str,
                            profile_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The waiting instance (document, version, its version's mode) of each of
    ``profile_ids`` that has one in the journey."""
    rows = await connection.fetch(
        f"SELECT i.profile_id, i.version, {DOCUMENT}, v.mode, v.definition"
        " FROM journey_instances i JOIN journey_versions v ON v.tenant_id = i.tenant_id"
        "  AND v.journey_id = i.journey_id AND v.version = i.version"
        " WHERE i.tenant_id = $1 AND i.journey_id = $2 AND i.profile_id = ANY($3::text[])"
        " AND i.state = 'waiting'", tenant, journey_id, profile_ids)
    return {r["profile_id"]: dict(r) for r in rows}


async def event_entries(connection: asyncpg.Connection | asyncpg.Pool
                        ) -> list[dict[str, Any]]:
    """The versions profiles enter by an event: live, published (not test runs), taking
    entries (an older version of a republished journey takes none), of an event entry."""
    rows = await connection.fetch(
        "SELECT tenant_id, journey_id, version, definition->'entry' AS entry"
        " FROM journey_versions WHERE state = 'live' AND mode = 'live' AND NOT entry_done"
        " AND definition->'entry'->>'type' = 'event'")
    return [dict(r) for r in rows]


async def resumed(connection: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    """Live versions resumed since the engine last looked."""
    rows = await connection.fetch(
        "SELECT tenant_id, journey_id, version, resumed_at FROM journey_versions"
        " WHERE state = 'live' AND resumed_at IS NOT NULL")
    return [dict(r) for r in rows]


async def resume_handled(connection: asyncpg.Connection | asyncpg.Pool, tenant: str,
                         journey_id: str, version: int, resumed_at: Any) -> None:
    """Clear the mark, unless the version was paused and resumed again meanwhile."""
    await connection.execute(
        "UPDATE journey_versions SET resumed_at = NULL WHERE tenant_id = $1"
        " AND journey_id = $2 AND version = $3 AND resumed_at = $4",
        tenant, journey_id, version, resumed_at)
