"""Outbound webhooks' delivery rate and cost: N status changes put in the outbox at once
(as migration 019's trigger writes them) for S subscriptions, a local aiohttp receiver
answering 200, against the running webhooks service. ``python -m bench.webhooks_delivery
[changes] [subscriptions]``. Reports the seconds until every delivery is logged delivered,
the calls' latency, and the service's CPU time per delivery (from /proc: on a busy
machine the rate and latency move with the load, the CPU per delivery much less)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import asyncpg
import httpx
from aiohttp import web

from shared.adapters.key_store import create_key
from shared.domain.api_keys import Scope
from shared.settings import PROJECT_ROOT, get_settings

SETTINGS = get_settings()
PID_FILE = PROJECT_ROOT / ".run" / "pids" / "webhooks.pid"


def service_cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(changes: int, subscriptions: int) -> None:
    received = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    pid = int(PID_FILE.read_text())
    pool = await asyncpg.create_pool(SETTINGS.pg_dsn)
    async with pool.acquire() as connection:
        key = await create_key(connection, "default", Scope.ADMIN, "bench webhooks")
    event = f"EVTbench{uuid.uuid4().hex[:8]}"  # no real event: only these changes match
    made = []
    async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{SETTINGS.admin_port}/admin/v1",
            headers={"authorization": f"Bearer {key}"}) as admin:
        try:
            for i in range(subscriptions):
                created = await admin.post("/webhooks", json={
                    "url": f"http://127.0.0.1:{port}/s{i}", "eventIds": [event], "kinds": []})
                made.append(created.json()["subscriptionId"])
            cpu, began = service_cpu_s(pid), time.monotonic()
            await pool.execute(
                "INSERT INTO webhook_status_outbox (tenant_id, pkey, event_id, status, at)"
                " SELECT 'default', 'bench-' || $2 || '-' || i, $1, 'processed', now()"
                " FROM generate_series(1, $3) i", event, uuid.uuid4().hex, changes)
            total = changes * subscriptions
            while True:  # the log is in PostgreSQL: polled
                done = await pool.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = ANY($1)"
                    " AND state = 'delivered'", made)
                if done >= total:
                    break
                await asyncio.sleep(0.05)
            seconds, cpu = time.monotonic() - began, service_cpu_s(pid) - cpu
            p50, p99 = await pool.fetchval(
                "SELECT percentile_cont(array[0.5, 0.99]) WITHIN GROUP (ORDER BY latency_ms)"
                " FROM webhook_attempts JOIN webhook_deliveries USING (delivery_id)"
                " WHERE subscription_id = ANY($1)", made)
            print(f"{total:,} deliveries ({changes:,} changes x {subscriptions} subscriptions):"
                  f" {seconds:.2f} s, {total / seconds:,.0f}/s; calls p50 {p50:.0f} ms,"
                  f" p99 {p99:.0f} ms; service CPU {cpu * 1000 / total:.2f} ms per delivery;"
                  f" receiver got {received:,}")
        finally:
            for subscription in made:
                await admin.delete(f"/webhooks/{subscription}")
            await pool.close()
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 1))
