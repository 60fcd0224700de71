"""The http action's per-tenant allow-list on the real stack: the admin API (set, read,
422s naming the bad entry), validation (a draft calling a host not listed is not
publishable, the error at its node), and the engine re-checking the list when it calls (a
host removed after publishing: ``httpFailed``, no call; a listed one: called once). The
receiver is our own on 127.0.0.1 (the local stack's engine runs with
--allow-local-targets), listed as ``127.0.0.1:<port>``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from tests.integration import test_journey_activities
from tests.integration.conftest import eventually
from tests.integration.test_journey_activities import (
    HOUR,
    Receiver,
    kinds,
    only,
    person,
    put_profile,
    reaches,
    run,
    steps_of,
)
from tests.integration.test_journey_engine import Tenant

tenant = test_journey_activities.tenant  # fixtures: a tenant of its own for each test
receiver = test_journey_activities.receiver  # an HTTP receiver on a free local port
HOSTS = "/journey-http-hosts"
ROOT = Path(__file__).resolve().parents[2]


async def put_hosts(t: Tenant, *hosts: str) -> httpx.Response:
    return await t.admin.put(HOSTS, json={"hosts": list(hosts)})


async def test_the_allow_list_is_set_read_normalised_and_bad_entries_are_422s(
        tenant: Tenant) -> None:
    empty = await tenant.admin.get(HOSTS)
    assert empty.status_code == 200 and empty.json() == {"hosts": []}
    listed = ["API.Crm.Example.com", "*.hooks.example.com", "bücher.example",
              "203.0.113.7", "127.0.0.1:9000", "api.crm.example.com"]
    put = await put_hosts(tenant, *listed)
    assert put.status_code == 200, put.text
    stored = ["api.crm.example.com", "*.hooks.example.com", "xn--bcher-kva.example",
              "203.0.113.7", "127.0.0.1:9000"]
    assert put.json() == {"hosts": stored}
    assert (await tenant.admin.get(HOSTS)).json() == {"hosts": stored}

    bad = await put_hosts(tenant, "ok.example.com", "https://api.example.com/hook",
                          "api.*.example.com", "2001:db8::1")
    assert bad.status_code == 422, bad.text
    details = {tuple(d["loc"]): d for d in bad.json()["detail"]}
    assert set(details) == {("body", "hosts", 1), ("body", "hosts", 2), ("body", "hosts", 3)}
    assert details[("body", "hosts", 1)]["input"] == "https://api.example.com/hook"
    assert "write 'api.example.com'" in details[("body", "hosts", 1)]["msg"]
    assert "such as '*.example.com'" in details[("body", "hosts", 2)]["msg"]
    assert "'[2001:db8::1]'" in details[("body", "hosts", 3)]["msg"]
    too_many = await put_hosts(tenant, *(f"h{i}.example.com" for i in range(101)))
    assert too_many.status_code == 422, too_many.text
    assert "at most 100" in too_many.json()["detail"][0]["msg"]
    not_a_list = await tenant.admin.put(HOSTS, json={"hosts": "api.example.com"})
    assert not_a_list.status_code == 422
    # A refused PUT changed nothing.
    assert (await tenant.admin.get(HOSTS)).json() == {"hosts": stored}
    assert (await put_hosts(tenant)).json() == {"hosts": []}
    assert (await tenant.admin.get(HOSTS)).json() == {"hosts": []}


async def test_a_draft_calling_a_host_not_listed_is_not_publishable(tenant: Tenant) -> None:
    audience = await tenant.admin.post("/audiences", json={
        "name": "nobody", "definition": {"path": "lastName", "op": "eq", "value": "-"}})
    assert audience.status_code == 201, audience.text
    journey = {"id": "crm", "entry": {"type": "audience",
                                      "audienceId": audience.json()["audienceId"],
                                      "next": "call"},
               "nodes": [{"id": "call", "type": "http",
                          "url": "https://api.crm.example.com:8443/hook", "next": "done"},
                         {"id": "done", "type": "end"}]}
    await put_hosts(tenant, "api.crm.example.com")  # the default port only
    draft = await tenant.admin.put("/journeys/crm", json=journey)
    assert draft.status_code == 201, draft.text
    want = {"node": "call", "severity": "error",
            "message": "host api.crm.example.com:8443 is not allow-listed: add"
                       " api.crm.example.com:8443 with PUT /admin/v1/journey-http-hosts"}
    assert draft.json()["publishable"] is False
    assert draft.json()["problems"] == [want]
    published = await tenant.admin.post("/journeys/crm/publish")
    assert published.status_code == 422, published.text
    assert published.json()["detail"]["problems"] == [want]
    assert (await tenant.admin.get("/journeys/crm/versions")).json() == []

    await put_hosts(tenant, "*.crm.example.com:8443")
    checked = await tenant.admin.post("/journeys/crm/validate")
    assert checked.json()["publishable"] is True, checked.text
    assert (await tenant.admin.post("/journeys/crm/publish")).status_code == 201


async def test_a_host_removed_after_publishing_is_refused_and_a_listed_one_called_once(
        pool: asyncpg.Pool, tenant: Tenant, receiver: Receiver) -> None:
    kept, removed = f"127.0.0.1:{receiver.port}", f"localhost:{receiver.port}"
    assert (await put_hosts(tenant, kept, removed)).status_code == 200
    await put_profile(tenant, "w1", person("w1"))
    # The wait outlasts the engine's cache of the list (config_cache_ttl_s, 2 s).
    await run(pool, tenant, "hooks", "pause", [
        {"id": "pause", "type": "wait", "duration": "PT4H", "next": "kept"},
        {"id": "kept", "type": "http", "url": receiver.url("/kept"), "timeoutMs": 3000,
         "next": "removed"},
        {"id": "removed", "type": "http", "url": f"http://{removed}/removed",
         "timeoutMs": 3000, "next": "done"},
        {"id": "done", "type": "end"}], speed=HOUR)
    await reaches(pool, tenant, "hooks", {"w1": ("waiting", "pause")})
    assert (await put_hosts(tenant, kept)).json() == {"hosts": [kept]}

    async def both() -> list[test_journey_activities.StepRow] | None:
        steps = await steps_of(pool, tenant, "hooks", "w1")
        return steps if len(kinds(steps, "httpCalled", "httpFailed")) == 2 else None
    steps = await eventually(both, "both http nodes' steps", 20)
    assert only(steps, "kept", "httpCalled").detail == "HTTP 200"
    assert only(steps, "removed", "httpFailed").detail == (
        f"host {removed} is not allow-listed (PUT /admin/v1/journey-http-hosts)")
    await reaches(pool, tenant, "hooks", {"w1": ("finished", "done")})
    assert await pool.fetchval("SELECT count(*) FROM journey_outbox WHERE tenant_id = $1",
                               tenant.name) == 0
    assert len(receiver.to("/kept")) == 1
    assert receiver.to("/removed") == []


def _cli(t: Tenant, *args: str) -> subprocess.CompletedProcess[str]:
    key = t.admin.headers["authorization"].removeprefix("Bearer ")
    return subprocess.run([sys.executable, "-m", "services.cli", "journeys", "http-hosts",
                           *args], cwd=ROOT, env={**os.environ, "PARCOURS_ADMIN_KEY": key},
                          capture_output=True, text=True, timeout=60)


async def test_the_cli_sets_and_lists_the_hosts(tenant: Tenant) -> None:
    assert _cli(tenant).stdout.strip() == "no hosts: http actions may call none"
    set_ = _cli(tenant, "set", "API.example.com", "*.hooks.example.com:8443")
    assert set_.returncode == 0, set_.stderr
    assert set_.stdout.split() == ["api.example.com", "*.hooks.example.com:8443"]
    assert _cli(tenant, "list").stdout.split() == ["api.example.com",
                                                   "*.hooks.example.com:8443"]
    bad = _cli(tenant, "set", "ok.example.com", "https://api.example.com/x")
    assert bad.returncode == 1
    assert "write 'api.example.com'" in bad.stderr
    assert (await tenant.admin.get(HOSTS)).json()["hosts"] == [
        "api.example.com", "*.hooks.example.com:8443"]
    assert _cli(tenant, "set").stdout.strip() == "no hosts: http actions may call none"
