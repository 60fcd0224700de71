"""The metrics summary the console's operations page reads (``GET
/admin/v1/metrics/summary``), on the real stack: the admin samples every service's
``/metrics`` itself; events this test sends show in the current minutes; a service that
does not answer is reported down, never an error; a sampling round costs little CPU.

The figures are the whole system's (other tests' traffic counts too), so the test looks
for at least its own events in the last minutes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.admin.metrics_summary import Sampler, Target, targets
from shared.adapters.key_store import create_key, create_tenant
from shared.adapters.profile_store import upsert_profiles
from shared.domain.api_keys import Scope
from shared.domain.metrics_summary import summarise
from tests.integration.conftest import (
    ADMIN,
    GATEWAY,
    eventually,
    final_status,
    publish_event,
    settings,
)

SENT_EVENTS = 3
CPU_PER_ROUND_LIMIT_S = 0.05


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, httpx.AsyncClient,
                                                              httpx.AsyncClient]]:
    """A tenant of its own: its name, an admin client and an ingestion client."""
    name = f"opsummary-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await create_tenant(connection, name, "test_admin_metrics_summary")
        admin_key = await create_key(connection, name, Scope.ADMIN, "tests")
        ingest_key = await create_key(connection, name, Scope.INGEST, "tests")
    async with httpx.AsyncClient(base_url=ADMIN, timeout=30, headers={
            "authorization": f"Bearer {admin_key}"}) as admin, httpx.AsyncClient(
            base_url=GATEWAY, timeout=30, headers={
                "authorization": f"Bearer {ingest_key}"}) as http:
        try:
            yield name, admin, http
        finally:
            async with pool.acquire() as connection:
                for table in ("profiles", "event_configs", "api_keys", "tenants"):
                    await connection.execute(f"DELETE FROM {table} WHERE tenant_id = $1",
                                             name)


def by_minute(body: dict[str, Any], group: str, series: str) -> dict[str, float]:
    return {start: value or 0 for start, value in zip(body["minuteStarts"],
                                                       body[group][series], strict=True)}


def counted_since(before: dict[str, Any], after: dict[str, Any], group: str, series: str
                  ) -> float:
    """What ``after`` counts that ``before`` did not: a minute's value only grows, and a
    minute that left the window does not matter."""
    earlier = by_minute(before, group, series)
    return sum(value - earlier.get(start, 0)
               for start, value in by_minute(after, group, series).items())


async def test_the_summary_shows_the_events_just_sent(
    pool: asyncpg.Pool, tenant: tuple[str, httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    name, admin, http = tenant
    event_id = await publish_event(pool, tenant=name)

    async def summary() -> dict[str, Any]:
        response = await admin.get("/metrics/summary", params={"minutes": 5})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    before = await summary()
    hrefs = []
    for i in range(SENT_EVENTS):
        address = f"ops-{i}-{uuid.uuid4().hex[:10]}@example.com"
        async with pool.acquire() as connection:
            await upsert_profiles(connection, name, [{
                "profile_id": f"ops-{uuid.uuid4().hex[:10]}", "email": address}])
        response = await http.post(f"/v1/events/{event_id}",
                                   json={"email": address, "ctx": {"item": "tea"}})
        assert response.status_code == 202, response.text
        hrefs.append(response.json()["href"])
    for href in hrefs:
        assert (await final_status(http, href, 30))["status"] == "processed"

    async def summary_with_them() -> dict[str, Any] | None:
        body = await summary()
        seen = all(counted_since(before, body, group, series) >= SENT_EVENTS
                   for group, series in (("throughput", "accepted"),
                                         ("statuses", "processed"), ("sent", "email")))
        return body if seen else None

    # the sampler scrapes every 15 s: two rounds at most after the last event
    body = await eventually(summary_with_them, "the events in the summary",
                            4 * settings.admin_metrics_sample_s + 10)
    assert body["scope"] == "system" and body["minutes"] == 5
    assert len(body["minuteStarts"]) == len(body["covered"]) == 5
    # the current minute has a pair once a scrape falls in it (up to 15 s after it began)
    assert any(body["covered"][-2:])
    for group in ("throughput", "statuses", "sent", "failed", "deadLetters"):
        for name_, values in body[group].items():
            assert len(values) == 5, (group, name_)
    assert set(body["sent"]) >= {"email", "sms", "push"}
    assert set(body["deadLetters"]) == {"processor", "profileIngest"}
    assert "parcours-processor" in body["consumerLag"]["now"]
    assert len(body["consumerLag"]["perMinute"]["parcours-processor"]) == 5
    services = {s["name"]: s for s in body["services"]}
    assert set(services) == {t.name for t in targets(settings)}
    assert services["gateway"]["up"] is True and services["gateway"]["lastScrapeAt"]
    assert services["processor"]["up"] is True
    assert body["grafana"] == settings.console_grafana_url
    assert body["sampler"]["intervalSeconds"] == settings.admin_metrics_sample_s

    for minutes in (0, 61):
        refused = await admin.get("/metrics/summary", params={"minutes": minutes})
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["query", "minutes"]
    assert (await httpx.AsyncClient(base_url=ADMIN).get("/metrics/summary")).status_code \
        == 401


async def test_a_service_that_does_not_answer_is_down_not_an_error() -> None:
    gateway = Target("gateway", f"{GATEWAY}/metrics")
    nothing = Target("nothing", "http://127.0.0.1:9/metrics")  # the discard port: refused
    sampler = Sampler((gateway, nothing), interval_s=15, timeout_s=1)
    try:
        await sampler.scrape_round()
        await sampler.scrape_round()
    finally:
        await sampler.stop()
    assert sampler.states["gateway"].up and sampler.states["gateway"].error is None
    down = sampler.states["nothing"]
    assert not down.up and down.last_scrape_at is None and down.error
    assert sampler.last_round_at is not None
    summary = summarise(sampler.ring.history(), sampler.last_round_at, 2)
    assert summary.covered[-1] is True  # the gateway's pair
    assert summary.throughput["accepted"][-1] is not None


async def test_a_round_of_every_service_costs_little_cpu() -> None:
    sampler = Sampler(targets(settings), interval_s=15)
    cpu: list[float] = []
    try:
        for _ in range(10):
            await sampler.scrape_round()
            assert sampler.last_round_cpu_s is not None
            cpu.append(sampler.last_round_cpu_s)
    finally:
        await sampler.stop()
    up = sum(state.up for state in sampler.states.values())
    cpu.sort()
    print(f"\nmetrics sampling: {up}/{len(sampler.targets)} services up, CPU a round:"
          f" median {cpu[len(cpu) // 2] * 1000:.1f} ms, max {cpu[-1] * 1000:.1f} ms,"
          f" wall {(sampler.last_round_s or 0) * 1000:.1f} ms")
    assert up >= len(sampler.targets) - 1
    assert cpu[len(cpu) // 2] < CPU_PER_ROUND_LIMIT_S
