"""What migration 019's trigger on event_status costs the event path, per status write:
the same upserts the stages make (to processing, then to processed) with the trigger off
and on, alternately, in a scratch schema that copies event_status; the cost is the
PostgreSQL backend's CPU time (/proc/<pid>/stat: on a busy machine wall time measures the
others' load as well). Both shapes the stages use: many rows in one statement (the
processor's unnest) and one row per statement (the senders' executemany).
``python -m bench.webhooks_trigger [rows] [rounds]``."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys

import asyncpg

from shared.adapters.postgres import MIGRATIONS_DIR
from shared.settings import get_settings

UPSERT = """INSERT INTO event_status (pkey, tenant_id, event_id, status, rank, message_id)
{rows}
ON CONFLICT (pkey, accepted_day) DO UPDATE SET status = EXCLUDED.status, rank = EXCLUDED.rank,
   updated_at = now() WHERE event_status.rank < EXCLUDED.rank"""
MANY = UPSERT.format(rows="SELECT 'k' || i || '-{r}', '{tenant}', 'EVTbench', '{status}',"
                          " {rank}, NULL FROM generate_series(1, {n}) i")
ONE = ("FOR i IN 1..{n} LOOP " + UPSERT.format(
    rows="VALUES ('k' || i || '-{r}', '{tenant}', 'EVTbench', '{status}', {rank}, NULL)")
       + "; END LOOP")
TIMED = """DO $$ BEGIN
  {first};
  {second};
END $$"""
MODES = {"off": "other", "on, tenant without subscriptions": "other",
         "on, subscribed tenant": "subscribed"}


def statements(shape: str, n: int, r: int, tenant: str) -> str:
    template = MANY if shape == "many" else ONE
    return TIMED.format(
        n=n, first=template.format(n=n, r=r, tenant=tenant, status="processing", rank=2),
        second=template.format(n=n, r=r, tenant=tenant, status="processed", rank=3))


def cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(n: int, rounds: int) -> None:
    db = await asyncpg.connect(get_settings().pg_dsn)
    backend = await db.fetchval("SELECT pg_backend_pid()")
    try:
        await db.execute("DROP SCHEMA IF EXISTS bench_webhooks CASCADE;"
                         " CREATE SCHEMA bench_webhooks; SET search_path = bench_webhooks")
        await db.execute("CREATE TABLE tenants (tenant_id text PRIMARY KEY, name text);"
                         " CREATE TABLE event_status (LIKE public.event_status INCLUDING ALL)")
        await db.execute((MIGRATIONS_DIR / "019_webhooks.sql").read_text())
        await db.execute("INSERT INTO tenants VALUES ('other', ''), ('subscribed', '');"
                         " INSERT INTO webhook_subscriptions (subscription_id, tenant_id, url,"
                         " secret, kinds) VALUES ('s1', 'subscribed', 'https://x/', 's', '{}')")
        r = 0
        for shape in ("many", "one"):
            found: dict[str, list[float]] = {mode: [] for mode in MODES}
            for round_ in range(rounds + 1):
                for mode, tenant in MODES.items():
                    r += 1
                    await db.execute("ALTER TABLE event_status "
                                     f"{'DISABLE' if mode == 'off' else 'ENABLE'} TRIGGER USER")
                    before = cpu_s(backend)
                    await db.execute(statements(shape, n, r, tenant))
                    if round_:  # the first warms up
                        found[mode].append((cpu_s(backend) - before) * 1e6 / (2 * n))
            label = "many rows per statement" if shape == "many" else "one row per statement"
            print(f"{label} ({rounds} rounds of {2 * n:,} writes, median backend CPU µs per"
                  " write):")
            off = statistics.median(found["off"])
            for mode, values in found.items():
                median = statistics.median(values)
                print(f"  {mode:34} {median:6.2f}  (+{median - off:.2f})")
    finally:
        await db.execute("DROP SCHEMA IF EXISTS bench_webhooks CASCADE")
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 7))
