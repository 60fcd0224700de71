"""A journey version's conversion counts, from its instances and their steps: the cohort
is the instances that entered in a window; a goal reached is its ``goal`` step (migration
034), a branch the instance's ``split`` step, a message its ``actionSent`` steps, and the
message a conversion is credited to the ``goal`` step's detail (the last one sent). The
entered and split steps of profiles entered set-wise are their cohort's (migration 056),
read through ``journey_instance_steps``."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import asyncpg

from shared.adapters.journey_store import of_versions
from shared.domain.journeys.conversion import GoalCounts, Share

# The cohort: the version's instances that entered in [since, until).
_COHORT_SHAPE = """
WITH cohort AS (
    SELECT instance_id, state FROM {entered} i),
goal AS (
    SELECT s.instance_id, s.detail FROM journey_steps s JOIN cohort c USING (instance_id)
     WHERE s.tenant_id = $1 AND s.journey_id = $2 AND s.version = $3
       AND s.kind = 'goal' AND s.node = $6)
"""
# (its instances entered one by one and those in the cohorts of the window: migration 059)
_COHORT = _COHORT_SHAPE.replace("{entered}", of_versions(
    "i.entered_at >= $4 AND i.entered_at < $5",
    cohorts="c.entered_at >= $4 AND c.entered_at < $5"))


async def goal_counts(connection: asyncpg.Connection, tenant: str, journey_id: str,
                      version: int, goal_id: str, since: datetime, until: datetime
                      ) -> GoalCounts:
    args = (tenant, journey_id, version, since, until, goal_id)
    total = await connection.fetchrow(
        _COHORT + "SELECT count(*) FILTER (WHERE c.state <> 'heldOut') AS entered,"
        " count(g.instance_id) FILTER (WHERE c.state <> 'heldOut') AS converted,"
        " count(*) FILTER (WHERE c.state = 'heldOut') AS held,"
        " count(g.instance_id) FILTER (WHERE c.state = 'heldOut') AS held_converted"
        " FROM cohort c LEFT JOIN goal g USING (instance_id)", *args)
    # Per node: instances that entered it; per split branch: instances that took it.
    steps = await connection.fetch(
        _COHORT + "SELECT s.kind, s.node, s.detail, count(DISTINCT s.instance_id) AS n,"
        " count(DISTINCT g.instance_id) AS converted"
        " FROM journey_instance_steps s JOIN cohort c USING (instance_id)"  # a cohort's too
        " LEFT JOIN goal g USING (instance_id)"
        " WHERE s.tenant_id = $1 AND s.journey_id = $2 AND s.version = $3"
        "   AND s.kind IN ('entered', 'split') AND s.node <> 'entry'"
        " GROUP BY s.kind, s.node, s.detail",
        *args)
    # Per message: its sends, and the conversions credited to it (sent last before).
    messages = await connection.fetch(
        _COHORT + "SELECT s.node, count(*) AS sent,"
        " (SELECT count(*) FROM goal g WHERE g.detail = s.node) AS converted"
        " FROM journey_steps s JOIN cohort c USING (instance_id)"
        " WHERE s.tenant_id = $1 AND s.journey_id = $2 AND s.version = $3"
        "   AND s.kind = 'actionSent' GROUP BY s.node", *args)
    branches: dict[str, dict[str, Share]] = defaultdict(dict)
    nodes: dict[str, Share] = {}
    for row in steps:
        if row["kind"] == "split":
            branches[row["node"]][row["detail"]] = Share(row["n"], row["converted"])
        else:
            nodes[row["node"]] = Share(row["n"], row["converted"])
    return GoalCounts(
        entered=Share(total["entered"], total["converted"]),
        held_out=Share(total["held"], total["held_converted"]),
        branches=dict(branches), nodes=nodes,
        messages={r["node"]: Share(r["sent"], r["converted"]) for r in messages})
