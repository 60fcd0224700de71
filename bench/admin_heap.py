"""Where the admin API's memory goes (P10: admin grows): the admin application run in
this process (its FastAPI app object, real PostgreSQL and Kafka), driven through the
routes the tests hit — event configurations created, published, their message edited,
previewed, their schema read, unpublished and deleted, each configuration new — with
``tracemalloc`` snapshots after a warm-up and after the rounds. Prints the lines that
gained most, and the rows: memory gained per round (traced, and this process's RSS).

A tenant of its own (``heap-…``), its rows removed at the end.

``python -m bench.admin_heap [--rounds N] [--warmup N] [--top N]`` runs it alone;
``--live`` drives the stack's running admin over HTTP instead and reads its VmRSS;
``--no-trace`` runs in process without tracemalloc (whose traces grow the RSS too).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, machine_load, progress, service_pid
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.postgres import create_pool
from shared.domain.api_keys import Scope
from shared.settings import get_settings

ROOT = str(Path(__file__).resolve().parents[1])


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def event_body(event_id: str, n: int) -> dict[str, Any]:
    """A new configuration each round, as the tests make them (fields vary a little)."""
    return {
        "eventId": event_id, "label": "heap", "channel": "email", "targeting": "event",
        "fields": [{"id": "cartUrl", "type": "string", "required": True},
                   {"id": f"n{n % 7}", "type": "decimal"}],
        "collections": [{"id": "products", "fields": [
            {"id": "name", "type": "string", "required": True},
            {"id": "price", "type": "decimal"}]}],
    }


def ok(response: httpx.Response) -> None:
    response.raise_for_status()


async def one_round(client: httpx.AsyncClient, n: int) -> None:
    event_id = f"EVTheap{uuid.uuid4().hex[:10]}"
    ok(await client.post("/events", json=event_body(event_id, n)))
    ok(await client.post(f"/events/{event_id}/publish"))
    ok(await client.put(f"/events/{event_id}/message", json={
        "subject": "Hi {{ ctx.cartUrl }}",
        "html": "<p>{% for p in ctx.products %}{{ p.name }}{% endfor %}</p>",
        "text": "{% for p in ctx.products %}{{ p.name }} at {{ p.price }}{% endfor %}"}))
    ok(await client.post(f"/events/{event_id}/message/preview", json={
        "ctx": {"cartUrl": "u", "products": [{"name": "Shoes", "price": 1.5}]}}))
    ok(await client.get(f"/events/{event_id}/schema"))
    ok(await client.get(f"/events/{event_id}/message"))
    ok(await client.post(f"/events/{event_id}/unpublish"))
    ok(await client.delete(f"/events/{event_id}"))
    for path in ("/rules", "/typologies", "/audiences", "/journeys", "/test-profiles",
                 "/profile-schema"):
        ok(await client.get(path))


@asynccontextmanager
async def in_process(key: str) -> AsyncIterator[httpx.AsyncClient]:
    from services.admin.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin/admin/v1",
                                     headers={"authorization": f"Bearer {key}"}) as client:
            yield client


@asynccontextmanager
async def live(key: str) -> AsyncIterator[httpx.AsyncClient]:
    port = get_settings().admin_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/admin/v1", timeout=30,
                                 headers={"authorization": f"Bearer {key}"}) as client:
        yield client


async def rounds(client: httpx.AsyncClient, count: int, start: int) -> None:
    for n in range(start, start + count):
        await one_round(client, n)


async def main(rounds_n: int, warmup: int, top: int, live_admin: bool,
               trace: bool = True) -> list[Row]:
    settings = get_settings()
    pool = await create_pool(settings.pg_dsn)
    tenant = f"heap-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, tenant, "bench.admin_heap")
        key = await create_key(connection, tenant, Scope.ADMIN, "heap", rate_per_s=1_000_000)
    pid: int | str = "self"
    if live_admin:
        found = service_pid("admin")
        if found is None:
            raise SystemExit("the stack's admin is not running")
        pid = found
    rows: list[Row] = []
    try:
        async with (live(key) if live_admin else in_process(key)) as client:
            await rounds(client, warmup, 0)
            gc.collect()
            if not live_admin and trace:
                tracemalloc.start(25)
            before = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
            rss_before = rss_mb(pid)
            await rounds(client, rounds_n, warmup)
            gc.collect()
            rss_after = rss_mb(pid)
            if before is not None:
                after = tracemalloc.take_snapshot()
                grown = after.compare_to(before, "traceback")
                traced = sum(s.size_diff for s in grown)
                progress(f"traced: {traced / 1e6:+.2f} MB over {rounds_n} rounds"
                         f" ({traced / rounds_n / 1e3:+.1f} kB a round)")
                by_origin: dict[str, int] = {}
                for stat in grown:
                    origin = next((f"{f.filename.removeprefix(ROOT)}:{f.lineno}"
                                   for f in reversed(stat.traceback)
                                   if f.filename.startswith(ROOT + "/shared")), "elsewhere")
                    by_origin[origin] = by_origin.get(origin, 0) + stat.size_diff
                for origin, size in sorted(by_origin.items(), key=lambda i: -i[1])[:top]:
                    progress(f"{size / 1e3:+10.1f} kB  {origin} (the call in shared/ nearest"
                             " the allocation)")
                for stat in grown[:top]:
                    progress(f"{stat.size_diff / 1e3:+10.1f} kB {stat.count_diff:+7d} blocks")
                    for line in stat.traceback.format(limit=8)[-16:]:
                        progress("    " + line)
                tracemalloc.stop()
                rows.append(Row("admin_heap", "traced memory gained per round",
                                round(traced / rounds_n / 1e3, 1), "kB",
                                details={"rounds": rounds_n, "warmup": warmup}))
            load = machine_load()
            where = f"admin pid {pid}" if live_admin else "in process"
            progress(f"RSS ({where}): {rss_before:.1f} -> {rss_after:.1f} MB over {rounds_n}"
                     f" rounds; load {load}")
            rows.append(Row("admin_heap", f"RSS gained per round ({where})",
                            round((rss_after - rss_before) / rounds_n * 1e3, 1), "kB",
                            details={"rss_before_mb": round(rss_before, 1),
                                     "rss_after_mb": round(rss_after, 1), "load": load}))
    finally:
        async with pool.acquire() as connection:
            for table in ("messages", "event_configs", "api_keys"):
                await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant)
            await connection.execute("DELETE FROM tenants WHERE tenant_id = $1", tenant)
        await pool.close()
    return rows


def run(rounds_n: int = 300, warmup: int = 30, top: int = 12,
        live_admin: bool = False, trace: bool = True) -> list[Row]:
    return asyncio.run(main(rounds_n, warmup, top, live_admin, trace))


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--no-trace", action="store_true",
                        help="in process, RSS only (tracemalloc's own traces grow it)")
    args = parser.parse_args()
    for row in run(args.rounds, args.warmup, args.top, args.live, not args.no_trace):
        progress(f"{row.what}: {row.figure} {row.unit} {row.details}")


if __name__ == "__main__":
    _cli()
