"""The condition language on the real PostgreSQL: ``SELECT profile_id … WHERE <compiled>``
returns exactly the profiles Python's evaluator accepts, for the seed audience with its
decoys and for hundreds of random conditions over hundreds of random profiles.

Rows live in a temporary table shaped like ``profiles`` (``LIKE profiles``), on one
connection of the pool: nothing is written to the shared tables.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import date
from random import Random
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from shared.domain.conditions import check_condition, compile_sql, matches, parse_condition
from tests.condition_cases import NOW, SCHEMA, as_row, conditions, random_profile

pytestmark = pytest.mark.integration
TENANT = "conditions-test"
SEED_AUDIENCE = {"all": [
    {"path": "city", "op": "in", "value": ["Atlanta", "San Francisco", "Seattle"]},
    {"path": "birthDate", "part": "year", "op": "gt", "value": 1980},
]}


@pytest.fixture(scope="module")
async def table(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        await connection.execute(
            "CREATE TEMPORARY TABLE condition_profiles (LIKE profiles INCLUDING DEFAULTS)")
        try:
            yield connection
        finally:
            await connection.execute("DROP TABLE condition_profiles")


async def load(connection: asyncpg.Connection, records: list[dict[str, Any]]) -> None:
    await connection.execute("TRUNCATE condition_profiles")
    await connection.executemany(
        "INSERT INTO condition_profiles (tenant_id, profile_id, email, mobile_phone,"
        " first_name, last_name, city, birth_date, attributes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [(TENANT, *as_row(record)) for record in records],
    )


async def selected(connection: asyncpg.Connection, definition: Any) -> set[str]:
    """The compiled condition, embedded after the query's own parameter as callers will."""
    where = compile_sql(check_condition(parse_condition(definition), SCHEMA), now=NOW,
                        first_param=2)
    rows = await connection.fetch(
        f"SELECT profile_id FROM condition_profiles WHERE tenant_id = $1 AND {where.text}",
        TENANT, *where.params)
    return {row["profile_id"] for row in rows}


def accepted(definition: Any, records: list[dict[str, Any]]) -> set[str]:
    checked = check_condition(parse_condition(definition), SCHEMA)
    return {r["profileId"] for r in records if matches(checked, r, now=NOW)}


def person(profile_id: str, city: str | None, born: str | None) -> dict[str, Any]:
    return {"profileId": profile_id, "city": city, "attributes": {},
            "birthDate": None if born is None else date.fromisoformat(born)}


async def test_the_seed_audience_selects_its_members_and_none_of_the_decoys(
    table: asyncpg.Connection,
) -> None:
    records = [
        person("atlanta-1981", "Atlanta", "1981-01-01"),
        person("san-francisco-1990", "San Francisco", "1990-07-14"),
        person("seattle-2000", "Seattle", "2000-02-29"),
        person("decoy-born-1980", "Seattle", "1980-12-31"),
        person("decoy-portland", "Portland", "1990-07-14"),
        person("decoy-atlanta-1975", "Atlanta", "1975-03-01"),
        person("decoy-no-birth-date", "Atlanta", None),
        person("decoy-no-city", None, "1990-07-14"),
        person("decoy-lowercase-city", "atlanta", "1990-07-14"),
    ]
    await load(table, records)
    members = {"atlanta-1981", "san-francisco-1990", "seattle-2000"}
    assert await selected(table, SEED_AUDIENCE) == members
    assert accepted(SEED_AUDIENCE, records) == members
    # "not in the audience" leaves out the profiles the audience cannot say anything about
    outside = {"decoy-born-1980", "decoy-portland", "decoy-atlanta-1975",
               "decoy-lowercase-city"}
    assert await selected(table, {"not": SEED_AUDIENCE}) == outside
    assert accepted({"not": SEED_AUDIENCE}, records) == outside


def draw_conditions(count: int) -> list[dict[str, Any]]:
    """``count`` conditions from the strategy, the same on every run: drawn first, then
    checked on the database (hypothesis cannot await between examples of a drawn test)."""
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(conditions)
    def collect(condition: dict[str, Any]) -> None:
        drawn.append(condition)

    collect()
    return drawn


async def test_random_conditions_select_what_python_accepts(table: asyncpg.Connection) -> None:
    rng = Random(9)
    records = [random_profile(rng, f"p{i:03}") for i in range(400)]
    await load(table, records)
    drawn = draw_conditions(400)
    disagreements, proper, started = [], 0, time.perf_counter()
    for definition in drawn:
        in_sql, in_python = await selected(table, definition), accepted(definition, records)
        if in_sql != in_python:
            disagreements.append((json.dumps(definition), sorted(in_sql ^ in_python)[:5]))
        proper += 0 < len(in_sql) < len(records)
    elapsed = time.perf_counter() - started
    assert not sorted(disagreements, key=lambda d: len(d[0]))[:3], "SQL and Python disagree"
    assert len(drawn) >= 300 and proper >= len(drawn) // 3, (len(drawn), proper)
    print(f"{len(drawn)} conditions over {len(records)} profiles in {elapsed:.2f}s;"
          f" {proper} selected some but not all")


async def test_hostile_values_are_parameters_not_sql(table: asyncpg.Connection) -> None:
    hostile = "x'); DROP TABLE condition_profiles; --"
    await load(table, [{"profileId": "p", "lastName": hostile, "attributes": {"tags": [hostile]}}])
    for op in ("eq", "startsWith", "endsWith", "contains"):
        assert await selected(table, {"path": "lastName", "op": op, "value": hostile}) == {"p"}
    assert await selected(table, {"path": "attributes.tags", "op": "contains",
                                  "value": hostile}) == {"p"}
    assert await selected(table, {"path": "lastName", "op": "contains", "value": "%"}) == set()
