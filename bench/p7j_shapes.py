"""P7J's design measurement: how fast PostgreSQL alone takes profiles entering a journey
in two row shapes, so the next change to set-based entering is chosen on figures.

``python -m bench.p7j_shapes [--profiles 1000000]`` (PostgreSQL up: ``make up``, or
``python deploy/local/stack.py start postgres``). In a scratch schema of its own (dropped
at the end), with copies of ``journey_instances``, ``journey_steps`` and ``journey_timers``
and every one of their indexes, two writers at once (as the engine writes two chunks at
once) insert chunks of 10,000 profiles, each chunk one ``INSERT … SELECT`` from
``generate_series`` (no Python a profile):

- today: what ``journey_store.enter_set`` writes a profile: the instance with its
  document, three step rows (entered, transition, entered) and a timer;
- cohort: a cohort row a chunk (the template document, the count), its three step rows
  once with no profile, one timer; and a slim instance a profile (no document: the
  cohort's, made whole when the instance is loaded).

Nothing else runs in it (no engine, no step events to Kafka): the bound of each shape on
this machine. 2026-12-05 (two commands): today 23,484 / 23,196 profiles/s; cohort
117,292 / 108,663.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from bench.common import settings

CHUNK = 10_000
SCHEMA = "bench_p7j_shapes"
_DOCUMENT = ('{"node": "w", "seen": [], "sent": {}, "state": "waiting", "steps": 2,'
             ' "token": 1, "waits": {}, "reason": null, "version": 1, "branches": {},'
             ' "enteredAt": "2026-12-05T02:35:03.372818+00:00", "journeyId": "bench",'
             ' "waitingSince": "2026-12-05T02:35:03.381702+00:00"}')
_STEPS = "(VALUES ('entered','entry',''),('transition','entry','w'),('entered','w',''))" \
         " k(kind, node, detail)"
_PROFILES = "FROM generate_series($1::int, $1::int + 9999) g"

TODAY = f"""
WITH ins AS (
  INSERT INTO {SCHEMA}.i (tenant_id, instance_id, journey_id, version, profile_id, state,
                          node, token, document, entered_at)
  SELECT 't', gen_random_uuid(), 'j', 1, 'p-' || lpad(g::text, 9, '0'), 'waiting', 'w', 1,
         $2::jsonb || jsonb_build_object('profileId', 'p-' || g,
                                         'instanceId', gen_random_uuid()::text), now()
  {_PROFILES} RETURNING instance_id, profile_id),
st AS (
  INSERT INTO {SCHEMA}.s (tenant_id, journey_id, version, instance_id, profile_id, at,
                          kind, node, detail)
  SELECT 't', 'j', 1, ins.instance_id, ins.profile_id, now(), k.kind, k.node, k.detail
  FROM ins, {_STEPS}),
tm AS (
  INSERT INTO {SCHEMA}.t (tenant_id, instance_id, token, due_at)
  SELECT 't', instance_id, 1, now() + interval '3 days' FROM ins)
SELECT count(*) FROM ins"""

COHORT = f"""
WITH c AS (
  INSERT INTO {SCHEMA}.c (tenant_id, journey_id, version, document, n)
  VALUES ('t', 'j', 1, $2::jsonb, {CHUNK}) RETURNING cohort_id),
ins AS (
  INSERT INTO {SCHEMA}.i (tenant_id, instance_id, journey_id, version, profile_id, state,
                          node, token, document, entered_at, cohort_id)
  SELECT 't', gen_random_uuid(), 'j', 1, 'p-' || lpad(g::text, 9, '0'), 'waiting', 'w', 1,
         NULL, now(), (SELECT cohort_id FROM c)
  {_PROFILES} RETURNING 1),
st AS (
  INSERT INTO {SCHEMA}.s (tenant_id, journey_id, version, instance_id, profile_id, at,
                          kind, node, detail, n)
  SELECT 't', 'j', 1, NULL, NULL, now(), k.kind, k.node, k.detail, {CHUNK} FROM {_STEPS}),
tm AS (
  INSERT INTO {SCHEMA}.ct (cohort_id, due_at)
  SELECT cohort_id, now() + interval '3 days' FROM c)
SELECT count(*) FROM ins"""

_TABLES = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.i (LIKE public.journey_instances INCLUDING ALL);
ALTER TABLE {SCHEMA}.i ALTER document DROP NOT NULL, ADD cohort_id bigint;
CREATE TABLE {SCHEMA}.s (LIKE public.journey_steps INCLUDING ALL);
ALTER TABLE {SCHEMA}.s ALTER instance_id DROP NOT NULL, ALTER profile_id DROP NOT NULL,
  ADD n int;
CREATE TABLE {SCHEMA}.t (LIKE public.journey_timers INCLUDING ALL);
CREATE TABLE {SCHEMA}.c (cohort_id bigserial PRIMARY KEY, tenant_id text, journey_id text,
  version int, document jsonb, n int);
CREATE TABLE {SCHEMA}.ct (cohort_id bigint NOT NULL, due_at timestamptz NOT NULL);
CREATE INDEX ON {SCHEMA}.ct (due_at);
"""


async def _rate(statement: str, profiles: int) -> float:
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=2, max_size=2)
    chunks = iter(range(0, profiles, CHUNK))

    async def writer() -> None:
        async with pool.acquire() as connection:
            for first in chunks:  # shared: each writer takes the next chunk
                await connection.fetchval(statement, first, _DOCUMENT)

    try:
        began = time.perf_counter()
        await asyncio.gather(writer(), writer())
        return profiles / (time.perf_counter() - began)
    finally:
        await pool.close()


async def main(profiles: int) -> None:
    connection = await asyncpg.connect(settings.pg_dsn)
    try:
        for name, statement in (("today", TODAY), ("cohort", COHORT)):
            await connection.execute(_TABLES)
            rate = await _rate(statement, profiles)
            print(f"{name:7s} {profiles:,} profiles: {rate:,.0f}/s "
                  "(two writers, PostgreSQL alone)", flush=True)
    finally:
        await connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000,
                        help="a multiple of 10,000 (default 1,000,000)")
    args = parser.parse_args()
    asyncio.run(main(max(CHUNK, args.profiles // CHUNK * CHUNK)))
