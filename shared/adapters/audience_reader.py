"""An audience's members in PostgreSQL: count, preview, and the read a journey's entry
calls, which streams every member in batches, in ``profile_id`` order, with memory flat
whatever the size, and restartable from the last id a caller saved.

The condition is checked against the tenant's current profile schema first
(``shared.domain.audiences.profile_paths``) and compiled to parameterised SQL: ``$1`` is
the tenant, the condition's values follow. Test profiles are never members.

Reading is keyset pagination: each batch is one query, ``profile_id > $last ORDER BY
profile_id LIMIT n`` through the primary key (tenant_id, profile_id), so no transaction
stays open between batches and a crashed reader resumes from the last id it handed over
(P7 in bench/ compares it with a server-side cursor and with COPY).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.domain.audiences import paths_used, profile_paths
from shared.domain.conditions import check_condition, compile_sql, parse_condition
from shared.domain.conditions.checking import Checked, Test
from shared.domain.profile_schema import ProfileSchema

# What a reader of an audience's members gets by default (P7's streaming rate reads these;
# a journey's entry takes the ids alone: the profile is read again when it sends).
MEMBER_COLUMNS = "profile_id, email, mobile_phone, time_zone, locale"
BATCH = 5000


@dataclass(frozen=True)
class AudienceQuery:
    """``WHERE`` text over ``profiles`` (unaliased) and its parameters, ``$1`` the tenant."""

    where: str
    params: tuple[Any, ...]
    fields: tuple[Test, ...]  # the tests' paths, one each, in order of appearance


def check_definition(definition: Any, schema: ProfileSchema) -> Checked:
    """The definition parsed and checked against the schema, or ConditionError naming each
    place in the tree."""
    return check_condition(parse_condition(definition), profile_paths(schema))


def audience_query(tenant: str, checked: Checked, now: datetime) -> AudienceQuery:
    where = compile_sql(checked, now=now, first_param=2)
    return AudienceQuery(f"tenant_id = $1 AND NOT is_test AND {where.text}",
                         (tenant, *where.params), tuple(paths_used(checked)))


async def count_members(connection: asyncpg.Connection | asyncpg.Pool, query: AudienceQuery
                        ) -> int:
    return await connection.fetchval(  # type: ignore[no-any-return]
        f"SELECT count(*) FROM profiles WHERE {query.where}", *query.params)


async def preview_members(connection: asyncpg.Connection | asyncpg.Pool,
                          query: AudienceQuery, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` members by profile id, each with the values of the paths the
    condition tests (``{"profileId", "fields": {path: value}}``)."""
    columns = "".join(f", {test.sql} AS f{i}" for i, test in enumerate(query.fields))
    rows = await connection.fetch(
        f"SELECT profile_id{columns} FROM profiles WHERE {query.where}"
        f" ORDER BY profile_id LIMIT {int(limit)}", *query.params)
    return [{"profileId": row["profile_id"],
             "fields": {test.path: row[f"f{i}"] for i, test in enumerate(query.fields)}}
            for row in rows]


async def read_members(
    connection: asyncpg.Connection | asyncpg.Pool, query: AudienceQuery, *,
    after: str | None = None, batch: int = BATCH, columns: str = MEMBER_COLUMNS,
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every member after ``after`` (a profile id; None: from the start), in batches of at
    most ``batch`` records (``columns``, profile_id among them) in profile_id order. Save
    the last id of each batch once it is handled; after a crash, pass it as ``after``:
    nothing is read twice or missed (a profile written meanwhile is read if its id is
    still ahead)."""
    last, n = len(query.params) + 1, len(query.params) + 2
    sql = (f"SELECT {columns} FROM profiles WHERE {query.where}"
           f" AND profile_id > ${last} ORDER BY profile_id LIMIT ${n}")
    first = (f"SELECT {columns} FROM profiles WHERE {query.where}"
             f" ORDER BY profile_id LIMIT ${last}")
    while True:
        if after is None:
            rows = await connection.fetch(first, *query.params, batch)
        else:
            rows = await connection.fetch(sql, *query.params, after, batch)
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = rows[-1]["profile_id"]
