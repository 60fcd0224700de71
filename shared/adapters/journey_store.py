"""Journey instances and their timers in PostgreSQL (migration 024): an instance and the
timers its effects set or cancel are written in one transaction, conditionally on the
token the instance had when it was read. Of two inputs racing for one wait (the awaited
reaction and its timeout), the second write finds a newer token and changes nothing: the
caller drops its input.

The same transaction writes the move's steps (``journey_steps``: the per-node counts and
the instance's history) and its effects on the world (``journey_outbox``: messages,
profile updates, HTTP calls), which the engine applies after the commit and deletes once
done; a crash in between leaves them for the next engine, and each is idempotent on its
id. So an input's effects happen if and only if its move was stored.

Timers are claimed by due time with ``FOR UPDATE SKIP LOCKED`` and deleted in the
claiming transaction, so several claimers never take the same timer; a claimer that dies
before committing leaves it to the next.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

# asyncpg's own UUID (what it reads uuid columns as): made from 16 bytes, encoded as they
# are; a str is parsed and checked against two abcs first (0.42 against 0.98 µs an id)
from asyncpg.pgproto.pgproto import UUID

from shared.adapters import erasure
from shared.domain.journeys.codec import instance_from_json, instance_to_json
from shared.domain.journeys.entering import Chunk
from shared.domain.journeys.instance import (
    CallHttp,
    CancelTimer,
    Effect,
    Instance,
    Send,
    SetTimer,
    Step,
    UpdateProfile,
)

# An instance's document, for a query of ``journey_instances i``: its own, or (entered
# set-wise and not moved since) its cohort's with its ids added (migration 054).
DOCUMENT_OF = (
    "COALESCE(i.document, (SELECT c.document || jsonb_build_object('profileId', i.profile_id,"
    " 'instanceId', i.instance_id::text) FROM journey_cohorts c"
    " WHERE c.tenant_id = i.tenant_id AND c.cohort_id = i.cohort_id))")
DOCUMENT = f"{DOCUMENT_OF} AS document"  # as a selected column

# A profile's instances in any state, for a query by (tenant, profile) of
# ``journey_instances i``: the waiting ones are in the live index, the others in the
# ended index (migration 058), neither has them all, and a query that does not say so
# reads the table.
ANY_STATE = "(i.state = 'waiting' OR i.state <> 'waiting')"


def of_versions(where: str, *, tenant: str = "$1", journey: str = "$2",
                version: str = "= $3", cohorts: str = "TRUE") -> str:
    """A journey's instances of the versions ``version`` picks that meet ``where`` (on
    ``i``), as a subquery to name ``i``: those entered one by one through the version's
    own indexes (node, entered at), those entered in a cohort through the version's
    cohorts that meet ``cohorts`` (on ``c``), each cohort's members by its index
    (migrations 057, 059). Neither side alone has them all."""
    return (
        "(SELECT i.* FROM journey_instances i"
        f" WHERE i.tenant_id = {tenant} AND i.journey_id = {journey} AND i.version {version}"
        f"   AND i.cohort_id IS NULL AND {where}"
        " UNION ALL SELECT i.* FROM journey_cohorts c JOIN journey_instances i"
        "   ON i.cohort_id = c.cohort_id AND i.cohort_id IS NOT NULL"
        f" WHERE c.tenant_id = {tenant} AND c.journey_id = {journey} AND c.version {version}"
        f"   AND {cohorts} AND i.tenant_id = {tenant} AND {where})")


@dataclass(frozen=True)
class DueTimer:
    tenant: str
    instance_id: str
    token: int
    due_at: datetime


@dataclass(frozen=True)
class Claimed:
    timers: list[DueTimer]  # of live versions' instances, earliest first: to fire
    taken: int  # timers taken in all, those set aside included (the limit: more are due)


@dataclass(frozen=True)
class Outboxed:
    """An effect waiting in the outbox to be applied."""
    tenant: str
    effect_id: str
    instance_id: str
    kind: str  # send, updateProfile, http
    body: dict[str, Any]


@dataclass(frozen=True)
class Written:
    """A stored move, and the effects it left in the outbox (always truthy)."""
    outbox: list[Outboxed] = field(default_factory=list)


def outbox_entries(tenant: str, instance: Instance, effects: Sequence[Effect]
                   ) -> list[Outboxed]:
    """The effects that act on the world, with what applying them needs of the instance
    (its journey, version, profile, and the data of the waits resolved so far)."""
    base = {"journeyId": instance.journey_id, "version": instance.version,
            "profileId": instance.profile_id, "instanceId": instance.instance_id,
            "waits": {k: dict(v) for k, v in instance.waits.items()}}
    out = []
    for effect in effects:
        if isinstance(effect, Send):
            out.append(Outboxed(tenant, effect.message_id, instance.instance_id, "send", {
                **base, "node": effect.node, "channel": effect.channel,
                "message": effect.message, "messageId": effect.message_id}))
        elif isinstance(effect, UpdateProfile):
            out.append(Outboxed(tenant, effect.write_id, instance.instance_id,
                                "updateProfile", {**base, "node": effect.node,
                                                  "values": dict(effect.values)}))
        elif isinstance(effect, CallHttp):
            out.append(Outboxed(tenant, effect.call_id, instance.instance_id, "http", {
                **base, "node": effect.node, "url": effect.url, "method": effect.method,
                "timeoutMs": effect.timeout_ms, "callId": effect.call_id}))
    return out


_STEPS = ("INSERT INTO journey_steps (tenant_id, journey_id, version, instance_id, profile_id,"
          " at, kind, node, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")


async def write_steps(connection: asyncpg.Connection, tenant: str, instance: Instance,
                      steps: Sequence[Step], at: datetime) -> None:
    await connection.executemany(_STEPS, [
        (tenant, instance.journey_id, instance.version, instance.instance_id,
         instance.profile_id, at, s.kind, s.node, s.detail) for s in steps])


async def write_effect_steps(connection: asyncpg.Connection,
                             steps: Sequence[tuple[Outboxed, Step]], at: datetime) -> None:
    """Steps of applied effects (an action excluded, a profile updated, a call made)."""
    await connection.executemany(_STEPS, [
        (o.tenant, o.body["journeyId"], o.body["version"], o.instance_id,
         o.body["profileId"], at, s.kind, s.node, s.detail) for o, s in steps])


async def reach_goals(connection: asyncpg.Connection, tenant: str,
                      reached: Sequence[tuple[Instance, str, str]], at: datetime
                      ) -> list[tuple[str, str]]:
    """Goal steps ``(instance, goal id, last message node)``, each at most once per
    instance and goal (migration 034); the (journey id, goal id) of those new."""
    if not reached:
        return []
    rows = await connection.fetch(
        "INSERT INTO journey_steps (tenant_id, journey_id, version, instance_id, profile_id,"
        " at, kind, node, detail)"
        " SELECT $1, j, v, i, p, $2, 'goal', g, d FROM unnest($3::text[], $4::int[],"
        "   $5::uuid[], $6::text[], $7::text[], $8::text[]) AS r(j, v, i, p, g, d)"
        " ON CONFLICT (tenant_id, instance_id, node) WHERE kind = 'goal' DO NOTHING"
        " RETURNING journey_id, node",
        tenant, at, [i.journey_id for i, _, _ in reached], [i.version for i, _, _ in reached],
        [i.instance_id for i, _, _ in reached], [i.profile_id for i, _, _ in reached],
        [g for _, g, _ in reached], [d for _, _, d in reached])
    return [(r["journey_id"], r["node"]) for r in rows]


async def last_held(connection: asyncpg.Connection, tenant: str, journey_id: str,
                    version: int) -> datetime | None:
    """When the last profile held at the version's entry (its event entry's rate) is due."""
    due: datetime | None = await connection.fetchval(
        "SELECT max(t.due_at) FROM journey_instances i JOIN journey_timers t"
        "   ON t.tenant_id = i.tenant_id AND t.instance_id = i.instance_id"
        " WHERE i.tenant_id = $1 AND i.journey_id = $2 AND i.version = $3"
        "   AND i.node = 'entry' AND i.state = 'waiting'"
        # a cohort's members never wait at the entry: set-wise, they enter at a wait
        "   AND i.cohort_id IS NULL", tenant, journey_id, version)
    return due


async def recent_of(connection: asyncpg.Connection, keys: Sequence[tuple[str, str]],
                    since: datetime) -> dict[tuple[str, str], list[Instance]]:
    """The instances of each (tenant, profile id) that entered after ``since``, in any
    state (a goal may be reached after the journey ended)."""
    return await _instances_of(connection, keys, "i.entered_at > $3", since)


WAITING = "i.state = 'waiting'"


async def _instances_of(connection: asyncpg.Connection, keys: Sequence[tuple[str, str]],
                        where: str, *args: Any) -> dict[tuple[str, str], list[Instance]]:
    """The instances of each (tenant, profile id) that ``where`` keeps, oldest entry
    first (``args``: its parameters, from $3)."""
    found: dict[tuple[str, str], list[Instance]] = {key: [] for key in keys}
    if not keys:
        return found
    # each state's instances by its own index (migration 058); a join does not make a
    # BitmapOr of ANY_STATE, so a UNION of the two (the waiting ones only, when that is
    # all ``where`` keeps)
    sides = [WAITING] if where == WAITING else [WAITING, "i.state <> 'waiting'"]
    union = " UNION ALL ".join(
        "SELECT i.* FROM journey_instances i"
        " JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, profile_id)"
        f"  ON i.tenant_id = k.tenant_id AND i.profile_id = k.profile_id WHERE {side}"
        for side in sides)
    rows = await connection.fetch(
        f"SELECT i.tenant_id, {DOCUMENT} FROM ({union}) i"
        f" WHERE {where} ORDER BY i.entered_at",
        [t for t, _ in keys], [p for _, p in keys], *args)
    for row in rows:
        instance = instance_from_json(row["document"])
        found.setdefault((row["tenant_id"], instance.profile_id), []).append(instance)
    return found


_COLUMNS = "(tenant_id, instance_id, journey_id, version, profile_id, state, node, token," \
           " document, entered_at)"


def _row(tenant: str, instance: Instance) -> tuple[Any, ...]:
    return (tenant, instance.instance_id, instance.journey_id, instance.version,
            instance.profile_id, instance.state.value, instance.node, instance.token,
            instance_to_json(instance), instance.entered_at)


async def _effects(connection: asyncpg.Connection, tenant: str, instance: Instance,
                   effects: Sequence[Effect], at: datetime | None) -> Written:
    """Timers, steps and the outbox of a move, in the caller's transaction."""
    await _timers(connection, tenant, instance, effects)
    await write_steps(connection, tenant, instance,
                      [e for e in effects if isinstance(e, Step)], at or datetime.now(UTC))
    outbox = outbox_entries(tenant, instance, effects)
    await connection.executemany(
        "INSERT INTO journey_outbox (tenant_id, effect_id, instance_id, kind, body)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [(o.tenant, o.effect_id, o.instance_id, o.kind, o.body) for o in outbox])
    return Written(outbox)


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
                 effects: Sequence[Effect], at: datetime | None = None) -> Written | None:
    """Store a new instance and its effects; None when the profile already has a live
    instance of the journey, or this instance exists (a redelivered entry)."""
    async with connection.transaction():
        status = await connection.execute(
            f"INSERT INTO journey_instances {_COLUMNS}"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            *_row(tenant, instance))
        if status.endswith(" 0"):
            return None
        return await _effects(connection, tenant, instance, effects, at)


_STEP_COLUMNS = ["tenant_id", "journey_id", "version", "instance_id", "profile_id", "at",
                 "kind", "node", "detail"]


# An instance that ends as it enters (held out, a split's branch to the end) is no live
# instance: the unique index on live ones lets it in beside the profile's live one. So
# it enters only if the profile has none (a profile in the journey is skipped, whatever
# its new entry would do).
_NOT_LIVE = ("({state} = 'waiting' OR NOT EXISTS (SELECT 1 FROM journey_instances live"
             " WHERE live.tenant_id = {tenant} AND live.journey_id = {journey}"
             " AND live.profile_id = {profile} AND live.state = 'waiting'{within}))")


async def create_many(connection: asyncpg.Connection, tenant: str,
                      moves: Sequence[tuple[Instance, Sequence[Effect]]],
                      at: datetime | None = None
                      ) -> list[tuple[Instance, Sequence[Effect], Written]]:
    """``create`` for a batch of new instances, one statement per table: the instances
    stored with their effects and outbox; an instance whose profile already has a live
    instance of the journey, or that exists (a redelivered entry), is left out as
    ``create`` leaves it out (also the second of two in the batch for one profile)."""
    if not moves:
        return []
    at = at or datetime.now(UTC)
    async with connection.transaction():
        rows = [_row(tenant, instance) for instance, _ in moves]
        columns = list(zip(*rows, strict=True))
        stored = {str(r["instance_id"]) for r in await connection.fetch(
            f"INSERT INTO journey_instances {_COLUMNS}"
            " SELECT t, i, j, v, p, s, n, k, d::jsonb, e FROM unnest($1::text[],"
            " $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[],"
            " $8::int[], $9::text[], $10::timestamptz[]) AS u(t, i, j, v, p, s, n, k, d, e)"
            f" WHERE {_NOT_LIVE.format(tenant='t', journey='j', profile='p', state='s', within='')}"
            " ON CONFLICT DO NOTHING RETURNING instance_id",
            *columns[:8], [orjson.dumps(d).decode() for d in columns[8]], columns[9])}
        # once each: the same entry twice in the batch is one instance (its effects once)
        kept = []
        for instance, effects in moves:
            if instance.instance_id in stored:
                stored.discard(instance.instance_id)
                kept.append((instance, effects))
        written = await _effects_many(connection, tenant, kept, at)
    return written


# One statement for a chunk of profiles entering set-wise (``entering.routes``): the
# instances from their templates (the document's ids added), skipped as ``create_many``
# skips (an instance that exists, a profile with a live instance of the journey) and
# for a profile that no longer exists (erased since the audience was read); then the
# cohorts of those stored, each with its steps and timers from its template.
_ENTER_SET_SHAPE = """
WITH b AS MATERIALIZED (  -- the chunk's first and last id, in the database's own order
  -- (its collation's: Python's order of str is the "C" collation's only)
  SELECT min(x) AS lo, max(x) AS hi FROM unnest({profiles}) AS x),
m AS (
  SELECT m.p, m.i, m.g, m.o FROM unnest({profiles}, $5::uuid[], $6::text::int[])
    WITH ORDINALITY AS m(p, i, g, o)
  -- the profiles that still exist, read from the chunk's range of ids only (an audience
  -- is read in id order): a join read the tenant's profiles from its first id up to the
  -- chunk's, each chunk further than the one before (quadratic in the audience)
  WHERE m.p IN (SELECT f.profile_id FROM profiles f
                WHERE f.tenant_id = $1 AND f.profile_id = ANY({profiles})
                  AND f.profile_id >= (SELECT lo FROM b)
                  AND f.profile_id <= (SELECT hi FROM b))),
t AS MATERIALIZED (  -- each template's document parsed once, not once a profile
  SELECT g - 1 AS g, d::jsonb AS d, s, n, k, c
  FROM unnest($7::text[], $8::text[], $9::text[], $10::int[], $19::uuid[])
    WITH ORDINALITY AS t(d, s, n, k, c, g)),
ins AS (  -- no document: the cohort's (journey_cohorts, migration 054)
  INSERT INTO journey_instances (tenant_id, instance_id, journey_id, version, profile_id,
    state, node, token, cohort_id, entered_at)
  SELECT $1, m.i, $2, $3, m.p, t.s, t.n, t.k, t.c, $11
  FROM m JOIN t ON t.g = m.g
  WHERE {not_live}
  ORDER BY m.o
  {on_conflict}RETURNING cohort_id),
used AS (  -- templates with members, each its own cohort: counted from what the insert
  -- returns, not joined back to the chunk (m, used once, is then not materialized either:
  -- 31.5 → 27.5 µs of a backend a profile, twelve rounds)
  SELECT t.g, k.n FROM (SELECT cohort_id, count(*)::int AS n FROM ins GROUP BY cohort_id) k
    JOIN t ON t.c = k.cohort_id),
cohorts AS (  -- a chunk entered again stores no instance, so no cohort
  INSERT INTO journey_cohorts (tenant_id, cohort_id, journey_id, version, document,
    entered_at)
  SELECT $1, t.c, $2, $3, t.d, $11 FROM t JOIN used USING (g)
  ON CONFLICT DO NOTHING),
steps AS (  -- the cohort's, with its members counted, not one a profile (migration 056)
  INSERT INTO journey_cohort_steps (tenant_id, cohort_id, journey_id, version, at, kind,
    node, detail, members)
  SELECT $1, t.c, $2, $3, $11, s.kind, s.node, s.detail, used.n
  FROM t JOIN used USING (g)
    JOIN unnest($12::int[], $13::text[], $14::text[], $15::text[])
      WITH ORDINALITY AS s(g, kind, node, detail, o) ON s.g = t.g
  ORDER BY t.g, s.o),
timers AS (  -- the cohort's, not one a profile (migration 055)
  INSERT INTO journey_cohort_timers (tenant_id, cohort_id, token, due_at)
  SELECT $1, t.c, r.k, r.d
  FROM t JOIN used USING (g)
    JOIN unnest($16::int[], $17::int[], $18::timestamptz[]) AS r(g, k, d) ON r.g = t.g
  ON CONFLICT DO NOTHING)
SELECT g, n FROM used
"""
# ``_NOT_LIVE`` for a chunk (made for the profiles whose entry ends at once: held out),
# within the chunk's range of profile ids: without it the planner made it a hashed
# subplan of every live instance of the journey, read again each chunk (10,000 more for
# each chunk entered: 275 → 396 ms a chunk of 10,000 with a control group, from 10,000
# to 30,000 in). With the range from ``b`` it is an index probe a held-out profile.
_LIVE_PROBE = _NOT_LIVE.format(
    tenant="$1", journey="$2", profile="m.p", state="t.s",
    within=" AND live.profile_id >= (SELECT lo FROM b) AND live.profile_id <= (SELECT hi FROM b)")
# The chunk's profile ids come as one text, joined by a separator (``string_to_array`` of
# a parameter folds into a constant array when the plan is made, as an array parameter
# would), its templates as an array's text ($6): asyncpg encodes an array element by
# element (abc ``isinstance`` checks each), 0.61 µs of the engine a profile id and 0.47 a
# template index, against 0.01 and 0.02 joined (PostgreSQL: +0.1 and +0.06). Its
# instance ids ($5) in binary: uuid_in took PostgreSQL 1.5 µs an id from text.
_PROFILES = "string_to_array($4, $20)"


def _shaped(not_live: str, on_conflict: str) -> str:
    return _ENTER_SET_SHAPE.replace("{not_live}", not_live).replace(
        "{on_conflict}", on_conflict).replace("{profiles}", _PROFILES)


_ENTER_SET = _shaped(_LIVE_PROBE, "ON CONFLICT DO NOTHING ")

# The same without an arbiter for the primary key, tried second: the live index the only
# arbiter (each arbiter is a probe before every row; the primary key's was ~4 µs of a
# backend a profile, an eighth of the statement). An instance that exists (a chunk
# entered again, a test run again) raises here, and ``_ENTER_SET`` does the chunk. (An
# arbiter, not a probe of our own: a journey's first chunks have no statistics yet, and
# the planner then probed by the node index, reading every waiting instance of the
# journey a profile.)
_ENTER_SET_FAST = _shaped(
    _LIVE_PROBE,
    "ON CONFLICT (tenant_id, journey_id, profile_id) WHERE state = 'waiting' DO NOTHING ")

# The same with no ``ON CONFLICT`` at all, tried first: the unique indexes still refuse a
# second live instance of a profile or an instance that exists, by raising (the
# statement undone, then ``_ENTER_SET_FAST``). A first entry into a version, the usual
# case, meets no conflict, and each row skips the arbiter's probe and the speculative
# insertion (a lock taken and released, a confirmation written): 37 → 30 µs of a backend
# a profile at 500,000 in (the statement alone, ten rounds; README, P7 entering). A chunk
# with a conflict is written twice, the first time only up to its first conflict.
_ENTER_SET_PLAIN = _shaped(_LIVE_PROBE, "")


# The chunk's sorts in memory; and no nested loop: the planner guesses a few rows from
# the CTEs (the insert's RETURNING), where a chunk has thousands, and a nested loop of
# the stored instances over the chunk's profiles is quadratic (10,000 profiles: 20 s
# instead of a hash join's 1.5 s). And a plan made for the chunk's values, always: a
# generic one sees no ids to split and hash (37 against 26 µs of a backend a profile).
ENTER_SET_PLANNING = ("SET LOCAL work_mem = '64MB'; SET LOCAL enable_nestloop = off;"
                      " SET LOCAL plan_cache_mode = force_custom_plan")


_COHORTS = uuid.UUID("6f1d8f0c-2a54-5d0e-9b7e-0c6f4a1e7c21")  # the cohort ids' namespace


def cohort_ids(chunk: Chunk, at: datetime) -> list[uuid.UUID]:
    """Each template's cohort in the chunk, named by the chunk's first instance and the
    instant it enters. A cohort's members all entered in one statement: a chunk entered
    again later stores the profiles it skipped before (one since finished elsewhere) in
    a cohort of their own, with their own timers and steps, not in the first one's."""
    first = chunk.instance_id(0)
    return [uuid.uuid5(_COHORTS, f"{first}/{g}/{at.isoformat()}")
            for g in range(len(chunk.templates))]


# Separators for a chunk's profile ids joined, the first that none of them holds: the
# profile id pattern allows none of these (PROFILE_ID), but a row written around it may.
_SEPARATORS = (",", "\x1f", "\x1e", "\x1d", "\x1c")


def joined_ids(profile_ids: Sequence[str]) -> tuple[str, str]:
    """The ids joined into one text, and the separator that splits it back into them."""
    for separator in _SEPARATORS:
        text = separator.join(profile_ids)
        if text.count(separator) == len(profile_ids) - 1:  # none within an id
            return text, separator
    raise ValueError("profile ids hold every separator; enter them one by one")


def enter_set_args(tenant: str, journey_id: str, version: int, chunk: Chunk,
                   at: datetime) -> tuple[Any, ...]:
    """``_ENTER_SET``'s parameters for a chunk."""
    templates = chunk.templates
    steps = [(g, s) for g, t in enumerate(templates) for s in t.steps]
    timers = [(g, k, d) for g, t in enumerate(templates) for k, d in t.timers]
    profiles, separator = joined_ids(chunk.profile_ids)
    labels = [str(g) for g in range(len(templates))]
    return (tenant, journey_id, version, profiles, [UUID(i) for i in chunk.instance_ids],
            "".join(("{", ",".join([labels[g] for g in chunk.groups]), "}")),
            [orjson.dumps(t.document).decode() for t in templates],
            [t.state for t in templates], [t.node for t in templates],
            [t.token for t in templates], at,
            [g for g, _ in steps], [s.kind for _, s in steps], [s.node for _, s in steps],
            [s.detail for _, s in steps],
            [g for g, _, _ in timers], [k for _, k, _ in timers], [d for _, _, d in timers],
            cohort_ids(chunk, at), separator)


@dataclass(frozen=True)
class WholeCohort:
    """A cohort of a chunk that stored every profile routed to it: its members as they
    entered, in the chunk's order (an audience's is by profile id), with their instance
    ids as sent (asyncpg's ``UUID``, whose ``str`` is compiled)."""
    cohort_id: uuid.UUID
    instance_ids: list[UUID]
    profile_ids: list[str]


@dataclass(frozen=True)
class EnteredSet:
    """What ``enter_set`` wrote: (template index, instances stored) for each template
    with members, and the cohorts stored whole (those the step relay need not read)."""
    written: list[tuple[int, int]]
    whole: list[WholeCohort]


def _whole(chunk: Chunk, args: tuple[Any, ...], written: list[tuple[int, int]]
           ) -> list[WholeCohort]:
    """The chunk's cohorts that stored as many instances as profiles routed to them: all
    of them, since the statement stores a subset of a cohort's profiles."""
    instance_ids, cohorts = args[4], args[18]  # the statement's $5 and $19
    if len(chunk.templates) == 1:  # the usual chunk: one route, one cohort
        return [WholeCohort(cohorts[0], instance_ids, chunk.profile_ids)
                for g, n in written if n == len(chunk.profile_ids)]
    out = []
    for g, n in written:
        at = [k for k, x in enumerate(chunk.groups) if x == g]
        if n == len(at):
            out.append(WholeCohort(cohorts[g], [instance_ids[k] for k in at],
                                   [chunk.profile_ids[k] for k in at]))
    return out


async def enter_set(connection: asyncpg.Connection, tenant: str, journey_id: str,
                    version: int, chunk: Chunk, at: datetime) -> EnteredSet:
    """Write a chunk of entering profiles set-wise (``entering.routes``), in one
    statement: what ``create_many`` writes for ``start``'s moves of the same profiles
    when the version's way to its first wait is ``entering.set_based``; skipped are the
    profiles ``enter`` skips."""
    if not chunk.profile_ids:
        return EnteredSet([], [])
    args = enter_set_args(tenant, journey_id, version, chunk, at)

    async def run(statement: str) -> list[asyncpg.Record]:
        # a savepoint in the caller's transaction: a conflict undoes this statement only
        async with connection.transaction():  # (SET LOCAL needs one too)
            await connection.execute(ENTER_SET_PLANNING)
            return await connection.fetch(statement, *args)
    try:
        rows = await run(_ENTER_SET_PLAIN)
    except asyncpg.UniqueViolationError:  # a profile of the chunk in the journey already
        try:
            rows = await run(_ENTER_SET_FAST)
        except asyncpg.UniqueViolationError:  # an instance of the chunk exists already
            rows = await run(_ENTER_SET)
    written = [(r["g"], r["n"]) for r in rows]
    return EnteredSet(written, _whole(chunk, args, written))


async def save_many(connection: asyncpg.Connection, tenant: str,
                    moves: Sequence[tuple[int, Instance, Sequence[Effect]]],
                    at: datetime | None = None
                    ) -> tuple[list[tuple[Instance, Sequence[Effect], Written]], set[str]]:
    """``save`` for a batch: each (token it was read with, the instance advanced, the
    effects of every move since, in order), one statement per table. Written are those
    still at their read token and waiting; the ids of the others (another move got there
    first) come back, nothing of theirs written: redo their inputs on what is stored."""
    if not moves:
        return [], set()
    at = at or datetime.now(UTC)
    async with connection.transaction():
        matched = {str(r["instance_id"]) for r in await connection.fetch(
            "UPDATE journey_instances j SET state = u.s, node = u.n, token = u.k,"
            " document = u.d::jsonb, updated_at = now()"
            " FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::int[],"
            " $7::text[]) AS u(i, r, s, n, k, d)"
            " WHERE j.tenant_id = $1 AND j.instance_id = u.i AND j.token = u.r"
            " AND j.state = 'waiting' RETURNING j.instance_id",
            tenant, [i.instance_id for _, i, _ in moves], [r for r, _, _ in moves],
            [i.state.value for _, i, _ in moves], [i.node for _, i, _ in moves],
            [i.token for _, i, _ in moves],
            [orjson.dumps(instance_to_json(i)).decode() for _, i, _ in moves])}
        kept = [(i, e) for _, i, e in moves if i.instance_id in matched]
        written = await _effects_many(connection, tenant, kept, at)
    return written, {i.instance_id for _, i, _ in moves} - matched


async def _effects_many(connection: asyncpg.Connection, tenant: str,
                        kept: Sequence[tuple[Instance, Sequence[Effect]]], at: datetime
                        ) -> list[tuple[Instance, Sequence[Effect], Written]]:
    """The timers, steps and outbox of stored moves, one statement per table. An
    instance's effects may span several moves: a timer set and cancelled again among them
    is never written."""
    cancelled = [(i.instance_id, e.token) for i, effects in kept for e in effects
                 if isinstance(e, CancelTimer)]
    if cancelled:
        await connection.execute(
            "DELETE FROM journey_timers t USING unnest($2::uuid[], $3::int[]) AS c(i, k)"
            " WHERE t.tenant_id = $1 AND t.instance_id = c.i AND t.token = c.k",
            tenant, [c[0] for c in cancelled], [c[1] for c in cancelled])
    gone = set(cancelled)
    timers = [(i.instance_id, e.token, e.due) for i, effects in kept for e in effects
              if isinstance(e, SetTimer) and (i.instance_id, e.token) not in gone]
    if timers:
        await connection.execute(
            "INSERT INTO journey_timers (tenant_id, instance_id, token, due_at)"
            " SELECT $1, i, k, d FROM unnest($2::uuid[], $3::int[], $4::timestamptz[])"
            " AS u(i, k, d) ON CONFLICT DO NOTHING",
            tenant, *(list(c) for c in zip(*timers, strict=True)))
    # COPY: a third cheaper than INSERT … unnest for the three or more steps each.
    await connection.copy_records_to_table(
        "journey_steps", columns=_STEP_COLUMNS, records=[
            (tenant, i.journey_id, i.version, uuid.UUID(i.instance_id), i.profile_id,
             at, e.kind, e.node, e.detail)
            for i, effects in kept for e in effects if isinstance(e, Step)])
    written = [(i, e, Written(outbox_entries(tenant, i, e) if any(
        isinstance(x, Send | UpdateProfile | CallHttp) for x in e) else []))
        for i, e in kept]
    outbox = [o for _, _, w in written for o in w.outbox]
    if outbox:
        await connection.execute(
            "INSERT INTO journey_outbox (tenant_id, effect_id, instance_id, kind, body)"
            " SELECT $1, f, i, k, b::jsonb FROM unnest($2::uuid[], $3::uuid[],"
            " $4::text[], $5::text[]) AS u(f, i, k, b) ON CONFLICT DO NOTHING",
            tenant, [o.effect_id for o in outbox], [o.instance_id for o in outbox],
            [o.kind for o in outbox], [orjson.dumps(o.body).decode() for o in outbox])
    return written


async def save(connection: asyncpg.Connection, tenant: str, read_token: int,
               instance: Instance, effects: Sequence[Effect], at: datetime | None = None
               ) -> Written | None:
    """Write the advanced instance and its effects if it still has the token it was read
    with and is waiting; None (nothing written) when another input got there first."""
    async with connection.transaction():
        status = await connection.execute(
            "UPDATE journey_instances SET state = $3, node = $4, token = $5, document = $6,"
            " updated_at = now()"
            " WHERE tenant_id = $1 AND instance_id = $2 AND token = $7 AND state = 'waiting'",
            tenant, instance.instance_id, instance.state.value, instance.node,
            instance.token, instance_to_json(instance), read_token)
        if status.endswith(" 0"):
            return None
        return await _effects(connection, tenant, instance, effects, at)


async def load(connection: asyncpg.Connection, tenant: str, instance_id: str
               ) -> Instance | None:
    document = await connection.fetchval(
        f"SELECT {DOCUMENT} FROM journey_instances i"
        " WHERE tenant_id = $1 AND instance_id = $2", tenant, instance_id)
    return None if document is None else instance_from_json(document)


async def load_many(connection: asyncpg.Connection, keys: Sequence[tuple[str, str]]
                    ) -> dict[tuple[str, str], Instance]:
    """Instances by (tenant, instance id); absent ones are left out."""
    if not keys:
        return {}
    rows = await connection.fetch(
        f"SELECT i.tenant_id, {DOCUMENT} FROM journey_instances i"
        " JOIN unnest($1::text[], $2::uuid[]) AS k(tenant_id, instance_id)"
        "   ON i.tenant_id = k.tenant_id AND i.instance_id = k.instance_id",
        [t for t, _ in keys], [i for _, i in keys])
    return {(r["tenant_id"], r["document"]["instanceId"]): instance_from_json(r["document"])
            for r in rows}


async def live(connection: asyncpg.Connection, tenant: str, journey_id: str,
               profile_id: str) -> Instance | None:
    """The profile's waiting instance of the journey, if any."""
    document = await connection.fetchval(
        f"SELECT {DOCUMENT} FROM journey_instances i WHERE tenant_id = $1"
        " AND journey_id = $2 AND profile_id = $3 AND state = 'waiting'",
        tenant, journey_id, profile_id)
    return None if document is None else instance_from_json(document)


async def next_due(connection: asyncpg.Connection | asyncpg.Pool, after: datetime
                   ) -> datetime | None:
    """When the next timer after ``after`` is due, an instance's or a cohort's (a look
    at the due indexes; timers due already but not claimed — a paused version's — are
    not the next)."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT least((SELECT due_at FROM journey_timers WHERE due_at > $1"
        "              ORDER BY due_at LIMIT 1),"
        "             (SELECT due_at FROM journey_cohort_timers WHERE due_at > $1"
        "              ORDER BY due_at LIMIT 1))", after)


# The cohort timers due, taken (deleted) and handed to the cohort's instances still
# waiting on their token as timers of their own, in one statement: a crash undoes both.
_EXPAND = """
WITH due AS (
  DELETE FROM journey_cohort_timers c USING (
      SELECT tenant_id, cohort_id, token FROM journey_cohort_timers WHERE due_at <= $1
       ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
   WHERE c.tenant_id = d.tenant_id AND c.cohort_id = d.cohort_id AND c.token = d.token
  RETURNING c.tenant_id, c.cohort_id, c.token, c.due_at),
handed AS (
  INSERT INTO journey_timers (tenant_id, instance_id, token, due_at)
  SELECT i.tenant_id, i.instance_id, due.token, due.due_at
    FROM due JOIN journey_instances i
      ON i.tenant_id = due.tenant_id AND i.cohort_id = due.cohort_id
     AND i.token = due.token AND i.state = 'waiting'
  ON CONFLICT DO NOTHING RETURNING 1)
SELECT (SELECT count(*) FROM due)::int AS cohorts, (SELECT count(*) FROM handed)::int AS timers
"""
COHORT_TIMERS_AT_ONCE = 2  # about 20,000 instance timers: a statement of a few tenths of a second


async def expand_cohort_timers(connection: asyncpg.Connection | asyncpg.Pool, now: datetime,
                               limit: int = COHORT_TIMERS_AT_ONCE) -> tuple[int, int]:
    """Hand up to ``limit`` cohort timers due by ``now`` to their instances (those still
    waiting on the timer's token: not one stopped, ended or moved on since), as timers of
    their own, claimed as any are. (cohort timers taken, instance timers written)."""
    row = await connection.fetchrow(_EXPAND, now, limit)
    return row["cohorts"], row["timers"]


# The first ``$2`` due timers of instances of a version, with the version's state,
# walking the due index: the LATERAL look-up (OFFSET 0 keeps it one, not a join the
# planner could turn round) costs each timer passed two index probes, so a claim costs
# what it takes, not the instances of the live versions. A timer of no version's instance
# (tests' own) is left where it is.
_CLAIM = """
WITH head AS (
    SELECT jt.tenant_id, jt.instance_id, jt.token, s.state, s.journey_id, s.version
      FROM journey_timers jt
     CROSS JOIN LATERAL (
           SELECT v.state, i.journey_id, i.version
             FROM journey_instances i
             JOIN journey_versions v ON v.tenant_id = i.tenant_id
                                    AND v.journey_id = i.journey_id AND v.version = i.version
            WHERE i.tenant_id = jt.tenant_id AND i.instance_id = jt.instance_id
           OFFSET 0) s
     WHERE jt.due_at <= $1
     ORDER BY jt.due_at LIMIT $2 FOR UPDATE OF jt SKIP LOCKED)
DELETE FROM journey_timers t USING head h
 WHERE t.tenant_id = h.tenant_id AND t.instance_id = h.instance_id AND t.token = h.token
RETURNING t.tenant_id, t.instance_id, t.token, t.due_at, h.state, h.journey_id, h.version
"""
_CLAIM_ANY = """
DELETE FROM journey_timers t USING (
    SELECT tenant_id, instance_id, token FROM journey_timers WHERE due_at <= $1
     ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
 WHERE t.tenant_id = d.tenant_id AND t.instance_id = d.instance_id AND t.token = d.token
RETURNING t.tenant_id, t.instance_id, t.token, t.due_at, 'live' AS state
"""


async def claim_due(connection: asyncpg.Connection, now: datetime, limit: int, *,
                    live_only: bool = True) -> Claimed:
    """Take up to ``limit`` timers due by ``now``, earliest first, deleting them: call in a
    transaction that also hands them on (the caller's), so a crash gives them back.
    ``live_only``: only timers of instances of live versions; a paused version's met on
    the way are set aside in ``journey_timers_held`` until it resumes (``release_held``),
    so no later claim walks past them again (migration 052); a stopped or finished
    version's (a move that raced the stop set it after the stop deleted the others) are
    deleted, fired by no one."""
    rows = await connection.fetch(_CLAIM if live_only else _CLAIM_ANY, now, limit)
    paused = [r for r in rows if r["state"] == "paused"]
    live = [r for r in rows if r["state"] == "live"]
    if paused:
        live += await _hold(connection, paused)
    return Claimed(sorted((DueTimer(r["tenant_id"], str(r["instance_id"]), r["token"],
                                    r["due_at"]) for r in live), key=lambda t: t.due_at),
                   len(rows))


async def _hold(connection: asyncpg.Connection, paused: list[asyncpg.Record]
                ) -> list[asyncpg.Record]:
    """Set aside the timers of versions paused still, and give back those of versions
    resumed since the claim read them. The versions' rows are read again under a share
    lock: a resume committed meanwhile is seen (its timers fire now), and one coming waits
    for this transaction, so its ``release_held`` finds what is set aside here."""
    def version_of(r: asyncpg.Record) -> tuple[str, str, int]:
        return r["tenant_id"], r["journey_id"], r["version"]

    keys = {version_of(r) for r in paused}
    states = {version_of(r): r["state"] for r in await connection.fetch(
        "SELECT v.tenant_id, v.journey_id, v.version, v.state FROM journey_versions v"
        "  JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(t, j, n)"
        "    ON v.tenant_id = k.t AND v.journey_id = k.j AND v.version = k.n"
        " ORDER BY 1, 2, 3 FOR SHARE OF v", *(list(c) for c in zip(*keys, strict=True)))}
    held = [r for r in paused if states.get(version_of(r)) == "paused"]
    if held:
        await connection.execute(
            "INSERT INTO journey_timers_held"
            " (tenant_id, instance_id, token, due_at, journey_id, version)"
            " SELECT * FROM unnest($1::text[], $2::uuid[], $3::int[], $4::timestamptz[],"
            "                      $5::text[], $6::int[]) ON CONFLICT DO NOTHING",
            *([r[c] for r in held] for c in ("tenant_id", "instance_id", "token", "due_at",
                                             "journey_id", "version")))
    # Stopped meanwhile: its instances ended, their timers are dropped with the claim.
    return [r for r in paused if states.get(version_of(r)) == "live"]


async def release_held(connection: asyncpg.Connection, tenant: str, journey_id: str,
                       versions: Sequence[int]) -> int:
    """Put back the timers set aside while ``versions`` were paused (call in the
    transaction that resumes them, after its UPDATE of their rows); how many."""
    return int((await connection.execute(
        "WITH back AS (DELETE FROM journey_timers_held WHERE tenant_id = $1"
        "   AND journey_id = $2 AND version = ANY($3::int[])"
        " RETURNING tenant_id, instance_id, token, due_at)"
        " INSERT INTO journey_timers (tenant_id, instance_id, token, due_at)"
        " SELECT * FROM back ON CONFLICT DO NOTHING", tenant, journey_id,
        list(versions))).split()[-1])


async def waiting_of(connection: asyncpg.Connection, keys: Sequence[tuple[str, str]]
                     ) -> dict[tuple[str, str], list[Instance]]:
    """The waiting instances of each (tenant, profile id), oldest entry first."""
    return await _instances_of(connection, keys, WAITING)


@dataclass(frozen=True)
class EntryHistory:
    entries: int  # instances of the journey the profile had, any version
    last_entered: datetime | None
    waiting: bool  # one of them still is


async def entry_history(connection: asyncpg.Connection, tenant: str, journey_id: str,
                        profile_id: str) -> EntryHistory:
    row = await connection.fetchrow(
        "SELECT count(*) AS n, max(entered_at) AS last, bool_or(state = 'waiting') AS waiting"
        " FROM journey_instances i WHERE tenant_id = $1 AND profile_id = $2 AND journey_id = $3"
        f" AND {ANY_STATE}",
        tenant, profile_id, journey_id)
    return EntryHistory(row["n"], row["last"], bool(row["waiting"]))


async def stale_outbox(connection: asyncpg.Connection, older_than: datetime, limit: int
                       ) -> list[Outboxed]:
    """Effects left by an engine that stopped before applying them (locked until the
    caller's transaction ends, so two engines never take the same)."""
    rows = await connection.fetch(
        "SELECT tenant_id, effect_id, instance_id, kind, body FROM journey_outbox"
        " WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        older_than, limit)
    return [Outboxed(r["tenant_id"], str(r["effect_id"]), str(r["instance_id"]), r["kind"],
                     r["body"]) for r in rows]


async def applied(connection: asyncpg.Connection, done: Sequence[Outboxed]) -> None:
    if done:
        await connection.execute(
            "DELETE FROM journey_outbox o USING unnest($1::text[], $2::uuid[]) AS d(t, e)"
            " WHERE o.tenant_id = d.t AND o.effect_id = d.e",
            [o.tenant for o in done], [o.effect_id for o in done])


# --- erasure: instances name the profile and keep the data of its reactions and events ---

async def _erase(connection: asyncpg.Connection, tenant: str, profile_id: str
                 ) -> dict[str, int]:
    ids = await connection.fetch(
        "DELETE FROM journey_instances i WHERE tenant_id = $1 AND profile_id = $2"
        f" AND {ANY_STATE} RETURNING instance_id, cohort_id", tenant, profile_id)
    cohort_steps = 0
    if ids:
        for table in ("journey_timers", "journey_timers_held", "journey_outbox"):
            await connection.execute(
                f"DELETE FROM {table} WHERE tenant_id = $1 AND instance_id = ANY($2::uuid[])",
                tenant, [r["instance_id"] for r in ids])
        # Its cohorts' steps name no profile: gone from its history with its instance,
        # and one member fewer in the counts.
        cohorts = [r["cohort_id"] for r in ids if r["cohort_id"] is not None]
        if cohorts:
            cohort_steps = int((await connection.execute(
                "UPDATE journey_cohort_steps SET members = members - 1"
                " WHERE tenant_id = $1 AND cohort_id = ANY($2::uuid[])",
                tenant, cohorts)).split()[-1])
    steps = await connection.execute(
        "DELETE FROM journey_steps WHERE tenant_id = $1 AND profile_id = $2", tenant, profile_id)
    return {"journeyInstances": len(ids),
            "journeySteps": int(steps.split()[-1]) + cohort_steps}


async def _export(connection: asyncpg.Connection, tenant: str, profile_id: str
                  ) -> dict[str, Any]:
    rows = await connection.fetch(
        f"SELECT {DOCUMENT} FROM journey_instances i WHERE tenant_id = $1"
        f" AND profile_id = $2 AND {ANY_STATE} ORDER BY entered_at", tenant, profile_id)
    steps = await connection.fetch(
        "SELECT journey_id, version, instance_id::text, at, kind, node, detail"
        " FROM journey_instance_steps WHERE tenant_id = $1 AND profile_id = $2 ORDER BY id",
        tenant, profile_id)
    return {"journeyInstances": [r["document"] for r in rows],
            "journeySteps": [{**dict(r), "at": r["at"].isoformat()} for r in steps]}


erasure.register(erasure.PersonalData("journeyInstances", _erase, _export))
