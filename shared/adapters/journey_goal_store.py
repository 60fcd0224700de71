"""Goals on a profile condition (issue 13), read set-wise: the versions that have one, and
per goal the instances that entered within its time whose profile now meets the
condition (compiled to SQL over ``profiles`` as an audience's, ``conditions.sql``). The
goal steps are written by ``journey_store.reach_goals``, as an event goal's."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shared.adapters.journey_store import DOCUMENT, of_versions
from shared.domain.conditions.sql import SqlFilter
from shared.domain.journeys.codec import instance_from_json
from shared.domain.journeys.instance import Instance

FIRST_PARAM = 7  # the condition's parameters follow the query's own six


async def versions_with_profile_goals(connection: asyncpg.Connection | asyncpg.Pool
                                      ) -> list[tuple[str, str, int]]:
    """Versions with a goal on a profile condition whose instances may still reach it:
    running, or ended less than 90 days (the longest ``within``) ago."""
    rows = await connection.fetch(
        "SELECT tenant_id, journey_id, version FROM journey_versions"
        " WHERE (state IN ('live', 'paused') OR updated_at > now() - interval '90 days')"
        "   AND jsonb_path_exists(definition, '$.goals[*].condition')"
        " ORDER BY tenant_id, journey_id, version")
    return [(r["tenant_id"], r["journey_id"], r["version"]) for r in rows]


async def meeting(connection: asyncpg.Connection, tenant: str, journey_id: str,
                  version: int, goal_id: str, entered_after: datetime, where: SqlFilter,
                  exits: bool, limit: int) -> list[Instance]:
    """The version's instances that entered after ``entered_after`` and have not reached
    the goal (for an exit goal, also those that reached it and still wait: their exit is
    redone), whose profile meets ``where`` (numbered from FIRST_PARAM)."""
    meets = ("i.entered_at >= $4"
             " AND (($5 AND i.state = 'waiting') OR NOT EXISTS (SELECT 1 FROM journey_steps s"
             "      WHERE s.tenant_id = i.tenant_id AND s.instance_id = i.instance_id"
             "        AND s.kind = 'goal' AND s.node = $6))"
             " AND EXISTS (SELECT 1 FROM profiles WHERE profiles.tenant_id = i.tenant_id"
             f"     AND profiles.profile_id = i.profile_id AND {where.text})")
    rows = await connection.fetch(
        f"SELECT {DOCUMENT} FROM {of_versions(meets, cohorts='c.entered_at >= $4')} i"
        f" ORDER BY i.entered_at LIMIT {int(limit)}",
        tenant, journey_id, version, entered_after, exits, goal_id, *where.params)
    return [instance_from_json(r["document"]) for r in rows]
